/**
 * The engine worker in real headless Chromium (real OPFS, real Web Worker, comlink), against the
 * fake hub on other origins (CORS, redirects to a "CDN"): a TIES merge whose output equals the
 * CLI's, a reload in the middle of a download that resumes without fetching finished blocks, and
 * a network failure that is retried, then explained.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Harness } from './harness/harness';
import { buildHarness, chromiumAvailable, launchBrowser, openHarnessPage, type BrowserSession } from './browser';
import { serveStatic, type StaticServer } from './static-server';
import { runAlloy, writeConfig } from '../cli/run-alloy';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FAKE_USER, FakeHub, READ_TOKEN, WRITE_TOKEN } from '../fakehub/server';
import { decodeSafetensors } from '../fixtures/safetensors';
import { writeDemoModels } from '../../scripts/generate-demo-models';
import { expectWithinUlp } from '../helpers/ulp';

const BLOCK = 32 * 1024;
let hub: FakeHub;
let models: HubModels;
let site: StaticServer;
let browser: BrowserSession;
let cliOutput: string;
let cliGradientOutput: string;

/** TIES_YAML with a density gradient over the layers on one model (interpolated per layer, as mergekit does). */
const GRADIENT_YAML = (ids: HubModels['ids']): string =>
  TIES_YAML(ids).replace('{weight: 1.0, density: 0.5}', '{weight: 1.0, density: [1, 0.7, 0.1]}').replace('{weight: 0.7, density: 0.7}', '{weight: 0.7, density: 0.5}');

type HarnessWindow = { alloyHarness: Harness };

async function openHarness(download: Record<string, number> = {}): Promise<void> {
  await openHarnessPage(browser.page, site.url);
  await browser.page.evaluate(
    ([hubUrl, d]) => (window as unknown as HarnessWindow).alloyHarness.engine.configure({ hubUrl, download: d }),
    [hub.url, { blockBytes: BLOCK, ...download }] as const,
  );
}

function mergeRequest(outputName: string, yaml = TIES_YAML(models.ids)) {
  return { yaml, models: [], outputName, backend: 'cpu' as const, randomSeed: 1 };
}

async function outputFile(outputName: string, file: string): Promise<Buffer> {
  const base64 = await browser.page.evaluate(
    ([name, f]) => (window as unknown as HarnessWindow).alloyHarness.outputBase64(name, f),
    [outputName, file] as const,
  );
  return Buffer.from(base64, 'base64');
}

async function expectSameAsCli(outputName: string, cliDir = cliOutput): Promise<void> {
  const ours = decodeSafetensors(new Uint8Array(await outputFile(outputName, 'model.safetensors')));
  const theirs = decodeSafetensors(new Uint8Array(readFileSync(join(cliDir, 'model.safetensors'))));
  expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
  for (const [name, tensor] of theirs) {
    const mine = ours.get(name)!;
    expect(mine.dtype, name).toBe(tensor.dtype);
    expect(mine.shape, name).toEqual(tensor.shape);
    expect(Buffer.from(mine.raw).equals(Buffer.from(tensor.raw)), name).toBe(true);
  }
  for (const file of ['config.json', 'tokenizer.json', 'mergekit_config.yml']) {
    expect((await outputFile(outputName, file)).equals(readFileSync(join(cliDir, file))), file).toBe(true);
  }
}

