/**
 * A merge interrupted by a reload is offered to resume (issue 15, items 2b and 4), in the built app
 * with the real worker and the fake Hub. The fake Hub holds the CDN's range requests from some
 * point on (no answer: the merge stalls mid-download, or mid-merge when streaming), the page is
 * reloaded, the notice offers "Resume merge", and the resumed merge's output equals the CLI's
 * bytes. Files downloaded before the reload are not downloaded again, and a streamed merge
 * continues after its last completed tensor, with every weight file verified.
 */
import { readFileSync, statSync } from 'node:fs';
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

const WEIGHTS = 'model.safetensors';
const keys = ['a', 'b', 'base'] as const;

/** Bytes of each weight file the CDN has sent since the log was reset (ranged or whole; held requests send none). */
function servedBytes(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of keys) {
    out[key] = hub.requests
      .filter((r) => r.server === 'cdn' && r.file?.repo === models.ids[key] && r.file.path === WEIGHTS && r.fault === undefined)
      .reduce((sum, r) => sum + (r.bytesSent ?? 0), 0);
  }
  return out;
}

/** Bytes of the safetensors header of a model's weights (its length prefix included). */
function headerBytes(key: (typeof keys)[number]): number {
  return 8 + Number(readFileSync(join(models[key].dir, WEIGHTS)).readBigUInt64LE(0));
}

describe.skipIf(!chromiumAvailable())('resuming a merge after a reload', () => {
  let env: AppEnvironment;
  let cliOutput: Buffer;
  beforeAll(async () => {
    env = await startAppEnvironment();
    ({ hub, models, site, browser } = env);
    writeConfig(models.root, 'ties.yml', TIES_YAML(models.ids));
    const cli = await runAlloy(['merge', 'ties.yml', 'cli-ties', '--backend', 'cpu'], models.root);
    expect(cli.code, cli.stderr).toBe(0);
    cliOutput = readFileSync(join(models.root, 'cli-ties', WEIGHTS));
    // Leaving a page with a running merge asks first (beforeunload): these tests leave anyway.
    browser.page.on('dialog', (dialog) => void dialog.accept());
  }, 300_000);

  afterAll(async () => {
    await env?.close();
  });

  async function startMerge(mode: 'stream' | 'cache', name: string, holdAfter: number): Promise<void> {
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
    await page.getByRole('navigation', { name: 'Steps' }).getByRole('button', { name: /Review/ }).click();
    await page.locator('#output-name').fill(name);
    const start = page.getByRole('button', { name: 'Start merge' }).and(page.locator(':enabled'));
    await start.waitFor({ timeout: 60_000 });
    hub.resetLog();
    let downloads = 0;
    hub.faults = { hold: (record) => record.file?.path === WEIGHTS && ++downloads > holdAfter };
    await start.click();
    await expect.poll(() => hub.heldRequests, { timeout: 120_000 }).toBeGreaterThan(0);
  }

  /** Reloads the page (leaving despite the "merge running" prompt) with the Hub answering again. */
  async function reload(): Promise<void> {
    const page = browser.page;
    hub.faults = {};
    await page.reload();
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
  }

  async function downloadWeights(): Promise<Buffer> {
    const page = browser.page;
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('row', { name: /^model\.safetensors/ }).getByRole('button', { name: 'Download' }).click(),
    ]);
    return readFileSync((await download.path())!);
  }

  it('reloaded mid-download (cache mode): offers to resume, does not download finished files again, writes the CLI’s bytes', async () => {
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    // The first weight file is served whole, the next request is held: the download stalls.
    await startMerge('cache', 'resumed-cache', 1);
    const before = servedBytes();
    const finished = keys.filter((k) => before[k] === statSync(join(models[k].dir, WEIGHTS)).size);
    expect(finished.length, JSON.stringify(before)).toBeGreaterThan(0);
    expect(finished.length).toBeLessThan(keys.length);

    await reload();
    const notice = page.getByTestId('resume-notice');
    await notice.waitFor({ timeout: 30_000 });
    expect(await notice.textContent()).toContain('resumed-cache');
    hub.resetLog();
    await notice.getByRole('button', { name: 'Resume merge' }).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    expect((await downloadWeights()).equals(cliOutput), failure()).toBe(true);
    // What was cached before the reload is read from the cache: of those files only the header
    // again (the page reads the models' headers anew after a reload), nothing of their weights.
    const after = servedBytes();
    for (const k of finished) expect(after[k], k).toBeLessThanOrEqual(2 * headerBytes(k));
    expect(await page.getByTestId('resume-notice').count()).toBe(0);
  });

  it('Discard removes what the unfinished merge wrote and the offer goes away for good', async () => {
    const page = browser.page;
    await startMerge('stream', 'discarded', 40);
    await reload();
    const notice = page.getByTestId('resume-notice');
    await notice.waitFor({ timeout: 30_000 });
    const partials = () =>
      page.evaluate(async () => {
        const outputs = await (await navigator.storage.getDirectory()).getDirectoryHandle('alloy-outputs');
        const names: string[] = [];
        for await (const [name] of (outputs as unknown as { entries(): AsyncIterable<[string, unknown]> }).entries()) names.push(name);
        return names.filter((n) => n.startsWith('.partial-'));
      });
    expect(await partials()).toHaveLength(1);
    await notice.getByRole('button', { name: 'Discard' }).click();
    await notice.waitFor({ state: 'detached' });
    await expect.poll(partials).toEqual([]);
    await page.reload();
    await page.getByRole('heading', { name: 'mergekit YAML' }).waitFor();
    await page.getByRole('button', { name: 'Settings' }).waitFor();
    expect(await page.getByTestId('resume-notice').count()).toBe(0);
  });

  it('reloaded mid-merge (stream mode): resumes after the last completed tensor, verifies every streamed file, writes the CLI’s bytes', async () => {
    const page = browser.page;
    const failure = () => browser.log.join('\n');
    // About a third of the merge's weight requests are answered, then the stream stalls.
    await startMerge('stream', 'resumed-stream', 40);
    // Some tensors were written before the stall.
    const tensors = page.locator('dt:text-is("Tensors") + dd');
    await expect.poll(async () => Number((await tensors.textContent())?.split('/')[0].replace(/,/g, '').trim()), { timeout: 30_000 }).toBeGreaterThan(0);
    const done = Number((await tensors.textContent())!.split('/')[0].replace(/,/g, '').trim());

    await reload();
    const notice = page.getByTestId('resume-notice');
    await notice.waitFor({ timeout: 30_000 });
    expect(await notice.textContent()).toMatch(/after \d+ of \d+ tensors/);
    await notice.getByRole('button', { name: 'Resume merge' }).click();
    await page.getByRole('heading', { name: 'Push to the Hugging Face Hub' }).waitFor({ timeout: 180_000 });
    expect((await downloadWeights()).equals(cliOutput), failure()).toBe(true);
    // Resumed, not restarted, and every weight file checked against its sha256.
    const resumedAfter = await page.getByTestId('resumed-after').textContent();
    expect(resumedAfter).toMatch(/continued after \d+ of \d+ tensors/);
    expect(Number(/continued after (\d+)/.exec(resumedAfter ?? '')?.[1]), resumedAfter ?? '').toBeGreaterThanOrEqual(done);
    expect(await page.getByText('was streamed and not checked').count()).toBe(0);
    expect(await page.getByText(/Hub files? matched the Hub's hashes/).first().textContent()).toMatch(/\d+ Hub files/);
  });
});
