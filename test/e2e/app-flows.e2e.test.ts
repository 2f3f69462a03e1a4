/**
 * More of the browser app (src/ui) with the real engine worker, against the fake hub: a merge of
 * local model folders picked through the file input whose output equals the CLI's, the YAML round
 * trip form → YAML → form, a shared link that restores the config, and the messages for a bad
 * token (401) and a missing repo (404). Complements app-ui.e2e.test.ts.
 */
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HUB_NAMESPACE, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { setTensorElements } from '../helpers/set-tensor-elements';
import { decodeSafetensors } from '../fixtures/safetensors';
import { chromiumAvailable, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';
import type { StaticServer } from './static-server';

let hub: FakeHub;
let models: HubModels;
let site: StaticServer;
let browser: BrowserSession;

/** TIES over the local folders (named by their folder), with a density gradient on one model. */
const LOCAL_YAML = [
  'models:',
  '  - model: ft-a',
  '    parameters: {weight: 1.0, density: [1, 0.7, 0.1]}',
  '  - model: ft-b',
  '    parameters: {weight: 0.7, density: 0.5}',
  'merge_method: ties',
  'base_model: base',
  'parameters: {normalize: true}',
  'dtype: bfloat16',
  '',
].join('\n');

describe.skipIf(!chromiumAvailable())('the app, more flows (real worker, fake hub)', () => {
  let env: AppEnvironment;
  beforeAll(async () => {
    env = await startAppEnvironment();
    ({ hub, models, site, browser } = env);
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  it('merges local model folders picked through the file input; the downloaded output equals the CLI’s', async () => {
    // The CLI, on the same folders (the YAML's names are paths from their parent folder).
    const parent = join(models.root, HUB_NAMESPACE);
    writeConfig(parent, 'local.yml', LOCAL_YAML);
    const cli = await runAlloy(['merge', 'local.yml', 'cli-local-out', '--backend', 'cpu'], parent);
    expect(cli.code, cli.stderr).toBe(0);

    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    expect(await page.getByText('Demo mode').count(), 'the real worker is used').toBe(0);

    // The CPU backend, so that the output can be compared byte for byte with the CLI's.
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });

    const clear = page.getByRole('button', { name: 'Clear' });
    if (await clear.isEnabled()) await clear.click();
    for (const model of [models.base, models.a, models.b]) await page.locator('input[webkitdirectory]').first().setInputFiles(model.dir);
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000, message: failure() }).toBe(3);
    for (const name of ['base', 'ft-a', 'ft-b']) await page.locator('tbody tr', { hasText: name }).getByText('local folder').first().waitFor();

    await page.locator('#yaml-editor').fill(LOCAL_YAML);
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    const ours = readFileSync((await download.path())!);
    // Read from the picked files: nothing came from the hub.
    expect(hub.requests.filter((r) => r.path.includes('/resolve/')), failure()).toEqual([]);
    const theirs = readFileSync(join(parent, 'cli-local-out', 'model.safetensors'));
    const decodedOurs = decodeSafetensors(new Uint8Array(ours));
    const decodedTheirs = decodeSafetensors(new Uint8Array(theirs));
    expect([...decodedOurs.keys()].sort()).toEqual([...decodedTheirs.keys()].sort());
    for (const [name, tensor] of decodedTheirs) {
      const mine = decodedOurs.get(name)!;
      expect(mine.dtype, name).toBe(tensor.dtype);
      expect(mine.shape, name).toEqual(tensor.shape);
      expect(Buffer.from(mine.raw).equals(Buffer.from(tensor.raw)), name).toBe(true);
    }

    // The Run step keeps where the whole merge's time went: three shares that add up to 100 %.
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Run/ }).click();
    const split = (await page.getByTestId('final-stage-split').textContent()) ?? '';
    expect(split).toMatch(/^Waiting mostly on: (reading \(disk\/network\)|computing|writing) \d+%, .+ \d+%, .+ \d+%\.$/);
    const shares = [...split.matchAll(/(\d+)%/g)].map((m) => Number(m[1]));
    expect(Math.abs(shares.reduce((a, b) => a + b, 0) - 100)).toBeLessThanOrEqual(2);
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Result/ }).click();
  });

  it('explains a bad token (401) on the page', async () => {
    // The Result step of the merge above holds the sign-in form.
    const page = browser.page;
    // The Hub came with the address (?hub=): it must be confirmed before a token is sent to it.
    await page.getByRole('region', { name: 'Confirm the Hub' }).getByRole('button', { name: `Use ${new URL(hub.url).host}` }).click();
    await page.locator('#hf-token').fill('hf_not_a_real_token');
    await page.getByRole('button', { name: 'Use token' }).click();
    const message = page.locator('#hf-token-help .error');
    await message.waitFor({ timeout: 30_000 });
    expect(await message.isVisible()).toBe(true);
    expect(await message.textContent()).toMatch(/^the Hub rejected this token \(401\): create a token with write access at http:\/\/127\.0\.0\.1:\d+\/settings\/tokens/);
    expect(hub.requests.filter((r) => r.method === 'GET' && r.path.includes('whoami')).map((r) => r.status)).toContain(401);
    expect(await page.getByText(/^as /).count()).toBe(0);
  });

  it('keeps the form and the YAML in step both ways, and a shared link restores the config', async () => {
    const page = browser.page;
    const { ids } = models;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    const yaml = [
      'models:',
      `  - model: ${ids.a}`,
      '    parameters: {weight: 1.0, density: 0.5}',
      `  - model: ${ids.b}`,
      '    parameters: {weight: 0.7, density: 0.7}',
      'merge_method: ties',
      `base_model: ${ids.base}`,
      'dtype: bfloat16',
      '',
    ].join('\n');
    await page.locator('#yaml-editor').fill(yaml);
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Method/ }).click();
    await expect.poll(() => page.locator('#method-ties').isChecked()).toBe(true);

    // Form → YAML: ft-b's weight.
    const ftB = page.locator('.model', { has: page.locator('h4', { hasText: ids.b }) });
    const weight = ftB.locator('.param', { has: page.locator('label.name', { hasText: /^weight$/ }) }).locator('input[type=number]');
    expect(await weight.inputValue()).toBe('0.7');
    await weight.fill('0.35');
    await weight.press('Tab');
    await expect.poll(() => page.locator('#yaml-editor').inputValue()).toMatch(/weight: 0\.35/);
    expect(await page.locator('#yaml-editor').inputValue()).not.toMatch(/weight: 0\.7\b/);

    // YAML → form: ft-b's density, typed in the editor.
    const edited = (await page.locator('#yaml-editor').inputValue()).replace('density: 0.7', 'density: 0.25');
    expect(edited).toContain('density: 0.25');
    await page.locator('#yaml-editor').fill(edited);
    const density = ftB.locator('.param', { has: page.locator('label.name', { hasText: /^density$/ }) }).locator('input[type=number]');
    await expect.poll(() => density.inputValue()).toBe('0.25');
    expect(await weight.inputValue()).toBe('0.35');

    // URL sharing: "Copy link" copies this page's link with the config in its hash.
    const current = await page.locator('#yaml-editor').inputValue();
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: site.url });
    await page.getByRole('button', { name: 'Copy link' }).click();
    await page.getByText('Link copied: it opens this config.').waitFor();
    const link = await page.evaluate(() => navigator.clipboard.readText());
    expect(link).toMatch(new RegExp(`^${site.url}/\\?hub=.*#config=`));
    await expect.poll(() => page.url(), { timeout: 10_000 }).toBe(link);
    // Another config here (kept as the draft), so that the new page can only get the shared one from the link.
    await page.getByRole('button', { name: 'Clear' }).click();
    await expect.poll(() => new URL(page.url()).hash, { timeout: 10_000 }).toBe('');
    const other = await browser.context.newPage();
    try {
      await other.goto(link);
      await other.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
      await other.getByText('Loaded the config from the link.').waitFor();
      await expect.poll(() => other.locator('#yaml-editor').inputValue(), { timeout: 15_000 }).toBe(current);
      await other.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Method/ }).click();
      await expect.poll(() => other.locator('#method-ties').isChecked()).toBe(true);
      const restored = other.locator('.model', { has: other.locator('h4', { hasText: ids.b }) });
      expect(await restored.locator('.param', { has: other.locator('label.name', { hasText: /^weight$/ }) }).locator('input[type=number]').inputValue()).toBe('0.35');
    } finally {
      await other.close();
    }
  });

  it('explains a missing repo (404) on the page', async () => {
    const page = browser.page;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Models/ }).click();
    const search = page.locator('#hub-model-input');
    await search.fill(`${HUB_NAMESPACE}/does-not-exist`);
    await search.press('Enter');
    const row = page.locator('tbody tr', { hasText: `${HUB_NAMESPACE}/does-not-exist` });
    const error = row.locator('.error-text');
    await error.waitFor({ timeout: 30_000 });
    expect(await error.isVisible()).toBe(true);
    expect(await error.textContent()).toMatch(/no model alloy-test\/does-not-exist on the Hub \(404\).*check the name/);
  });

  it('lists NaN/Inf of a merge on the Result step, and refuses the merge once Settings say so', async () => {
    const tensor = 'model.layers.1.self_attn.q_proj.weight'; // [64, 64]
    const nanDir = join(tempDir('alloy-e2e-nan-'), 'ft-nan');
    cpSync(models.a.dir, nanDir, { recursive: true });
    setTensorElements(nanDir, tensor, [[0, 0x7fc0], [99, 0xffc1], [4095, 0xff80]]);
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    const settings = async (refuse: boolean) => {
      await page.getByRole('button', { name: 'Settings' }).click();
      await page.locator('input[type=radio][value=cpu]').check();
      await page.getByLabel('Refuse results with NaN/Inf').setChecked(refuse);
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });
    };
    const merge = async () => {
      await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
      await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    };
    await settings(false);
    const clear = page.getByRole('button', { name: 'Clear' });
    if (await clear.isEnabled()) await clear.click();
    for (const dir of [models.base.dir, nanDir]) await page.locator('input[webkitdirectory]').first().setInputFiles(dir);
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000, message: failure() }).toBe(2);
    await page.locator('#yaml-editor').fill(
      ['models:', '  - model: base', '  - model: ft-nan', 'merge_method: slerp', 'base_model: base', 'parameters: {t: 0.5}', 'dtype: bfloat16', ''].join('\n'),
    );
    await page.getByText('valid', { exact: true }).waitFor();

    await merge();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const notice = page.getByTestId('non-finite');
    await notice.waitFor();
    const text = (await notice.textContent())!.replace(/\s+/g, ' ');
    expect(text, failure()).toContain('NaN or Inf values in 1 tensor: 4,096 in the output, 1 with NaN/Inf already in an input.');
    expect(text).toContain(`${tensor}: output 4,096 NaN; input ft-nan 2 NaN, 1 -Inf`);

    await settings(true);
    await merge();
    const refused = page.getByText('Refused: the result would hold NaN or Inf values');
    await refused.waitFor({ timeout: 180_000 });
    expect(await page.getByText(`The merge stopped at NaN or Inf values: ${tensor}: output 4,096 NaN; input ft-nan 2 NaN, 1 -Inf. Nothing was kept.`).count()).toBe(1);
    await settings(false);
  });
});
