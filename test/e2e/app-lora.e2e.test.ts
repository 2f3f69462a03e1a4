/**
 * LoRA adapters in the browser app (docs/lora.md §1) with the real engine worker, against the
 * fake hub: a model row takes a Hub adapter (the YAML shows `model+adapter`, both ways), the
 * Review step lists the tensors it changes with rank and scale, and the downloaded output equals
 * what `alloy merge` writes from the same files; an adapter of another base is refused on the
 * Review step with the YAML path, before anything is written.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHubAdapter, serveHubAdapter, type HubAdapter } from '../fakehub/models';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { writeAdapter } from '../lora/adapters';
import { chromiumAvailable } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';

describe.skipIf(!chromiumAvailable())('the app with LoRA adapters (real worker, fake hub)', () => {
  let env: AppEnvironment;
  let adapter: HubAdapter;
  beforeAll(async () => {
    env = await startAppEnvironment();
    adapter = makeHubAdapter(env.models);
    serveHubAdapter(env.hub, adapter);
    const other = join(env.models.root, 'alloy-test/lora-other');
    writeAdapter(other, { base_model_name_or_path: 'someone/other-model', target_modules: ['q_proj'] }, [{ module: 'model.layers.0.self_attn.q_proj', rank: 4, weightShape: [48, 48] }]);
    env.hub.addModelDir('alloy-test/lora-other', other);
  }, 300_000);
  afterAll(async () => {
    await env?.close();
  });

  const yaml = (baseRef: string): string =>
    ['models:', `  - model: ${baseRef}`, '    parameters: {weight: 0.6}', `  - model: ${env.models.ids.a}`, '    parameters: {weight: 0.4}', 'merge_method: linear', 'dtype: bfloat16', ''].join('\n');

  it('merges base+Hub adapter picked in the model row; the output equals the CLI’s `alloy merge` of the same files', async () => {
    const { hub, models, site, browser } = env;
    const { ids } = models;
    writeConfig(models.root, 'lora.yml', yaml(`${ids.base}+${adapter.id}`));
    const cli = await runAlloy(['merge', 'lora.yml', 'cli-lora-out', '--backend', 'cpu'], models.root);
    expect(cli.code, cli.stderr).toBe(0);

    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });

    await page.locator('#yaml-editor').fill(yaml(ids.base));
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Models/ }).click();
    await expect.poll(() => page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), { timeout: 30_000, message: failure() }).toBe(2);

    // Form → YAML: the base row takes the Hub adapter.
    const baseRow = page.locator('tbody tr', { hasText: ids.base });
    await baseRow.getByRole('button', { name: '+ LoRA adapter' }).click();
    await page.getByLabel(`LoRA adapter of ${ids.base}`).fill(adapter.id);
    await page.getByRole('button', { name: 'Use adapter' }).click();
    await expect.poll(() => page.locator('#yaml-editor').inputValue()).toContain(`- model: ${ids.base}+${adapter.id}\n`);
    const summary = page.locator('tbody tr', { hasText: `${ids.base}+${adapter.id}` }).getByTestId('adapter-summary');
    await summary.waitFor({ timeout: 30_000 });
    expect(await summary.textContent()).toMatch(/rank 2\/4, alpha 8, 7 modules \+ 1 saved whole, .* trained on alloy-test\/base/);

    // Review: the tensors the adapter changes, with rank and scale.
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    const adapters = page.getByRole('region', { name: 'LoRA adapters' });
    await adapters.waitFor({ timeout: 60_000 });
    expect(await adapters.locator('summary').textContent()).toMatch(/alloy-test\/lora-a on alloy-test\/base:\s+7 tensors get W \+ scale·B·A, 1 replaced/);
    expect(await adapters.getByRole('row', { name: /^model\.layers\.1\.mlp\.down_proj\.weight/ }).textContent()).toMatch(/LoRA\s*2\s*4$/);
    expect(await adapters.getByRole('row', { name: /^model\.layers\.0\.self_attn\.q_proj\.weight/ }).textContent()).toMatch(/LoRA\s*4\s*2$/);
    expect(await adapters.getByRole('row', { name: /^lm_head\.weight/ }).textContent()).toContain('replaced (modules_to_save)');

    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    const ours = readFileSync((await download.path())!);
    const theirs = readFileSync(join(models.root, 'cli-lora-out', 'model.safetensors'));
    expect(ours.equals(theirs), failure()).toBe(true);
    // The adapter's weights came from the Hub (through the verified download path).
    expect(hub.requests.some((r) => r.file?.repo === adapter.id && r.file.path === 'adapter_model.safetensors')).toBe(true);
  });

  it('binds an adapter folder the YAML names (model+my-lora) through the row’s folder picker; the merge equals the CLI’s', async () => {
    const { site, hub, models } = env;
    writeConfig(models.root, 'lora-local.yml', yaml(`${models.ids.base}+${adapter.id}`));
    const cli = await runAlloy(['merge', 'lora-local.yml', 'cli-lora-local', '--backend', 'cpu'], models.root);
    expect(cli.code, cli.stderr).toBe(0);
    const page = env.browser.page;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.locator('#yaml-editor').fill(yaml(`${models.ids.base}+my-lora`));
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Models/ }).click();
    const row = page.locator('tbody tr', { hasText: `${models.ids.base}+my-lora` });
    await row.getByRole('button', { name: 'Choose adapter folder…' }).waitFor({ timeout: 30_000 });
    hub.resetLog();
    await row.locator('input.adapter-folder').setInputFiles(adapter.dir);
    await row.getByTestId('adapter-summary').waitFor({ timeout: 30_000 });
    // The YAML keeps the name it gave the folder.
    expect(await page.locator('#yaml-editor').inputValue()).toContain(`- model: ${models.ids.base}+my-lora\n`);
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('region', { name: 'LoRA adapters' }).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    expect(readFileSync((await download.path())!).equals(readFileSync(join(models.root, 'cli-lora-local', 'model.safetensors')))).toBe(true);
    expect(hub.requests.some((r) => r.path.includes('lora-a'))).toBe(false);
  });

  it('YAML → form: typing model+adapter shows the adapter on the row; removing it there rewrites the YAML', async () => {
    const { site, hub, models } = env;
    const page = env.browser.page;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.locator('#yaml-editor').fill(yaml(`${models.ids.base}+${adapter.id}`));
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Models/ }).click();
    const row = page.locator('tbody tr', { hasText: `${models.ids.base}+${adapter.id}` });
    await row.getByTestId('adapter-summary').waitFor({ timeout: 30_000 });
    await row.getByRole('button', { name: `Remove the adapter of ${models.ids.base}+${adapter.id}` }).click();
    await expect.poll(() => page.locator('#yaml-editor').inputValue()).toContain(`- model: ${models.ids.base}\n`);
    expect(await page.locator('#yaml-editor').inputValue()).not.toContain('+');
  });

  it('refuses an adapter of another base on the Review step, with the YAML path, and writes nothing', async () => {
    const { site, hub, models } = env;
    const page = env.browser.page;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.locator('#yaml-editor').fill(yaml(`${models.ids.base}+alloy-test/lora-other`));
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    const error = page.getByText(/^models\[0\]\.model: LoRA adapter alloy-test\/lora-other/);
    await error.waitFor({ timeout: 60_000 });
    expect(await error.textContent()).toMatch(/does not fit model alloy-test\/base\+alloy-test\/lora-other \(it was trained on "someone\/other-model"\)/);
    expect(await page.getByRole('button', { name: 'Start merge' }).isDisabled()).toBe(true);
    expect(hub.requests.some((r) => r.file?.repo === 'alloy-test/lora-other' && r.range === null)).toBe(false);
  });

  it('extracts a LoRA in the app (plan, run, download): the adapter equals `alloy extract-lora`’s', async () => {
    const { site, hub, models } = env;
    const { ids } = models;
    const cli = await runAlloy(
      ['extract-lora', '--model', ids.a, '--base-model', ids.base, '--out-path', 'cli-extract', '--max-rank', '8', '-e', 'k_proj', '--skip-undecomposable', '--random-seed', '3', '--quiet'],
      models.root,
    );
    expect(cli.code, cli.stderr).toBe(0);
    const page = env.browser.page;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByRole('button', { name: 'Extract a LoRA' }).click();
    const dialog = page.getByRole('dialog', { name: 'Extract a LoRA' });
    await dialog.getByLabel('Fine-tuned model').fill(ids.a);
    await dialog.getByLabel('Base model').fill(ids.base);
    await dialog.getByLabel('Rank (--max-rank)').fill('8');
    await dialog.getByText('More options').click();
    await dialog.getByLabel(/--skip-undecomposable/).check();
    await dialog.getByLabel('Exclude regexes (-e)').fill('k_proj');
    await dialog.getByLabel('Random seed (--random-seed)').fill('3');
    await dialog.getByLabel('Adapter folder name').fill('ft-a-lora8');
    await dialog.getByRole('button', { name: 'Plan extraction' }).click();
    const plan = dialog.getByRole('region', { name: 'Extraction plan' });
    await plan.waitFor({ timeout: 30_000 });
    expect(await plan.locator('p').first().textContent()).toMatch(/18\s+modules as LoRAs, 2\s+tensors saved whole/);
    await dialog.getByRole('button', { name: 'Extract', exact: true }).click();
    // The adapter folder is an output: the Result step downloads and pushes it.
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    for (const file of ['adapter_model.safetensors', 'adapter_config.json']) {
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('row', { name: new RegExp(`^${file.replace('.', '\\.')}`) }).getByRole('button', { name: 'Download' }).click(),
      ]);
      const ours = readFileSync((await download.path())!);
      expect(ours.equals(readFileSync(join(models.root, 'cli-extract', file))), file).toBe(true);
    }
  });
});
