import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MergeRequest, RunProgress } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { memoryOpfs } from '../helpers/memory-opfs';

/**
 * A merge resumed after a reload (docs/browser.md §7): the first worker is frozen mid-merge (its
 * requests never answer, as when the page goes away), its access handles are released, and a new
 * engine on the same storage continues with the same request. The output must equal an
 * uninterrupted merge's, byte for byte, without downloading again what was done.
 */

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

const WEIGHTS = 'model.safetensors';
const weightKeys = ['a', 'b', 'base'] as const;
const weightSize = (key: (typeof weightKeys)[number]): number => statSync(join(models[key].dir, WEIGHTS)).size;

/** Range reads of the three weight files in the hub's log so far. */
const weightReads = () => weightKeys.flatMap((k) => hub.rangeReads(models.ids[k], WEIGHTS));
const bytesOf = (reads: ReturnType<typeof weightReads>): number =>
  reads.reduce((sum, r) => {
    const [from, to] = r.range!.slice('bytes='.length).split('-').map(Number);
    return sum + to - from + 1;
  }, 0);

/** An engine whose requests stop being answered once `freezeWhen` says so: a page about to go away. */
function service(root: FileSystemDirectoryHandle, freezeWhen: () => boolean = () => false): { engine: EngineService; frozen: () => number } {
  let frozenCalls = 0;
  const fetchImpl: typeof fetch = (input, init) => {
    if (freezeWhen()) {
      frozenCalls++;
      return new Promise<Response>(() => {});
    }
    return globalThis.fetch(input, init);
  };
  const engine = new EngineService({
    storageRoot: async () => root,
    demoBaseUrl: 'http://127.0.0.1:9/unused/',
    fetch: fetchImpl,
    defaults: { hubUrl: hub.url, download: { blockBytes: 32 * 1024, concurrency: 1, retries: 1, retryBaseDelayMs: 5, streamWindowBytes: WINDOW } },
  });
  return { engine, frozen: () => frozenCalls };
}

const request = (outputName: string, extra: Partial<MergeRequest> = {}): MergeRequest => ({
  yaml: TIES_YAML(models.ids),
  models: [],
  outputName,
  backend: 'cpu',
  randomSeed: 11,
  ...extra,
});

async function outputBytes(engine: EngineService, name: string): Promise<Map<string, Buffer>> {
  const [result] = (await engine.listOutputs()).filter((o) => o.outputName === name);
  const out = new Map<string, Buffer>();
  for (const f of result.files) out.set(f.name, Buffer.from(await (await engine.outputFile(name, f.name)).arrayBuffer()));
  return out;
}

async function checkpointOf(root: FileSystemDirectoryHandle, resumeId: string): Promise<{ checkpoint: { tensorsDone: number } } | null> {
  const partial = await (await root.getDirectoryHandle('alloy-outputs')).getDirectoryHandle(`.partial-resume-${resumeId}`);
  try {
    return JSON.parse(await (await (await partial.getFileHandle('.alloy-resume.json')).getFile()).text());
  } catch {
    return null;
  }
}

/**
 * The checkpoint a reload finds once the frozen engine stopped moving (it may finish tensors whose
 * bytes it already had). The engine keeps the checkpoint file open, so each look is after a reload
 * (the locks released).
 */
async function settledCheckpoint(opfs: ReturnType<typeof memoryOpfs>, resumeId: string): Promise<number> {
  let last = -1;
  for (;;) {
    opfs.releaseLocks();
    const now = (await checkpointOf(opfs.root, resumeId))?.checkpoint.tensorsDone ?? 0;
    if (now === last) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 150));
  }
}

