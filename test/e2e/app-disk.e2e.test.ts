/**
 * Real size within a laptop's disk (issue 15, item 2), in the built app with the real worker and
 * the fake Hub: a merge that streams Hub models (Settings → "Stream while merging") writes the
 * same bytes as the CLI and leaves no model file in the OPFS cache; a merge saved into a folder
 * writes its files there only. `showDirectoryPicker` needs a user gesture and a real picker, which
 * headless Chromium cannot show: the test replaces it with a function returning a folder of the
 * origin private file system (a FileSystemDirectoryHandle like the picker's, same write API), so
 * the path through the page, the worker and DirectoryOutputFolder is the real one, but the
 * permission prompt and a folder on the user's disk are not exercised (docs/browser.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TIES_YAML, type HubModels } from '../fakehub/models';
import type { FakeHub } from '../fakehub/server';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { chromiumAvailable, type BrowserSession } from './browser';
import { startAppEnvironment, type AppEnvironment } from './app-environment';
import type { StaticServer } from './static-server';

let hub: FakeHub;
let models: HubModels;
let site: StaticServer;
let browser: BrowserSession;

/** Every file under the OPFS root, as paths with sizes (read in the page). */
async function opfsFiles(): Promise<Record<string, number>> {
  return browser.page.evaluate(async () => {
    const out: Record<string, number> = {};
    const walk = async (dir: FileSystemDirectoryHandle, prefix: string): Promise<void> => {
      for await (const [name, handle] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
        if (handle.kind === 'directory') await walk(handle as FileSystemDirectoryHandle, `${prefix}${name}/`);
        else out[`${prefix}${name}`] = (await (handle as FileSystemFileHandle).getFile()).size;
      }
    };
    await walk(await navigator.storage.getDirectory(), '');
    return out;
  });
}

describe.skipIf(!chromiumAvailable())('the app within a laptop’s disk: streamed inputs, output into a folder', () => {
  let env: AppEnvironment;
  let cliOutput: Buffer;
  beforeAll(async () => {
    env = await startAppEnvironment();
    ({ hub, models, site, browser } = env);
    writeConfig(models.root, 'ties.yml', TIES_YAML(models.ids));
    const cli = await runAlloy(['merge', 'ties.yml', 'cli-ties', '--backend', 'cpu'], models.root);
    expect(cli.code, cli.stderr).toBe(0);
    cliOutput = readFileSync(join(models.root, 'cli-ties', 'model.safetensors'));
    // The stub picker: an OPFS folder stands in for the folder the user would pick.
    await browser.context.addInitScript(() => {
      (window as unknown as { showDirectoryPicker: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker = async () =>
        (await navigator.storage.getDirectory()).getDirectoryHandle('picked-folder', { create: true });
    });
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  async function openWithSettings(mode: 'stream' | 'cache'): Promise<void> {
    const page = browser.page;
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${site.url}/?hub=${encodeURIComponent(hub.url)}`);
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.locator('input[type=radio][value=cpu]').check();
    await page.getByTestId(`input-mode-${mode}`).check();
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('input[type=radio][value=cpu]').waitFor({ state: 'detached' });
    await page.locator('#yaml-editor').fill(TIES_YAML(models.ids));
    await page.getByText('valid', { exact: true }).waitFor();
  }

  it('streams Hub models: Review shows the disk per mode, the output equals the CLI’s, no model file lands in the cache', async () => {
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    await openWithSettings('stream');
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.locator('#output-name').fill('streamed');
    const panel = page.getByTestId('disk-panel');
    await panel.waitFor({ timeout: 60_000 });
    await expect.poll(() => page.getByTestId('disk-stream-browser').textContent(), { timeout: 30_000 }).toContain('this merge');
    expect(await page.getByTestId('disk-mode-reason').textContent()).toContain('Settings ask to stream Hub models');
    expect(await page.getByTestId('disk-available').textContent()).toMatch(/\d/);
    hub.resetLog();
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    const ours = readFileSync((await download.path())!);
    expect(ours.equals(cliOutput), failure()).toBe(true);
    // Nothing of the models in the cache: only the output.
    const files = await opfsFiles();
    expect(Object.keys(files).filter((f) => f.startsWith('alloy-cache/') && !f.endsWith('/')), JSON.stringify(files)).toEqual([]);
    expect(Object.keys(files).filter((f) => f.startsWith('alloy-outputs/streamed/')).sort()).toContain('alloy-outputs/streamed/model.safetensors');
    // Every weight read was a CORS-simple single range on the CDN.
    const ranges = hub.requests.filter((r) => r.server === 'cdn' && r.range !== null);
    expect(ranges.length).toBeGreaterThan(0);
    for (const r of ranges) expect(r.range).toMatch(/^bytes=\d+-\d+$/);
  });

  it('saves into a picked folder as it writes: Result says where, the files are there and nowhere else in the browser', async () => {
    const page = browser.page;
    await openWithSettings('cache');
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.locator('#output-name').fill('in-folder');
    await page.getByTestId('choose-output-folder').click();
    await expect.poll(() => page.getByTestId('output-folder-name').textContent(), { timeout: 30_000 }).toBe('picked-folder/in-folder');
    await expect.poll(() => page.getByTestId('disk-cache-folder').textContent(), { timeout: 30_000 }).toContain('this merge');
    await page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled')).click();
    await page.getByTestId('saved-to-folder').waitFor({ timeout: 180_000 });
    expect(await page.getByTestId('saved-location').textContent()).toBe('picked-folder/in-folder');

    const files = await opfsFiles();
    const saved = Object.keys(files).filter((f) => f.startsWith('picked-folder/'));
    expect(saved).toContain('picked-folder/in-folder/model.safetensors');
    expect(saved.every((f) => f.startsWith('picked-folder/in-folder/')), saved.join(', ')).toBe(true);
    expect(Object.keys(files).some((f) => f.startsWith('alloy-outputs/in-folder'))).toBe(false);
    const bytes = await page.evaluate(async () => {
      const root = await navigator.storage.getDirectory();
      const dir = await (await root.getDirectoryHandle('picked-folder')).getDirectoryHandle('in-folder');
      return Array.from(new Uint8Array(await (await (await dir.getFileHandle('model.safetensors')).getFile()).arrayBuffer()));
    });
    expect(Buffer.from(bytes).equals(cliOutput)).toBe(true);
  });
});
