/**
 * The app's Evaluate panel ("did my merge break the model?") and its mixture-of-experts editor,
 * in headless Chromium with the real engine worker and the bundled demo models. The perplexities
 * the page shows are compared with `alloy eval` on the same files.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatPerplexity } from '../../src/model/compare-perplexity';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { chromiumAvailable, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';

let browser: BrowserSession;
let env: AppEnvironment;

const MERGE_YAML = [
  'merge_method: linear',
  'models:',
  '  - model: alloy-demo-math',
  '    parameters:',
  '      weight: 0.5',
  '  - model: alloy-demo-code',
  '    parameters:',
  '      weight: 0.5',
  'dtype: float32',
  '',
].join('\n');
const USER_TEXT = 'A merge that keeps its inputs’ skills should find this sentence no harder than they do.';

describe.skipIf(!chromiumAvailable())('the app: Evaluate and the MoE editor (real worker, demo models)', () => {
  beforeAll(async () => {
    env = await startAppEnvironment({ demoModels: true });
    browser = env.browser;
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  async function open(): Promise<void> {
    const page = browser.page;
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(env.site.url);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByText('Try the bundled demo models').waitFor();
    expect(await page.getByText('Demo mode:', { exact: true }).count(), 'the real worker is used').toBe(0);
  }

  it('evaluates a merge: the perplexities shown are those alloy eval computes on the same files', async () => {
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await open();
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });

    await page.locator('#yaml-editor').fill(MERGE_YAML);
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const outputName = (await page.locator('.files h3').first().textContent())!.trim();

    // The same merge with the CLI, next to the demo models; the app's weights must be these bytes.
    const demoRoot = join(env.appDir, 'demo-models');
    writeConfig(demoRoot, 'eval.yml', MERGE_YAML);
    const merged = await runAlloy(['merge', 'eval.yml', 'cli-out', '--backend', 'cpu'], demoRoot);
    expect(merged.code, merged.stderr).toBe(0);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    expect(Buffer.compare(readFileSync((await download.path())!), readFileSync(join(demoRoot, 'cli-out', 'model.safetensors')))).toBe(0);

    const panel = page.getByTestId('evaluate-panel');
    await panel.locator('#evaluate-text').fill(USER_TEXT);
    await panel.getByTestId('evaluate-run').click();
    await panel.getByTestId('evaluate-table').waitFor({ timeout: 120_000 });
    expect(await panel.getByText('No sign of damage').count(), failure()).toBe(1);

    writeFileSync(join(demoRoot, 'user.txt'), USER_TEXT);
    const cli = await runAlloy(['eval', 'alloy-demo-math', 'alloy-demo-code', 'cli-out', '--text', 'user.txt', '--json'], demoRoot);
    expect(cli.code, cli.stderr).toBe(0);
    const json = JSON.parse(cli.stdout) as { texts: { models: { perplexity: number; tokens: number }[] }[] };
    const rows = [
      { name: 'alloy-demo-math', role: 'input' },
      { name: 'alloy-demo-code', role: 'input' },
      { name: outputName, role: 'output' },
    ];
    for (const [r, row] of rows.entries()) {
      const cells = panel.locator(`tr[data-model="${row.name}"][data-role="${row.role}"] td[data-perplexity]`);
      expect(await cells.count()).toBe(2);
      for (const c of [0, 1]) {
        const expected = json.texts[c].models[r];
        const cell = cells.nth(c);
        // Same code, same bytes: the number crosses the worker boundary unchanged (1e-12 relative).
        const shown = Number(await cell.getAttribute('data-perplexity'));
        expect(Math.abs(shown - expected.perplexity) / expected.perplexity).toBeLessThan(1e-12);
        expect(Number(await cell.getAttribute('data-tokens'))).toBe(expected.tokens);
        expect((await cell.textContent())!.trim()).toBe(formatPerplexity(expected.perplexity));
      }
    }
  });
});
