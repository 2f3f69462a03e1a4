/**
 * The built app as a static host serves it: under a sub-path (relative asset base: scripts,
 * workers and demo models resolved against the page), installable (web app manifest), and — once
 * visited — working with the host gone: the service worker serves the app shell and a merge of
 * local folders runs offline; its output equals the CLI's.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from 'vite';
import { writeDemoModels } from '../../scripts/generate-demo-models';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { HUB_NAMESPACE, makeHubModels, type HubModels } from '../fakehub/models';
import { chromiumAvailable, launchBrowser, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';

const SUB_PATH = '/spaces/alloy-tester/alloy/';
const LOCAL_YAML = ['models:', '  - model: ft-a', '    parameters: {weight: 0.6}', '  - model: ft-b', '    parameters: {weight: 0.4}', 'merge_method: linear', 'dtype: bfloat16', ''].join('\n');

describe.skipIf(!chromiumAvailable())('the app on a static host', () => {
  let siteRoot: string;
  let site: StaticServer | null = null;
  let browser: BrowserSession;
  let models: HubModels;

  beforeAll(async () => {
    siteRoot = mkdtempSync(join(tmpdir(), 'alloy-site-'));
    const appDir = join(siteRoot, ...SUB_PATH.split('/').filter(Boolean));
    mkdirSync(appDir, { recursive: true });
    await build({ root: join(import.meta.dirname, '..', '..'), logLevel: 'warn', build: { outDir: appDir, emptyOutDir: true } });
    await writeDemoModels(join(appDir, 'demo-models'));
    models = await makeHubModels();
    site = await serveStatic(siteRoot);
    browser = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    rmSync(siteRoot, { recursive: true, force: true });
    if (models) rmSync(models.root, { recursive: true, force: true });
  });

  it('runs under a sub-path: every request stays below it, the manifest and the demo models load', async () => {
    const page = browser.page;
    await page.goto(`${site!.url}${SUB_PATH}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    const demo = page.getByRole('group', { name: 'Demo models' }).getByRole('button').first();
    await demo.waitFor({ timeout: 30_000 });
    const demoName = (await demo.textContent())!.replace('+', '').trim();
    await demo.click();
    await page.locator('tbody tr', { hasText: demoName }).getByText('LlamaForCausalLM').waitFor({ timeout: 30_000 });
    const outside = site!.requests.filter((r) => !r.split(' ')[1].startsWith(SUB_PATH));
    expect(outside, browser.log.join('\n')).toEqual([]);
    const manifest = await page.evaluate(async () => {
      const link = document.querySelector<HTMLLinkElement>('link[rel=manifest]')!;
      const response = await fetch(link.href);
      return { url: link.href, json: (await response.json()) as { start_url: string; display: string; icons: unknown[] } };
    });
    expect(manifest.url).toBe(`${site!.url}${SUB_PATH}manifest.webmanifest`);
    expect(manifest.json).toMatchObject({ start_url: './', display: 'standalone' });
    expect(manifest.json.icons.length).toBeGreaterThan(0);
  });

  it('opens and merges local folders with the host gone, after one visit; the output equals the CLI’s', async () => {
    const parent = join(models.root, HUB_NAMESPACE);
    writeConfig(parent, 'hosted.yml', LOCAL_YAML);
    const cli = await runAlloy(['merge', 'hosted.yml', 'cli-hosted-out', '--backend', 'cpu'], parent);
    expect(cli.code, cli.stderr).toBe(0);

    const page = browser.page;
    const url = `${site!.url}${SUB_PATH}`;
    await page.goto(url);
    const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    expect(scope).toBe(url);
    await site!.close();
    site = null;

    await page.reload();
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    const clear = page.getByRole('button', { name: 'Clear' });
    if (await clear.isEnabled()) await clear.click();
    for (const model of [models.a, models.b]) await page.locator('input[webkitdirectory]').first().setInputFiles(model.dir);
    await page.locator('#yaml-editor').fill(LOCAL_YAML);
    await page.getByText('valid', { exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    const ours = readFileSync((await download.path())!);
    expect(ours.equals(readFileSync(join(parent, 'cli-hosted-out', 'model.safetensors'))), browser.log.join('\n')).toBe(true);
  });
});
