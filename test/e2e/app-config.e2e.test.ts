/**
 * The app (src/ui, real worker, fake hub) with configs a new user brings or makes: a config naming
 * local folders by path (bound with "Choose folder…", merged as the CLI merges the same paths), the
 * bundled demo models' suggestion (TIES against their base), Clear with Undo, and notices and step
 * marks that follow the config. Complements app-ui.e2e.test.ts and app-flows.e2e.test.ts.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { decodeSafetensors } from '../fixtures/safetensors';
import { chromiumAvailable, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';
import type { StaticServer } from './static-server';

let hub: FakeHub;
let models: HubModels;
let site: StaticServer;
let browser: BrowserSession;

/** Every spelling of a local folder the app must not take for a Hub id, and one Hub id. */
const LOCAL_PATHS = ['models/ft_a', './x', '../x', '/abs/path', 'C:\\x', 'C:/x'];

/** TIES over folders named by paths relative to the CLI's working directory. */
const PATHS_YAML = [
  'models:',
  '  - model: models/ft_a',
  '    parameters: {weight: 1.0, density: 0.6}',
  '  - model: ./ft-b',
  '    parameters: {weight: 0.7, density: 0.5}',
  'merge_method: ties',
  'base_model: ../base',
  'dtype: bfloat16',
  '',
].join('\n');

const stepMark = (page: Page, label: string) =>
  page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: new RegExp(label) }).locator('.index');

async function openApp(page: Page): Promise<void> {
  await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
  await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
  await page.getByText('Try the bundled demo models').waitFor();
  const clear = page.getByRole('button', { name: 'Clear' });
  if (await clear.isEnabled()) await clear.click();
  await page.getByText('No models yet.').waitFor();
}

