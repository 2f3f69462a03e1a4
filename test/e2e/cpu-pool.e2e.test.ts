/**
 * The CPU backend's worker pool in real headless Chromium: the engine worker starts nested module
 * workers, sends them chunks as transferred buffers (no SharedArrayBuffer: the page is not
 * cross-origin isolated) and the merged bytes equal the CLI's on one thread. The MLP matrices
 * (512 × 768) are cut into chunks large enough to go to the workers.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Harness } from './harness/harness';
import { buildHarness, chromiumAvailable, launchBrowser, openHarnessPage, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { decodeSafetensors } from '../fixtures/safetensors';

type HarnessWindow = { alloyHarness: Harness };
const MEMORY = 40 * 2 ** 20;

describe.skipIf(!chromiumAvailable())('CPU worker pool in Chromium', () => {
  let hub: FakeHub;
  let models: HubModels;
  let site: StaticServer;
  let browser: BrowserSession;
  let cliOutput: string;

  beforeAll(async () => {
    const [dir] = await Promise.all([
      buildHarness(),
      (async () => {
        hub = await FakeHub.start();
        models = await makeHubModels({ arch: 'llama', dtype: 'BF16', seed: 1, hiddenSize: 512, intermediateSize: 768, numLayers: 1, numHeads: 8, numKvHeads: 8, vocabSize: 64 });
        serveHubModels(hub, models);
      })(),
    ]);
    site = await serveStatic(dir);
    writeConfig(models.root, 'ties.yml', TIES_YAML(models.ids));
    const cli = await runAlloy(['merge', 'ties.yml', 'cli-out', '--backend', 'cpu', '--threads', '1', '--random-seed', '1', '--memory', '40M'], models.root);
    expect(cli.code, cli.stderr).toBe(0);
    cliOutput = join(models.root, 'cli-out');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await hub?.close();
    if (models) rmSync(models.root, { recursive: true, force: true });
  });

  it('merges TIES on 3 nested workers; the bytes equal the CLI on one thread, and the Run step gets threads and the stage split', async () => {
    await openHarnessPage(browser.page, site.url);
    await browser.page.evaluate((hubUrl) => (window as unknown as HarnessWindow).alloyHarness.engine.configure({ hubUrl }), hub.url);
    expect(await browser.page.evaluate(() => globalThis.crossOriginIsolated)).toBe(false);
    const request = { yaml: TIES_YAML(models.ids), models: [], outputName: 'ties-pool', backend: 'cpu' as const, randomSeed: 1, threads: 3, memoryBudgetBytes: MEMORY };
    const result = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), request);
    expect(result, browser.log.join('\n')).not.toHaveProperty('error');
    const base64 = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.outputBase64('ties-pool', 'model.safetensors'));
    const ours = decodeSafetensors(new Uint8Array(Buffer.from(base64, 'base64')));
    const theirs = decodeSafetensors(new Uint8Array(readFileSync(join(cliOutput, 'model.safetensors'))));
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [name, tensor] of theirs) expect(Buffer.from(ours.get(name)!.raw).equals(Buffer.from(tensor.raw)), name).toBe(true);
    const last = await browser.page.evaluate(() => {
      const events = (window as unknown as HarnessWindow).alloyHarness.events;
      return events[events.length - 1];
    });
    expect(last.phase).toBe('done');
    expect(last.threads).toBe(3);
    expect(last.stageTimes!.readMs + last.stageTimes!.computeMs + last.stageTimes!.writeMs).toBeGreaterThan(0);
  });
});
