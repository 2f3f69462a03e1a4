import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RunProgress } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { memoryOpfs, type MemoryDirectoryHandle } from '../helpers/memory-opfs';

const WINDOW = 64 * 1024;
let hub: FakeHub;
let models: HubModels;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => {
  hub.resetLog();
  hub.faults = {};
});

function service(root: FileSystemDirectoryHandle, estimate?: { usage?: number; quota?: number }): EngineService {
  return new EngineService({
    storageRoot: async () => root,
    demoBaseUrl: 'http://127.0.0.1:9/unused/',
    ...(estimate ? { estimateStorage: async () => estimate } : {}),
    defaults: { hubUrl: hub.url, download: { blockBytes: 32 * 1024, retries: 1, retryBaseDelayMs: 5, streamWindowBytes: WINDOW } },
  });
}

const request = (outputName: string, extra: Record<string, unknown> = {}) => ({
  yaml: TIES_YAML(models.ids),
  models: [],
  outputName,
  backend: 'cpu' as const,
  randomSeed: 1,
  ...extra,
});

const weightSize = (key: 'a' | 'b' | 'base'): number => statSync(join(models[key].dir, 'model.safetensors')).size;

async function filesOf(dir: FileSystemDirectoryHandle): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const [name, child] of (dir as unknown as MemoryDirectoryHandle).children) {
    if (child.kind === 'file') out.set(name, Buffer.from(await (await (child as unknown as FileSystemFileHandle).getFile()).arrayBuffer()));
  }
  return out;
}

