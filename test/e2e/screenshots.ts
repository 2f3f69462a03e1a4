/**
 * Screenshots of the app's main screens at 1440×900 (docs/screenshots/), driven through the UI
 * with the mock engine (the dev/test entry mock.html), so they need no Hub, GPU or weights. The flow also works
 * as a smoke test of the UI: each step waits for what the page must show.
 *
 * Run: `ALLOY_SCREENSHOTS=1 npx vitest run test/e2e/screenshots.e2e.test.ts` (builds the app and serves
 * it), or against a running server: `ALLOY_BASE_URL=http://127.0.0.1:4173 ALLOY_SCREENSHOTS=1 …`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './browser';

const TIES = `models:
  - model: mistralai/Mistral-7B-v0.1
  - model: HuggingFaceH4/zephyr-7b-beta
    parameters:
      density: [1, 0.7, 0.1]
      weight: 1.0
  - model: teknium/OpenHermes-2.5-Mistral-7B
    parameters:
      density: 0.5
      weight:
        - filter: mlp
          value: 0.5
        - value: 0.3
merge_method: ties
base_model: mistralai/Mistral-7B-v0.1
parameters:
  normalize: true
dtype: bfloat16
`;

const GRADIENT_SLERP = `slices:
  - sources:
      - model: HuggingFaceH4/zephyr-7b-beta
        layer_range: [0, 32]
      - model: teknium/OpenHermes-2.5-Mistral-7B
        layer_range: [0, 32]
merge_method: slerp
base_model: HuggingFaceH4/zephyr-7b-beta
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # everything else
dtype: bfloat16
`;

const FRANKENMERGE = `slices:
  - sources:
      - model: HuggingFaceH4/zephyr-7b-beta
        layer_range: [0, 24]
  - sources:
      - model: teknium/OpenHermes-2.5-Mistral-7B
        layer_range: [8, 32]
merge_method: passthrough
dtype: bfloat16
`;

const BROKEN = `models:
  - model: HuggingFaceH4/zephyr-7b-beta
    parameters:
      wieght: 0.5
  - model: teknium/OpenHermes-2.5-Mistral-7B
    parameters:
      weight: 0.5
      density: 0
merge_method: ties
dtype: bf16
`;

export interface ScreenshotOptions {
  readonly baseUrl: string;
  readonly outDir: string;
  readonly executablePath?: string;
  readonly log?: (line: string) => void;
}

async function setYaml(page: Page, text: string): Promise<void> {
  await page.locator('#yaml-editor').fill(text);
}

async function scrollMainTo(page: Page, selector: string, offset = 12): Promise<void> {
  await page.locator(selector).first().waitFor();
  await page.evaluate(
    ({ selector, offset }) => {
      const main = document.getElementById('main')!;
      const el = document.querySelector(selector)!;
      main.scrollTop += el.getBoundingClientRect().top - main.getBoundingClientRect().top - offset;
    },
    { selector, offset },
  );
}

async function waitForModelsRead(page: Page): Promise<void> {
  await page.waitForFunction(() => !document.body.textContent?.includes('Reading config.json'));
}

async function gotoStep(page: Page, label: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: new RegExp(`^\\d?\\s*${label}`) }).click();
}

async function openApp(browser: Browser, url: string, errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on('pageerror', (error) => errors.push(`${url}: ${error.message}`));
  await page.goto(url);
  await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
  if (url.includes('#config=')) {
    await page.getByText('Loaded the config from the link').waitFor();
    await page.getByRole('button', { name: 'Dismiss' }).click();
  }
  return page;
}

/** Takes every screenshot; returns the files written. Throws when the page misbehaves. */
export async function captureScreenshots(options: ScreenshotOptions): Promise<string[]> {
  const log = options.log ?? (() => {});
  mkdirSync(options.outDir, { recursive: true });
  const written: string[] = [];
  const errors: string[] = [];
  const shot = async (page: Page, name: string) => {
    const path = join(options.outDir, name);
    await page.waitForTimeout(250);
    await page.screenshot({ path });
    written.push(path);
    log(`wrote ${path}`);
  };
  const url = (query: string, hash = '') => `${options.baseUrl.replace(/\/$/, '')}/mock.html?${query}${hash}`;
  const browser = await chromium.launch({ executablePath: options.executablePath ?? CHROMIUM, args: CHROMIUM_ARGS });
  try {
    // 1. Models: search-as-you-type, three compatible models and one that is not.
    let page = await openApp(browser, url('mock=fast'), errors);
    const search = page.locator('#hub-model-input');
    await search.pressSequentially('mistral-7b-v0', { delay: 20 });
    await page.getByRole('option', { name: /mistralai\/Mistral-7B-v0\.1/ }).dispatchEvent('mousedown');
    for (const id of ['HuggingFaceH4/zephyr-7b-beta', 'teknium/OpenHermes-2.5-Mistral-7B', 'meta-llama/Meta-Llama-3-8B']) {
      await search.fill(id);
      await search.press('Enter');
    }
    await waitForModelsRead(page);
    await page.getByText('Different architectures').waitFor();
    await search.pressSequentially('qwen2.5', { delay: 20 });
    await page.getByRole('listbox', { name: 'Matching models' }).waitFor();
    await shot(page, '01-models.png');

    // 2. Method guide: the recommendation follows the models (fine-tunes plus their base → TIES).
    await search.fill('');
    await page.getByRole('button', { name: 'Remove meta-llama/Meta-Llama-3-8B' }).click();
    await page.getByRole('button', { name: /Next: Method/ }).click();
    await page.getByText('2 fine-tunes of mistralai/Mistral-7B-v0.1, with the base').waitFor();
    await page.locator('.rec', { hasText: 'TIES' }).first().click();
    await page.getByRole('heading', { name: 'TIES', exact: true }).waitFor();
    await shot(page, '02-method.png');

    // 3. Per-model parameters with a gradient and per-tensor rules, typed in the YAML (YAML → form).
    await setYaml(page, TIES);
    await page.getByRole('heading', { name: 'Per-model parameters' }).waitFor();
    await scrollMainTo(page, '#model-params-title');
    await shot(page, '03-parameters.png');

    // 4. The official gradient-slerp recipe: t per layer for attention and MLP, as a chart.
    await setYaml(page, GRADIENT_SLERP);
    await page.getByRole('heading', { name: 'Method parameters' }).waitFor();
    await scrollMainTo(page, '#global-params-title');
    await shot(page, '04-gradient.png');

    // 5. Validation as you type: issues with line numbers, the form stays usable.
    await setYaml(page, BROKEN);
    await page.locator('#yaml-issues li').first().waitFor();
    await page.locator('#main').evaluate((m) => (m.scrollTop = 0));
    await shot(page, '05-yaml-issues.png');

    // 6. A frankenmerge: slices, the slice editor and the layer map.
    await setYaml(page, FRANKENMERGE);
    await page.getByText('48 output layers', { exact: false }).first().waitFor();
    await scrollMainTo(page, '#layers-title', 60);
    await shot(page, '06-slices.png');

    // 7. Review: sizes, memory, files and warnings before anything is downloaded.
    await setYaml(page, TIES);
    await gotoStep(page, 'Review');
    await page.getByText('GPU memory').waitFor();
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).waitFor();
    await shot(page, '07-review.png');
    await page.waitForFunction(() => location.hash.startsWith('#config='));
    const hash = new URL(page.url()).hash;
    await page.close();

    // 8. Run, on a browser without WebGPU (the mock's CPU fallback), caught half way.
    page = await openApp(browser, url('mock=slow,cpu', hash), errors);
    await waitForModelsRead(page);
    await gotoStep(page, 'Review');
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByText('Running on the CPU').waitFor();
    await page.waitForFunction(() => {
      const bar = document.querySelector('[role=progressbar][aria-label="Merge progress"]');
      return Number(bar?.getAttribute('aria-valuenow') ?? 0) >= 40;
    }, undefined, { timeout: 60_000 });
    await page.locator('.downloads li', { hasText: 'downloading' }).first().locator('summary').click();
    await scrollMainTo(page, '#run-title', 12);
    await shot(page, '08-run.png');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByText('Cancelled', { exact: true }).waitFor();
    await page.close();

    // 9. Result: files, sign-in, model card preview; then the push.
    page = await openApp(browser, url('mock=fast', hash), errors);
    await waitForModelsRead(page);
    await gotoStep(page, 'Review');
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor();
    await page.locator('#hf-token').fill('hf_demo_token_for_screenshots');
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByText('signed in', { exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Merge Details' }).waitFor();
    await scrollMainTo(page, '#push-title', 330);
    await shot(page, '09-result.png');
    await page.getByRole('button', { name: 'Push to the Hub' }).click();
    await page.getByText('Your model is at').waitFor();
    await scrollMainTo(page, '#push-title');
    await shot(page, '10-pushed.png');

    // 10. The model cache.
    await page.getByRole('button', { name: 'Cache' }).click();
    await page.getByRole('dialog').getByText('Total').waitFor();
    await shot(page, '11-cache.png');
    await page.close();

    // 11. A storage quota error, explained.
    page = await openApp(browser, url('mock=fast,quota', hash), errors);
    await waitForModelsRead(page);
    await gotoStep(page, 'Review');
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByText('The browser ran out of storage for this site').waitFor();
    await shot(page, '12-quota-error.png');
    await page.close();
  } finally {
    await browser.close();
  }
  if (errors.length > 0) throw new Error(`errors in the page:\n${errors.join('\n')}`);
  return written;
}