describe.skipIf(!chromiumAvailable())('engine worker in Chromium', () => {
  beforeAll(async () => {
    const [dir] = await Promise.all([buildHarness(), (async () => {
      // Multipart above 128 KiB: pushing the 290 KB merged shard uses part uploads (and reads their ETags).
      hub = await FakeHub.start({ multipartThreshold: 128 * 1024, multipartChunkSize: 64 * 1024 });
      models = await makeHubModels();
      serveHubModels(hub, models);
    })()]);
    await writeDemoModels(join(dir, 'demo-models'));
    site = await serveStatic(dir);
    writeConfig(models.root, 'ties.yml', TIES_YAML(models.ids));
    const cli = await runAlloy(['merge', 'ties.yml', 'cli-out', '--backend', 'cpu', '--random-seed', '1'], models.root);
    expect(cli.code, cli.stderr).toBe(0);
    cliOutput = join(models.root, 'cli-out');
    writeConfig(models.root, 'ties-gradient.yml', GRADIENT_YAML(models.ids));
    const gradient = await runAlloy(['merge', 'ties-gradient.yml', 'cli-gradient-out', '--backend', 'cpu', '--random-seed', '1'], models.root);
    expect(gradient.code, gradient.stderr).toBe(0);
    cliGradientOutput = join(models.root, 'cli-gradient-out');
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await hub?.close();
    if (models) rmSync(models.root, { recursive: true, force: true });
  });

  beforeEach(() => {
    hub.resetLog();
    hub.faults = {};
  });

  it('merges two fake-hub fine-tunes with TIES in the worker; the OPFS output equals the CLI’s', async () => {
    await openHarness();
    const result = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), mergeRequest('ties-1'));
    expect(result, browser.log.join('\n')).not.toHaveProperty('error');
    await expectSameAsCli('ties-1');
    const phases = await browser.page.evaluate(() => [...new Set((window as unknown as HarnessWindow).alloyHarness.events.map((e) => e.phase))]);
    expect(phases).toEqual(['preparing', 'downloading', 'merging', 'writing', 'done']);
    // Every byte came through range requests on the CDN origin, each block once.
    for (const id of Object.values(models.ids)) {
      const reads = hub.rangeReads(id, 'model.safetensors').filter((r) => r.status === 206 && r.range !== 'bytes=0-7' && !/^bytes=8-/.test(r.range!));
      const size = readFileSync(join(models.root, id, 'model.safetensors')).byteLength;
      expect(reads.length, `${id}: ${reads.map((r) => r.range).join(' ')}`).toBe(Math.ceil(size / BLOCK));
    }
    // Push it to the Hub from the worker (preflighted PUTs and POSTs, multipart with exposed ETags).
    const pushed = await browser.page.evaluate(
      ([token]) => {
        const h = (window as unknown as HarnessWindow).alloyHarness;
        return h.engine.push({ outputName: 'ties-1', repo: 'ties-from-browser', private: false, accessToken: token }, (p) => h.pushEvents.push(p));
      },
      [WRITE_TOKEN] as const,
    );
    expect(pushed.url).toBe(`${hub.url}/${FAKE_USER}/ties-from-browser`);
    const files = hub.repoFiles(`${FAKE_USER}/ties-from-browser`)!;
    expect(Buffer.from(files.get('model.safetensors')!).equals(await outputFile('ties-1', 'model.safetensors'))).toBe(true);
    expect(new TextDecoder().decode(files.get('README.md'))).toContain('# ties-1');
    expect(hub.requests.filter((r) => r.method === 'PUT' && r.path.includes('/part/')).length).toBe(5);
    const pushPhases = await browser.page.evaluate(() => [...new Set((window as unknown as HarnessWindow).alloyHarness.pushEvents.map((e) => e.phase))]);
    expect(pushPhases[0]).toBe('creating');
    expect(pushPhases.at(-1)).toBe('done');

    // The worker API also lists, downloads and deletes outputs and cache entries.
    const listed = await browser.page.evaluate(async () => {
      const { engine } = (window as unknown as HarnessWindow).alloyHarness;
      const outputs = await engine.listOutputs();
      const file = await engine.outputFile('ties-1', 'config.json');
      const cache = await engine.listCache();
      await engine.deleteOutput('ties-1');
      return { outputs: outputs.map((o) => o.outputName), isFile: file instanceof File, size: file.size, cache: cache.length, after: (await engine.listOutputs()).length };
    });
    expect(listed).toMatchObject({ outputs: ['ties-1'], isFile: true, cache: 3, after: 0 });
  });

  it('merges TIES with a density gradient ([1, 0.7, 0.1] over the layers) in the worker; the OPFS output equals the CLI’s', async () => {
    await openHarness();
    const result = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), mergeRequest('ties-gradient', GRADIENT_YAML(models.ids)));
    expect(result, browser.log.join('\n')).not.toHaveProperty('error');
    await expectSameAsCli('ties-gradient', cliGradientOutput);
    // The gradient matters: the output differs from the flat-density merge.
    expect((await outputFile('ties-gradient', 'model.safetensors')).equals(readFileSync(join(cliOutput, 'model.safetensors')))).toBe(false);
  });

  it('runs the same merge on WebGPU (SwiftShader) in the worker when WebGPU is asked for: within 1 bf16 ulp of the CLI', async () => {
    await openHarness();
    const result = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), { ...mergeRequest('ties-gpu'), backend: 'webgpu' as const });
    expect(result, browser.log.join('\n')).not.toHaveProperty('error');
    const last = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.events.at(-1)!);
    expect(last.backend).toBe('webgpu');
    expect(last.backendNotice).toMatch(/software adapter/);
    const ours = decodeSafetensors(new Uint8Array(await outputFile('ties-gpu', 'model.safetensors')));
    const theirs = decodeSafetensors(new Uint8Array(readFileSync(join(cliOutput, 'model.safetensors'))));
    for (const [name, tensor] of theirs) {
      expect(ours.get(name)!.shape, name).toEqual(tensor.shape);
      expectWithinUlp(ours.get(name)!.values, tensor.values, 'BF16', 1, name);
    }
  });

  it('auto does not merge on the software adapter: the CPU backend runs and says why', async () => {
    await openHarness();
    const result = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), { ...mergeRequest('ties-auto'), backend: 'auto' as const });
    expect(result, browser.log.join('\n')).not.toHaveProperty('error');
    const last = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.events.at(-1)!);
    expect(last.backend).toBe('cpu');
    expect(last.backendReason).toMatch(/only WebGPU adapter \(.*\) is a software renderer/);
    expect(last.backendNotice).toBeUndefined();
    await expectSameAsCli('ties-auto');
  });

  it('merges the bundled demo models with no hub at all', async () => {
    await openHarness();
    const result = await browser.page.evaluate(async () => {
      const h = (window as unknown as HarnessWindow).alloyHarness;
      const demos = await h.engine.listDemoModels();
      const yaml = [
        'models:',
        ...demos.slice(1).map((d) => `  - model: ${d.name}\n    parameters: {weight: 0.5, density: 0.5}`),
        'merge_method: dare_ties',
        `base_model: ${demos[0].name}`,
        'dtype: bfloat16',
      ].join('\n');
      const merged = await h.merge({ yaml, models: [], outputName: 'demo-dare', randomSeed: 3 });
      return { demos: demos.map((d) => d.name), merged };
    });
    expect(result.demos).toEqual(['alloy-demo-base', 'alloy-demo-math', 'alloy-demo-code']);
    expect(result.merged, browser.log.join('\n')).not.toHaveProperty('error');
    expect(hub.requests).toEqual([]);
    expect(site.requests.some((r) => r.endsWith('/demo-models/alloy-demo-base/model.safetensors'))).toBe(true);
  });

  it('reads a private model with a token (Authorization through the CDN redirect)', async () => {
    const dir = join(models.root, models.ids.a);
    hub.addModelDir(`${FAKE_USER}/private-ft`, dir, { private: true, owner: FAKE_USER });
    await openHarness();
    const anonymous = await browser.page.evaluate(() =>
      (window as unknown as HarnessWindow).alloyHarness.engine.inspectModel({ kind: 'hub', repo: 'alloy-tester/private-ft' }).then(
        (s) => s.key,
        (e: Error) => e.message,
      ),
    );
    expect(anonymous).toMatch(/no model alloy-tester\/private-ft on the Hub .*sign in for private\/gated models/);
    await browser.page.evaluate(([url, token]) => (window as unknown as HarnessWindow).alloyHarness.engine.configure({ hubUrl: url, accessToken: token }), [hub.url, READ_TOKEN] as const);
    const summary = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.engine.inspectModel({ kind: 'hub', repo: 'alloy-tester/private-ft' }));
    expect(summary).toMatchObject({ key: 'alloy-tester/private-ft', numLayers: 3 });
    const resolves = hub.requests.filter((r) => r.server === 'hub' && r.method === 'GET' && r.path.startsWith('/alloy-tester/private-ft/resolve/'));
    expect(resolves.length).toBeGreaterThan(0);
    expect(resolves.every((r) => r.authorization === `Bearer ${READ_TOKEN}`)).toBe(true);
    // The token is not sent on to the other origin.
    expect(hub.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').every((r) => r.authorization === null)).toBe(true);
  });

  it('resumes a download after a page reload without fetching finished blocks again', async () => {
    // A fresh cache: earlier tests filled it.
    await openHarness();
    await browser.page.evaluate(async (ids) => {
      const { engine } = (window as unknown as HarnessWindow).alloyHarness;
      for (const id of ids) await engine.deleteCached(id);
    }, Object.values(models.ids));
    await openHarness({ concurrency: 1 });
    hub.resetLog();
    hub.faults = { bytesPerSecond: 96 * 1024 };
    // Rejects when the page goes away below it: that is the point.
    browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), mergeRequest('ties-resume')).catch(() => undefined);
    // Wait until a few whole blocks have been served, then reload in the middle of the download.
    const fullBlocks = (): number => hub.requests.filter((r) => r.server === 'cdn' && r.status === 206 && r.bytesSent === BLOCK).length;
    const deadline = Date.now() + 60_000;
    while (fullBlocks() < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fullBlocks()).toBeGreaterThanOrEqual(4);
    await browser.page.reload();
    const before = hub.requests.length;
    hub.faults = {};
    await openHarness({ concurrency: 1 });

    // What the cache kept: with one block at a time, the first `bytesDone / BLOCK` blocks of each file.
    const kept = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.engine.listCache());
    const partial = kept.filter((c) => (c.bytesDone ?? 0) > 0);
    expect(partial.length).toBeGreaterThan(0);
    const keptBlocks = partial.reduce((s, c) => s + (c.complete ? Math.ceil(c.size / BLOCK) : (c.bytesDone ?? 0) / BLOCK), 0);
    expect(keptBlocks).toBeGreaterThanOrEqual(2);

    const result = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), mergeRequest('ties-resume'));
    expect(result, browser.log.join('\n')).not.toHaveProperty('error');
    await expectSameAsCli('ties-resume');

    const after = hub.requests.slice(before).filter((r) => r.server === 'cdn' && r.range !== null && r.method === 'GET');
    for (const entry of partial) {
      const done = entry.complete ? Math.ceil(entry.size / BLOCK) : (entry.bytesDone ?? 0) / BLOCK;
      const refetched = after.filter((r) => r.file?.repo === entry.repo && r.file.path === entry.file);
      for (let i = 0; i < done; i++) {
        const range = `bytes=${i * BLOCK}-${Math.min(entry.size, (i + 1) * BLOCK) - 1}`;
        expect(refetched.map((r) => r.range), `${entry.repo} block ${i} was fetched again`).not.toContain(range);
      }
    }
    const total = Object.values(models.ids).reduce((s, id) => s + Math.ceil(readFileSync(join(models.root, id, 'model.safetensors')).byteLength / BLOCK), 0);
    const blockReads = after.filter((r) => !/^bytes=(0-7|8-\d+)$/.test(r.range!));
    expect(blockReads.length).toBe(total - keptBlocks);
  });

  it('retries a failing network, then explains; an aborted body is retried transparently', async () => {
    await openHarness({ retries: 2, retryBaseDelayMs: 20 });
    await browser.page.evaluate(async (ids) => {
      const { engine } = (window as unknown as HarnessWindow).alloyHarness;
      for (const id of ids) await engine.deleteCached(id);
      (window as unknown as HarnessWindow).alloyHarness.events.length = 0;
    }, Object.values(models.ids));

    // Every block of ft-b fails: three tries each, then a message the user can act on.
    const isHeaderRead = (range: string | null): boolean => /^bytes=(0-7|8-\d+)$/.test(range ?? '') && range !== `bytes=8-${BLOCK - 1}`;
    hub.faults = { rangeFault: (_n, r) => (r.file?.repo === models.ids.b && !isHeaderRead(r.range) ? 'fail' : undefined) };
    const failed = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), mergeRequest('ties-fail'));
    expect(failed).toHaveProperty('error');
    expect((failed as { error: string }).error).toMatch(
      /^downloading model.safetensors of alloy-test\/ft-b failed after 3 tries: the Hub had a problem \(503\).*Check your connection and try again\./,
    );
    const states = await browser.page.evaluate(() =>
      (window as unknown as HarnessWindow).alloyHarness.events.flatMap((e) => e.downloads.filter((d) => d.model === 'alloy-test/ft-b').map((d) => [d.state, d.message ?? ''])),
    );
    expect(states.some(([s, m]) => s === 'retrying' && /retrying in 20 ms \(try 2 of 3\)/.test(m))).toBe(true);
    expect(states.at(-1)?.[0]).toBe('failed');
    const outputs = await browser.page.evaluate(() => (window as unknown as HarnessWindow).alloyHarness.engine.listOutputs());
    expect(outputs.map((o) => o.outputName)).not.toContain('ties-fail');

    // A body cut in the middle (twice) is retried and the merge completes.
    let cuts = 0;
    hub.faults = { rangeFault: (_n, r) => (r.file?.repo === models.ids.base && !isHeaderRead(r.range) && cuts++ < 2 ? 'abort' : undefined) };
    const ok = await browser.page.evaluate((r) => (window as unknown as HarnessWindow).alloyHarness.merge(r), mergeRequest('ties-retried'));
    expect(ok, browser.log.join('\n')).not.toHaveProperty('error');
    expect(cuts).toBeGreaterThanOrEqual(2);
    await expectSameAsCli('ties-retried');
  });
});
