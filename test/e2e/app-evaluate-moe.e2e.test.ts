/**
 * The app's Evaluate panel ("did my merge break the model?") and its mixture-of-experts editor,
 * in headless Chromium with the real engine worker and the bundled demo models. The perplexities
 * the page shows are compared with `alloy eval` on the same files.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

  const MOE_YAML = [
    'base_model: alloy-demo-base',
    'gate_mode: hidden',
    'experts_per_token: 2',
    'experts:',
    '  - source_model: alloy-demo-math',
    '    positive_prompts:',
    '      - Solve 2x + 3 = 7',
    '  - source_model: alloy-demo-code',
    '    positive_prompts:',
    '      - Write a Python function',
    '',
  ].join('\n');

  it('opens a pasted mergekit-moe config in the experts editor, keeps it in step with the YAML and reviews it', async () => {
    const page = browser.page;
    await open();
    const yamlEditor = page.locator('#yaml-editor');
    await yamlEditor.fill(MOE_YAML);
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Method/ }).click();
    const editor = page.getByTestId('moe-editor');
    await editor.waitFor();
    expect(await page.locator('#moe-base').inputValue()).toBe('alloy-demo-base');
    const experts = editor.getByTestId('moe-expert');
    expect(await experts.count()).toBe(2);
    expect(await experts.nth(0).locator('input[list]').inputValue()).toBe('alloy-demo-math');
    expect(await experts.nth(1).locator('textarea').first().inputValue()).toBe('Write a Python function');

    // Form → YAML: the second expert's prompts.
    const prompts = experts.nth(1).locator('textarea').first();
    await prompts.fill('Write a Python function\nFix this stack trace');
    await prompts.blur();
    await expect.poll(() => yamlEditor.inputValue()).toContain('      - Write a Python function\n      - Fix this stack trace\n');
    expect(await yamlEditor.inputValue()).toContain('      - Solve 2x + 3 = 7\n');

    // YAML → form: the first expert's prompt typed in the YAML.
    await yamlEditor.fill((await yamlEditor.inputValue()).replace('Solve 2x + 3 = 7', 'Integrate x squared'));
    await expect.poll(() => experts.nth(0).locator('textarea').first().inputValue()).toBe('Integrate x squared');

    // An invalid experts_per_token: an error at its YAML path, in the editor and under the YAML.
    const perToken = page.locator('#moe-per-token');
    await perToken.fill('0');
    await perToken.blur();
    await expect.poll(() => yamlEditor.inputValue()).toContain('experts_per_token: 0');
    const field = page.locator('.field', { has: perToken }).getByTestId('moe-issues');
    await expect.poll(() => field.textContent()).toMatch(/experts_per_token\s*line 3: experts_per_token must be at least 1, not 0/);
    const listed = page.locator('#yaml-issues li.error');
    expect(await listed.count()).toBe(1);
    expect((await listed.textContent())!.replace(/\s+/g, ' ').trim()).toBe('line 3 experts_per_token experts_per_token must be at least 1, not 0');
    await page.getByText('1 problem', { exact: true }).waitFor();
    await perToken.fill('3');
    await perToken.blur();
    await expect.poll(() => editor.getByTestId('moe-issues').first().textContent()).toMatch(/^experts\s*line 5: there are 2 experts, fewer than experts_per_token \(3\)/);
    await perToken.fill('2');
    await perToken.blur();
    await page.getByText('valid', { exact: true }).waitFor();

    // Review: the experts, the output layout, and how to run it here or with the CLI.
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    const plan = page.getByTestId('moe-plan');
    await plan.waitFor();
    await expect.poll(() => plan.getByTestId('moe-plan-output').textContent(), { timeout: 30_000 }).toMatch(/Architecture\s*Mixtral/);
    expect((await plan.getByTestId('moe-plan-output').textContent())!.replace(/\s+/g, ' ')).toContain('Layers 4 (as the base), each with a router of 2 × 64 and 2 expert MLPs');
    const rows = plan.getByTestId('moe-plan-experts').locator('tbody tr');
    expect(await rows.count()).toBe(3);
    expect((await rows.nth(2).locator('td').allTextContents()).map((t) => t.trim())).toEqual(['experts[1]', 'alloy-demo-code', 'llama', '4', '64', '2 / 0']);
    expect(await plan.getByText('alloy moe moe-config.yml out/').count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Start merge' }).isDisabled()).toBe(false);
  });

  it('builds the mixture of experts in the worker: Run shows its progress, Result lists the files alloy moe writes, byte for byte', async () => {
    const page = browser.page;
    await open();
    await page.locator('#yaml-editor').fill(MOE_YAML);
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await expect.poll(() => page.getByTestId('moe-plan-output').textContent(), { timeout: 30_000 }).toMatch(/Architecture\s*Mixtral/);
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click({ timeout: 30_000 });
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const outputName = (await page.locator('.files h3').first().textContent())!.trim();

    // The Run step kept the build's last progress: every tensor written, and the bytes.
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Run/ }).click();
    const written = page.getByTestId('bytes-written');
    await written.waitFor();
    expect((await page.locator('.progress .pct').textContent())!.trim()).toBe('100%');
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Result/ }).click();

    // The same build with the CLI next to the demo models (the app's seed defaults to 0).
    const demoRoot = join(env.appDir, 'demo-models');
    writeConfig(demoRoot, 'moe.yml', MOE_YAML);
    const cli = await runAlloy(['moe', 'moe.yml', 'cli-moe', '--random-seed', '0', '--quiet'], demoRoot);
    expect(cli.code, cli.stderr).toBe(0);
    const card = page.locator('.files', { has: page.locator('h3', { hasText: outputName }) });
    const listed = (await card.locator('tbody tr td:first-child').allTextContents()).map((t) => t.trim()).sort();
    expect(listed).toEqual(readdirSync(join(demoRoot, 'cli-moe')).sort());
    for (const file of ['model.safetensors', 'config.json']) {
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        card.getByRole('row', { name: new RegExp(`^${file.replace('.', '\\.')}`) }).getByRole('button', { name: 'Download' }).click(),
      ]);
      expect(Buffer.compare(readFileSync((await download.path())!), readFileSync(join(demoRoot, 'cli-moe', file))), file).toBe(0);
    }
    expect(JSON.parse(readFileSync(join(demoRoot, 'cli-moe', 'config.json'), 'utf8'))).toMatchObject({ model_type: 'mixtral', num_local_experts: 2 });
    expect(outputName.length).toBeGreaterThan(0);
  });

  it('switches to the experts editor when "Mixture of experts" is chosen in the method step', async () => {
    const page = browser.page;
    await open();
    await page.locator('#yaml-editor').fill(MERGE_YAML.replace('merge_method: linear', 'merge_method: task_arithmetic\nbase_model: alloy-demo-base'));
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Method/ }).click();
    const choice = page.getByTestId('moe-choice');
    await choice.locator('summary').click();
    await choice.getByText('When is a mixture of experts the right choice?').waitFor();
    await choice.getByRole('button', { name: 'Build a mixture of experts instead' }).click();
    const editor = page.getByTestId('moe-editor');
    await editor.waitFor();
    expect(await page.locator('#moe-base').inputValue()).toBe('alloy-demo-base');
    expect(await editor.getByTestId('moe-expert').locator('input[list]').evaluateAll((inputs) => inputs.map((i) => (i as HTMLInputElement).value))).toEqual([
      'alloy-demo-math',
      'alloy-demo-code',
    ]);
    const yaml = await page.locator('#yaml-editor').inputValue();
    expect(yaml).toMatch(/^base_model: alloy-demo-base\ngate_mode: hidden\ndtype: float32\nexperts_per_token: 2\nexperts:\n  - source_model: alloy-demo-math\n    positive_prompts: \[\]\n/);
    // No prompts yet: each expert says what it needs, at its path.
    await expect.poll(() => editor.getByTestId('moe-expert').nth(0).getByTestId('moe-issues').textContent()).toMatch(/^experts\[0\]\.positive_prompts\s*line 7: expert 0 \(alloy-demo-math\) has no positive_prompts/);
    // And back, with an undo in the notice.
    await editor.getByRole('button', { name: 'Back to a merge' }).click();
    await expect.poll(() => page.locator('#yaml-editor').inputValue()).toMatch(/^models:\n  - model: alloy-demo-base\n[^]*\nmerge_method: linear\n/);
    expect(await page.getByTestId('moe-editor').count()).toBe(0);
  });
});