describe('EngineService input modes and output folders', () => {
  it('streams Hub models: the same bytes as a cached merge, nothing cached, ranges of one window, sha256 checked where read in order', async () => {
    const cached = service(memoryOpfs().root);
    const reference = await cached.merge(request('ties'), () => {});
    expect(reference.inputMode).toBe('cache');

    const opfs = memoryOpfs();
    const engine = service(opfs.root);
    hub.resetLog();
    const progress: RunProgress[] = [];
    // Without the second, in-order download that checks files read out of order (next test).
    const result = await engine.merge(request('ties', { inputMode: 'stream', verifyStreamedInputs: false }), (p) => progress.push(p));
    expect(result.inputMode).toBe('stream');
    expect(result.files).toEqual(reference.files);
    for (const file of result.files) {
      const ours = Buffer.from(await (await engine.outputFile('ties', file.name)).arrayBuffer());
      const theirs = Buffer.from(await (await cached.outputFile('ties', file.name)).arrayBuffer());
      expect(ours.equals(theirs), file.name).toBe(true);
    }
    expect(await engine.listCache()).toEqual([]);
    // Every weight file is accounted for: verified, or unverified with the reason.
    const weights = [...(result.verified ?? []), ...(result.unverified ?? [])].filter((v) => v.file === 'model.safetensors');
    expect(weights.map((v) => v.model).sort()).toEqual(Object.values(models.ids).sort());
    for (const u of result.unverified ?? []) expect(result.warnings.join('\n')).toContain(`${u.model}: ${u.file} was streamed and not checked`);
    // No request per small read: at most one range request per window of each file (+ the header reads of planning, made before).
    // Bandwidth and quota: each file is read about once (no window fetched for one small tensor),
    // in no more requests than it has tensors (+ the header reads of planning), every one a
    // CORS-simple single range. (These tensors are smaller than a window; the source's unit tests
    // show many reads coalesced into one request.)
    const tensors = (await engine.plan(request('other'))).tensorCount;
    for (const key of ['a', 'b', 'base'] as const) {
      const size = weightSize(key);
      const reads = hub.rangeReads(models.ids[key], 'model.safetensors');
      const bytes = reads.reduce((sum, r) => {
        const [from, to] = r.range!.slice('bytes='.length).split('-').map(Number);
        return sum + to - from + 1;
      }, 0);
      expect(bytes, key).toBeLessThanOrEqual(size * 1.1);
      expect(reads.length, key).toBeLessThanOrEqual(tensors + 3);
      for (const r of reads) expect(r.range, key).toMatch(/^bytes=\d+-\d+$/);
    }
    expect(progress.some((p) => p.downloads.some((d) => d.state === 'streaming'))).toBe(true);
  });

  it('verifies streamed files read out of file order by reading them again in order: every weight file verified, at most one extra download', async () => {
    const opfs = memoryOpfs();
    const engine = service(opfs.root);
    hub.resetLog();
    const result = await engine.merge(request('verified', { inputMode: 'stream' }), () => {});
    expect(result.unverified ?? []).toEqual([]);
    const weights = (result.verified ?? []).filter((v) => v.file === 'model.safetensors');
    expect(weights).toEqual(expect.arrayContaining(Object.values(models.ids).map((model) => ({ model, file: 'model.safetensors', hash: 'sha256' }))));
    expect(result.warnings.join('\n')).not.toContain('not checked');
    for (const key of ['a', 'b', 'base'] as const) {
      const reads = hub.rangeReads(models.ids[key], 'model.safetensors');
      const bytes = reads.reduce((sum, r) => {
        const [from, to] = r.range!.slice('bytes='.length).split('-').map(Number);
        return sum + to - from + 1;
      }, 0);
      // The merge's reads (about one file) and the check's (the parts read out of order, at most one file).
      expect(bytes, key).toBeLessThanOrEqual(weightSize(key) * 2.1);
      for (const r of reads) expect(r.range, key).toMatch(/^bytes=\d+-\d+$/);
    }
  });

  it('a tampered streamed file read out of file order fails the merge before the output is committed; unverified only with the check turned off', async () => {
    hub.faults = { tamper: (repo, path) => repo === models.ids.b && path === 'model.safetensors' };
    const opfs = memoryOpfs();
    const engine = service(opfs.root);
    await expect(engine.merge(request('tampered', { inputMode: 'stream' }), () => {})).rejects.toThrow(
      `the bytes of ${models.ids.b}/model.safetensors streamed for this merge have sha256`,
    );
    expect(await engine.listOutputs()).toEqual([]);
    expect(opfs.usage()).toBe(0);
    // With the check off the same tampering goes unnoticed, and the warning says so and points to the cache mode.
    const streamed = await service(memoryOpfs().root).merge(request('tampered', { inputMode: 'stream', verifyStreamedInputs: false }), () => {});
    const b = streamed.unverified?.find((u) => u.model === models.ids.b && u.file === 'model.safetensors');
    expect(b?.reason).toMatch(/out of file order/);
    expect(streamed.warnings).toContain(
      `${models.ids.b}: model.safetensors was streamed and not checked against the Hub's sha256 (${b!.reason}). Use the cache mode in Settings to verify every file.`,
    );
    const cached = service(memoryOpfs().root);
    await expect(cached.merge(request('tampered', { inputMode: 'cache' }), () => {})).rejects.toThrow(/corrupt: its sha256/);
    expect(await cached.listOutputs()).toEqual([]);
  });

  it('writes the output straight into a picked folder: nothing in the browser storage but that folder', async () => {
    const opfs = memoryOpfs();
    const picked = memoryOpfs();
    const engine = service(opfs.root);
    const plan = await engine.plan(request('into-folder', { outputDirectory: picked.root, inputMode: 'stream' }));
    expect(plan.ok).toBe(true);
    expect(plan.disk?.output).toBe('folder');
    expect(plan.disk?.input).toBe('stream');
    const result = await engine.merge(request('into-folder', { outputDirectory: picked.root, inputMode: 'stream' }), () => {});
    expect(result.savedTo).toBe('the chosen folder/into-folder');
    const dir = await picked.root.getDirectoryHandle('into-folder');
    const files = await filesOf(dir);
    expect([...files.keys()].sort()).toEqual(result.files.map((f) => f.name).sort());
    for (const f of result.files) expect(files.get(f.name)!.byteLength).toBe(f.size);
    expect(await engine.listOutputs()).toEqual([]);
    expect(await engine.listCache()).toEqual([]);
    expect(opfs.usage()).toBe(0);
    // The name is now taken in that folder.
    const again = await engine.plan(request('into-folder', { outputDirectory: picked.root }));
    expect(again.errors).toContain('the folder "" already holds "into-folder": choose another output name or another folder');
  });

  it('auto streams when the cache would not fit the free space the browser reports, and says so in the plan', async () => {
    const download = weightSize('a') + weightSize('b') + weightSize('base');
    const tight = service(memoryOpfs().root, { usage: 0, quota: download });
    const plan = await tight.plan(request('auto'));
    expect(plan.disk!.downloadBytes).toBe(download);
    expect(plan.disk!.availableBytes).toBe(download);
    expect(plan.disk!.input).toBe('stream');
    const cacheBrowser = plan.disk!.needs.find((n) => n.input === 'cache' && n.output === 'browser')!;
    expect(cacheBrowser.browserBytes).toBe(download + plan.outputBytes);
    expect(cacheBrowser.fits).toBe(false);
    const result = await tight.merge(request('auto'), () => {});
    expect(result.inputMode).toBe('stream');

    const roomy = service(memoryOpfs().root, { usage: 0, quota: 100 * download });
    expect((await roomy.plan(request('auto'))).disk!.input).toBe('cache');
  });
});
