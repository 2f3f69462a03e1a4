/**
 * The browser app itself (src/ui) with the real engine worker, against the fake hub, driven the
 * way a user would: search and add the models, pick TIES and the base in the method guide, read the
 * plan, run the merge (WebGPU on SwiftShader, or the CPU fallback), download a file, sign in with a
 * token and push. Complements worker.e2e.test.ts, which drives the worker API directly.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HubModels } from '../fakehub/models';
import { FAKE_USER, FakeHub, WRITE_TOKEN } from '../fakehub/server';
import { chromiumAvailable, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';
import type { StaticServer } from './static-server';

const root = join(import.meta.dirname, '..', '..');
let hub: FakeHub;
let models: HubModels;
let site: StaticServer;
let browser: BrowserSession;
/** With ALLOY_SCREENSHOTS=1, the real-worker screens are also saved (docs/screenshots/real-*.png). */
const shots = process.env.ALLOY_SCREENSHOTS === '1';
const shot = async (name: string) => {
  if (shots) await browser.page.screenshot({ path: join(root, 'docs', 'screenshots', name) });
};

describe.skipIf(!chromiumAvailable())('the app, end to end (real worker, fake hub)', () => {
  let env: AppEnvironment;
  beforeAll(async () => {
    env = await startAppEnvironment({ demoModels: true });
    ({ hub, models, site, browser } = env);
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  it('searches, merges with TIES, downloads and pushes through the UI', async () => {
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    // Once the engine answered (it lists the demo models), the mock's banner would be there.
    await page.getByText('Try the bundled demo models').waitFor();
    expect(await page.getByText('Demo mode:', { exact: true }).count(), 'the real worker is used').toBe(0);

    // Models: search as you type, then add by id.
    const search = page.locator('#hub-model-input');
    await search.pressSequentially('alloy-test/ft', { delay: 15 });
    await page.getByRole('option', { name: new RegExp(models.ids.a) }).dispatchEvent('mousedown');
    for (const id of [models.ids.b, models.ids.base]) {
      await search.fill(id);
      await search.press('Enter');
    }
    await page.waitForFunction(() => !document.body.textContent?.includes('Reading config.json'), null, { timeout: 60_000 });
    expect(await page.locator('tbody tr', { hasText: 'LlamaForCausalLM' }).count(), failure()).toBe(3);

    // Method: TIES with the base model.
    await page.getByRole('button', { name: /Next: Method/ }).click();
    await page.locator('#method-ties').click();
    await page.locator('#base-model').selectOption(models.ids.base);
    await page.getByText('valid', { exact: true }).waitFor();
    const yaml = await page.locator('#yaml-editor').inputValue();
    expect(yaml).toContain('merge_method: ties');
    expect(yaml).toContain(`base_model: ${models.ids.base}`);

    // Review: the worker's plan.
    await page.getByRole('button', { name: /Next: Review/ }).click();
    await page.getByText('GPU memory').waitFor({ timeout: 60_000 });
    await page.getByRole('cell', { name: 'model.safetensors', exact: true }).waitFor();
    await shot('real-review.png');

    // Run.
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const outputName = (await page.locator('.files h3').first().textContent())!.trim();
    if (shots) {
      await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Run/ }).click();
      await shot('real-run-done.png');
      await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Result/ }).click();
    }

    // Download one file through an object URL of the OPFS File.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^config\.json/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    const saved = await download.path();
    expect(JSON.parse(readFileSync(saved!, 'utf8')).architectures).toEqual(['LlamaForCausalLM']);

    // The model card preview renders the README (as elements, not HTML).
    await page.getByRole('heading', { name: 'Merge Details' }).waitFor({ timeout: 30_000 });

    // Sign in with a token (checked with whoami) and push.
    // The Hub came with the address (?hub=): it must be confirmed before a token is sent to it.
    await page.getByRole('region', { name: 'Confirm the Hub' }).getByRole('button', { name: `Use ${new URL(hub.url).host}` }).click();
    await page.locator('#hf-token').fill(WRITE_TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByText(`as ${FAKE_USER}`).waitFor();
    await page.getByRole('button', { name: 'Push to the Hub' }).click();
    await page.getByText('Your model is at').waitFor({ timeout: 120_000 });
    await page.locator('#push-title').scrollIntoViewIfNeeded();
    await shot('real-pushed.png');
    const files = hub.repoFiles(`${FAKE_USER}/${outputName}`);
    expect(files, failure()).toBeDefined();
    expect([...files!.keys()]).toEqual(expect.arrayContaining(['model.safetensors', 'config.json', 'README.md', 'mergekit_config.yml']));
    expect(new TextDecoder().decode(files!.get('mergekit_config.yml'))).toContain('merge_method: ties');
  });

  it('reads a local model folder (folder picker) and a bundled demo model before any download', async () => {
    const page = browser.page;
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByRole('button', { name: 'Clear' }).click();
    await page.locator('input[webkitdirectory]').first().setInputFiles(models.a.dir);
    const folder = models.a.dir.split('/').pop()!;
    const row = page.locator('tbody tr', { hasText: folder });
    await row.getByText('local folder').waitFor();
    await row.getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
    // The demo list loads on its own; model rows have '+ …' buttons too (+ LoRA adapter).
    const demo = page.getByRole('group', { name: 'Demo models' }).getByRole('button').first();
    const demoName = (await demo.textContent())!.replace('+', '').trim();
    await demo.click();
    await page.locator('tbody tr', { hasText: demoName }).getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
    const yaml = await page.locator('#yaml-editor').inputValue();
    expect(yaml).toContain(`- model: ${folder}`);
    expect(yaml).toContain(`- model: ${demoName}`);
  });
});