describe('EngineService: resuming a merge after a reload', () => {
  it('cache mode, reloaded mid-download: resumes the downloads where they stopped and writes the same bytes', async () => {
    const reference = service(memoryOpfs().root).engine;
    await reference.merge(request('resumed'), () => {});
    const expected = await outputBytes(reference, 'resumed');
    const total = weightKeys.reduce((s, k) => s + weightSize(k), 0);

    hub.resetLog();
    const opfs = memoryOpfs();
    // Frozen once about half of the weights has been downloaded.
    const first = service(opfs.root, () => bytesOf(weightReads()) > total / 2);
    const progress: RunProgress[] = [];
    void first.engine.merge(request('resumed', { resumeId: 'reload1abc' }), (p) => progress.push(p));
    await vi.waitFor(() => expect(first.frozen()).toBeGreaterThan(0), { timeout: 20_000, interval: 20 });
    expect(progress.at(-1)!.tensorsDone).toBe(0);
    const servedBefore = bytesOf(weightReads());
    expect(servedBefore).toBeLessThan(total);
    opfs.releaseLocks();

    hub.resetLog();
    const second = service(opfs.root).engine;
    const result = await second.merge(request('resumed', { resumeId: 'reload1abc' }), () => {});
    // The blocks finished before the reload are not downloaded again (planning re-reads the headers).
    const servedAfter = bytesOf(weightReads());
    expect(servedAfter).toBeLessThan(total - servedBefore + 3 * 64 * 1024);
    expect(servedBefore + servedAfter).toBeLessThan(total + 3 * 64 * 1024);
    expect(result.files.map((f) => f.name)).toEqual([...expected.keys()].sort());
    const actual = await outputBytes(second, 'resumed');
    for (const [name, bytes] of expected) expect(actual.get(name)!.equals(bytes), name).toBe(true);
    // Nothing of the unfinished merge is left behind.
    expect(await second.hasUnfinishedMerge('reload1abc')).toBe(false);
  });

  it('stream mode, reloaded mid-merge: continues after the last completed tensor, verifies every weight file, and writes the same bytes', async () => {
    const reference = service(memoryOpfs().root).engine;
    hub.resetLog();
    await reference.merge(request('streamed', { inputMode: 'stream', outShardSize: 40_000 }), () => {});
    const expected = await outputBytes(reference, 'streamed');
    const readsOfOneMerge = weightReads().length;

    hub.resetLog();
    const opfs = memoryOpfs();
    const first = service(opfs.root, () => weightReads().length >= Math.floor(readsOfOneMerge / 3));
    void first.engine.merge(request('streamed', { inputMode: 'stream', outShardSize: 40_000, resumeId: 'reload2abc' }), () => {});
    await vi.waitFor(() => expect(first.frozen()).toBeGreaterThan(0), { timeout: 20_000, interval: 20 });
    const done = await settledCheckpoint(opfs, 'reload2abc');
    expect(done).toBeGreaterThan(0);
    opfs.releaseLocks();

    const second = service(opfs.root).engine;
    const progress: RunProgress[] = [];
    const result = await second.merge(request('streamed', { inputMode: 'stream', outShardSize: 40_000, resumeId: 'reload2abc' }), (p) => progress.push(p));
    expect(done).toBeLessThan(progress.at(-1)!.tensorsTotal);
    // The tensors before the checkpoint were not computed again.
    expect(result.resumedAfterTensors).toBe(done);
    expect(progress.filter((p) => p.currentTensor !== null).every((p) => p.tensorsDone >= done)).toBe(true);
    const actual = await outputBytes(second, 'streamed');
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    // Several shards: the resume reopened one mid-way and kept those before it.
    expect([...actual.keys()].filter((n) => n.endsWith('.safetensors')).length).toBeGreaterThan(2);
    for (const [name, bytes] of expected) expect(actual.get(name)!.equals(bytes), name).toBe(true);
    expect(result.unverified ?? []).toEqual([]);
    expect((result.verified ?? []).filter((v) => v.file === WEIGHTS).map((v) => v.model).sort()).toEqual(Object.values(models.ids).sort());
  });

  it('stream mode into a picked folder, reloaded mid-merge: continues after the last completed file and writes the same bytes there', async () => {
    // Node has no FileSystemFileHandle: say that handles can move, as Chrome's can (the in-memory ones do).
    vi.stubGlobal('FileSystemFileHandle', { prototype: { move: () => undefined } });
    try {
      const shards = { inputMode: 'stream' as const, outShardSize: 40_000 };
      const reference = service(memoryOpfs().root).engine;
      hub.resetLog();
      await reference.merge(request('in-folder', shards), () => {});
      const expected = await outputBytes(reference, 'in-folder');
      const readsOfOneMerge = weightReads().length;

      hub.resetLog();
      const opfs = memoryOpfs();
      const picked = memoryOpfs();
      const first = service(opfs.root, () => weightReads().length >= Math.floor((readsOfOneMerge * 2) / 3));
      void first.engine.merge(request('in-folder', { ...shards, outputDirectory: picked.root, resumeId: 'reload4abc' }), () => {});
      await vi.waitFor(() => expect(first.frozen()).toBeGreaterThan(0), { timeout: 20_000, interval: 20 });
      await new Promise((r) => setTimeout(r, 300));
      picked.releaseLocks();

      const second = service(opfs.root).engine;
      const result = await second.merge(request('in-folder', { ...shards, outputDirectory: picked.root, resumeId: 'reload4abc' }), () => {});
      // Resumed at the end of a shard file (a swap-file write is lost in a reload).
      expect(result.resumedAfterTensors).toBeGreaterThan(0);
      const plan = await second.plan(request('in-folder-plan', shards));
      expect(plan.tensorCount).toBeGreaterThan(result.resumedAfterTensors!);
      const dir = await picked.root.getDirectoryHandle('in-folder');
      for (const [name, bytes] of expected) {
        const ours = Buffer.from(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
        expect(ours.equals(bytes), name).toBe(true);
      }
      // Only the output is left in the picked folder: no temporary folder, no checkpoint.
      const left: string[] = [];
      for await (const [name] of (picked.root as unknown as { entries(): AsyncIterable<[string, unknown]> }).entries()) left.push(name);
      expect(left).toEqual(['in-folder']);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('discards an unfinished merge: its partial output is gone', async () => {
    const opfs = memoryOpfs();
    const first = service(opfs.root, () => weightReads().length >= 6);
    hub.resetLog();
    void first.engine.merge(request('dropped', { inputMode: 'stream', resumeId: 'reload5abc' }), () => {});
    await vi.waitFor(() => expect(first.frozen()).toBeGreaterThan(0), { timeout: 20_000, interval: 20 });
    opfs.releaseLocks();
    const second = service(opfs.root).engine;
    expect(await second.hasUnfinishedMerge('reload5abc')).toBe(true);
    await second.discardUnfinishedMerge({ resumeId: 'reload5abc', outputName: 'dropped' });
    expect(await second.hasUnfinishedMerge('reload5abc')).toBe(false);
    expect(opfs.usage()).toBe(0);
  });

  it('starts afresh when the saved checkpoint is of another plan (another random seed)', async () => {
    const opfs = memoryOpfs();
    hub.resetLog();
    const readsPerMerge = await (async () => {
      await service(memoryOpfs().root).engine.merge(request('count', { inputMode: 'stream' }), () => {});
      return weightReads().length;
    })();
    hub.resetLog();
    const first = service(opfs.root, () => weightReads().length >= Math.floor(readsPerMerge / 2));
    void first.engine.merge(request('seeded', { inputMode: 'stream', resumeId: 'reload3abc', randomSeed: 5 }), () => {});
    await vi.waitFor(() => expect(first.frozen()).toBeGreaterThan(0), { timeout: 20_000, interval: 20 });
    expect(await settledCheckpoint(opfs, 'reload3abc')).toBeGreaterThan(0);
    opfs.releaseLocks();

    const second = service(opfs.root).engine;
    const result = await second.merge(request('seeded', { inputMode: 'stream', resumeId: 'reload3abc', randomSeed: 6 }), () => {});
    expect(result.resumedAfterTensors).toBeUndefined();
    const reference = service(memoryOpfs().root).engine;
    await reference.merge(request('seeded', { inputMode: 'stream', randomSeed: 6 }), () => {});
    const expected = await outputBytes(reference, 'seeded');
    const actual = await outputBytes(second, 'seeded');
    for (const [name, bytes] of expected) expect(actual.get(name)!.equals(bytes), name).toBe(true);
  });
});