describe.skipIf(!chromiumAvailable())('the app with configs a new user brings (real worker, fake hub)', () => {
  let env: AppEnvironment;
  beforeAll(async () => {
    env = await startAppEnvironment({ demoModels: true });
    ({ hub, models, site, browser } = env);
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  it('takes local paths in a pasted config for folders, never asks the Hub for them, and merges the chosen folders as the CLI does', async () => {
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await page.setViewportSize({ width: 1440, height: 900 });
    await openApp(page);
    // The CPU backend, so that the output can be compared byte for byte with the CLI's.
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });

    // Typed into the Hub box, a folder path is sent where it belongs.
    await page.locator('#hub-model-input').fill('models/ft_a');
    await page.locator('#hub-model-input').press('Enter');
    await page.getByText('"models/ft_a" is a local folder path, not a Hub repo id (namespace/name): choose the folder under Local model.').waitFor();
    await page.locator('#hub-model-input').fill('');

    // Each spelling of a folder gets a "local folder" row with "Choose folder…"; the Hub id is read from the Hub.
    const every = ['models:', ...[...LOCAL_PATHS, models.ids.a].map((p) => `  - model: '${p}'`), 'merge_method: linear', 'parameters: {weight: 1}', ''].join('\n');
    const before = hub.requests.length;
    await page.locator('#yaml-editor').fill(every);
    const hubRow = page.locator('tbody tr', { hasText: models.ids.a });
    await hubRow.getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
    expect(await hubRow.locator('.badge').first().textContent()).toBe('Hub');
    for (const path of LOCAL_PATHS) {
      const row = page.locator('tbody tr').filter({ has: page.getByText(path, { exact: true }) });
      expect(await row.locator('.badge').first().textContent(), path).toBe('local folder');
      await row.getByText('A local folder, not a Hub model').waitFor();
      await row.getByRole('button', { name: `Choose folder for ${path}` }).waitFor();
    }
    expect(await page.locator('tbody tr').count()).toBe(LOCAL_PATHS.length + 1);
    const asked = hub.requests.slice(before).map((r) => decodeURIComponent(r.path));
    expect(asked.some((p) => p.includes(models.ids.a)), failure()).toBe(true);
    expect(asked.filter((p) => /ft_a|\/x\b|abs|C:/.test(p)), failure()).toEqual([]);

    // The CLI merges the same YAML from a working directory where the paths exist.
    const cwdRoot = tempDir('alloy-paths-');
    try {
      const cwd = join(cwdRoot, 'work');
      mkdirSync(join(cwd, 'models'), { recursive: true });
      cpSync(models.a.dir, join(cwd, 'models', 'ft_a'), { recursive: true });
      cpSync(models.b.dir, join(cwd, 'ft-b'), { recursive: true });
      cpSync(models.base.dir, join(cwdRoot, 'base'), { recursive: true });
      writeConfig(cwd, 'paths.yml', PATHS_YAML);
      const cli = await runAlloy(['merge', 'paths.yml', 'out', '--backend', 'cpu'], cwd);
      expect(cli.code, cli.stderr).toBe(0);

      // The app: the same YAML, each folder chosen on its row.
      await page.locator('#yaml-editor').fill(PATHS_YAML);
      await page.getByText('valid', { exact: true }).waitFor();
      // A folder that is not a model: the row says why and offers to choose another.
      const notModel = join(cwdRoot, 'notes');
      mkdirSync(notModel);
      writeFileSync(join(notModel, 'README.md'), '# not a model\n');
      const ftA = page.locator('tbody tr').filter({ has: page.getByText('models/ft_a', { exact: true }) });
      await ftA.getByTestId('bind-folder-input').setInputFiles(notModel);
      await ftA.getByText(/no config\.json/).waitFor();
      await ftA.getByRole('button', { name: 'Choose another folder for models/ft_a' }).waitFor();
      await ftA.getByTestId('bind-folder-input').setInputFiles(models.a.dir);
      await ftA.getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
      expect(await ftA.locator('.badge').first().textContent()).toBe('local folder');
      for (const [path, dir] of [['./ft-b', models.b.dir], ['../base', models.base.dir]] as const) {
        const row = page.locator('tbody tr').filter({ has: page.getByText(path, { exact: true }) });
        await row.getByRole('button', { name: `Choose folder for ${path}` }).waitFor();
        await row.getByTestId('bind-folder-input').setInputFiles(dir);
        await row.getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
        expect(await row.locator('.badge').first().textContent()).toBe('local folder');
      }
      await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
      await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
      await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
      ]);
      const ours = decodeSafetensors(new Uint8Array(readFileSync((await download.path())!)));
      const theirs = decodeSafetensors(new Uint8Array(readFileSync(join(cwd, 'out', 'model.safetensors'))));
      expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
      for (const [name, tensor] of theirs) {
        const mine = ours.get(name)!;
        expect(mine.dtype, name).toBe(tensor.dtype);
        expect(mine.shape, name).toEqual(tensor.shape);
        expect(Buffer.from(mine.raw).equals(Buffer.from(tensor.raw)), name).toBe(true);
      }
      expect(hub.requests.slice(before).filter((r) => r.path.includes('/resolve/') && !r.path.includes(models.ids.a)), failure()).toEqual([]);
    } finally {
      rmSync(cwdRoot, { recursive: true, force: true });
    }
  });

  it('suggests TIES against the demo base (its fine-tunes’ model cards name it)', async () => {
    const page = browser.page;
    await openApp(page);
    for (const name of ['alloy-demo-base', 'alloy-demo-math', 'alloy-demo-code']) {
      await page.getByRole('button', { name: `+ ${name}` }).click();
      await page.locator('tbody tr', { hasText: name }).getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
    }
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Method/ }).click();
    await page.getByText('2 fine-tunes of alloy-demo-base, with the base').waitFor();
    const first = page.locator('.recs li').first();
    expect(await first.locator('strong').textContent()).toBe('TIES');
    await first.getByRole('button').click();
    await expect.poll(() => page.locator('#yaml-editor').inputValue()).toMatch(/merge_method: ties/);
    const yaml = await page.locator('#yaml-editor').inputValue();
    expect(yaml).toMatch(/^base_model: alloy-demo-base$/m);
    expect(yaml).not.toContain('Linear');
  });

  it('Clear forgets the models too, re-enables the demo buttons, and Undo brings both back', async () => {
    const page = browser.page;
    await openApp(page);
    const math = page.getByRole('button', { name: '+ alloy-demo-math' });
    const code = page.getByRole('button', { name: '+ alloy-demo-code' });
    await math.click();
    await code.click();
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000 }).toBe(2);
    expect(await math.isDisabled()).toBe(true);
    const yaml = await page.locator('#yaml-editor').inputValue();

    await page.getByRole('button', { name: 'Clear' }).click();
    await page.getByText('No models yet.').waitFor();
    expect(await page.getByText('not in config').count()).toBe(0);
    expect(await page.locator('#yaml-editor').inputValue()).toBe('');
    expect(await math.isEnabled()).toBe(true);
    expect(await code.isEnabled()).toBe(true);
    const notice = page.getByRole('status').filter({ hasText: 'Cleared the config and its models.' });
    await notice.getByRole('button', { name: 'Undo' }).click();
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000 }).toBe(2);
    expect(await page.locator('#yaml-editor').inputValue()).toBe(yaml);
    expect(await math.isDisabled()).toBe(true);
    expect(await notice.count()).toBe(0);

    // A model taken out of the YAML by hand stays listed, but its demo button works again.
    await page.locator('#yaml-editor').fill(yaml.replace(/^.*alloy-demo-code.*\n(?:\s{4}.*\n)*/m, ''));
    await page.locator('tbody tr', { hasText: 'alloy-demo-code' }).getByText('not in config').waitFor();
    await code.click();
    await expect.poll(() => page.locator('#yaml-editor').inputValue()).toContain('alloy-demo-code');
    expect(await page.locator('tbody tr', { hasText: 'alloy-demo-code' }).getByText('not in config').count()).toBe(0);
  });

  it('drops the Undo notice when the user moves on or edits; Review and Run lose their ✓ while the YAML is invalid', async () => {
    const page = browser.page;
    await openApp(page);
    const cleared = page.getByRole('status').filter({ hasText: 'Cleared the config and its models.' });
    // Moving to another step drops the notice.
    await page.getByRole('button', { name: '+ alloy-demo-math' }).click();
    await page.getByRole('button', { name: 'Clear' }).click();
    await cleared.waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Method/ }).click();
    await cleared.waitFor({ state: 'detached' });
    // So does an edit of the YAML.
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Models/ }).click();
    await page.getByRole('button', { name: '+ alloy-demo-math' }).click();
    await page.getByRole('button', { name: 'Clear' }).click();
    await cleared.waitFor();
    await page.locator('#yaml-editor').fill('merge_method: linear\n');
    await cleared.waitFor({ state: 'detached' });

    // A finished merge of the demo models: Review and Run carry a ✓ …
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });
    const yaml = ['models:', '  - model: alloy-demo-math', '    parameters: {weight: 0.5}', '  - model: alloy-demo-code', '    parameters: {weight: 0.5}', 'merge_method: linear', 'dtype: bfloat16', ''].join('\n');
    await page.locator('#yaml-editor').fill(yaml);
    await page.getByText('valid', { exact: true }).waitFor();
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000 }).toBe(2);
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Models/ }).click();
    await expect.poll(() => stepMark(page, 'Review').textContent()).toBe('✓');
    await expect.poll(() => stepMark(page, 'Run').textContent()).toBe('✓');

    // … which they lose while the YAML is invalid, and get back once it is valid again.
    await page.locator('#yaml-editor').fill(yaml.replace('merge_method: linear', 'merge_method: linearr'));
    await page.getByText(/^\d+ problems?$/).waitFor();
    await expect.poll(() => stepMark(page, 'Review').textContent()).toBe('3');
    await expect.poll(() => stepMark(page, 'Run').textContent()).toBe('4');
    await page.locator('#yaml-editor').fill(yaml);
    await page.getByText('valid', { exact: true }).waitFor();
    await expect.poll(() => stepMark(page, 'Run').textContent()).toBe('✓');
  });
});
