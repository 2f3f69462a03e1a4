import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HubClient, type HubRepoSnapshot } from '../../src/hub';
import { OpfsShardCache, ShardCacheError, type ShardProgress, type ShardSpec } from '../../src/storage/browser';
import { makeHubModels, serveHubModels, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { memoryOpfs } from '../helpers/memory-opfs';

const BLOCK = 32 * 1024;
let hub: FakeHub;
let models: HubModels;
let client: HubClient;
let snapshot: HubRepoSnapshot;
let spec: ShardSpec;
let disk: Buffer;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
  client = new HubClient({ hubUrl: hub.url });
  snapshot = await client.resolveRepo(models.ids.a);
  const file = snapshot.files.find((f) => f.path === 'model.safetensors')!;
  spec = { repo: snapshot.repo, commit: snapshot.commit, path: file.path, size: file.size, sha256: file.sha256 };
  disk = readFileSync(join(models.a.dir, 'model.safetensors'));
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => {
  hub.resetLog();
  hub.faults = {};
});

const fetchRange = (start: number, end: number, o: { signal: AbortSignal; onBytes: (n: number) => void }): Promise<Uint8Array> =>
  client.readRange(snapshot, snapshot.files.find((f) => f.path === spec.path)!, start, end, o);

const blocks = (size: number): number => Math.ceil(size / BLOCK);
const rangeOf = (i: number): string => `bytes=${i * BLOCK}-${Math.min(spec.size, (i + 1) * BLOCK) - 1}`;

async function readAll(cache: OpfsShardCache): Promise<Buffer> {
  const source = await cache.openFile(spec);
  return Buffer.from(await source.read(0, source.size));
}

describe('OpfsShardCache', () => {
  it('downloads a file block by block, verifies its sha256, and serves it from the cache afterwards', async () => {
    const { root } = memoryOpfs();
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 3 });
    const progress: ShardProgress[] = [];
    expect(await cache.bytesCached(spec)).toBe(0);
    await cache.ensure(spec, fetchRange, { onProgress: (p) => progress.push(p) });
    expect((await readAll(cache)).equals(disk)).toBe(true);
    expect(hub.rangeReads(spec.repo, spec.path).map((r) => r.range).sort()).toEqual([...Array(blocks(spec.size)).keys()].map(rangeOf).sort());
    expect(progress.at(-1)).toMatchObject({ state: 'done', bytesDone: spec.size });
    expect(progress.some((p) => p.state === 'verifying')).toBe(true);
    const seen = progress.map((p) => p.bytesDone);
    expect(Math.max(...seen)).toBe(spec.size);
    expect(await cache.list()).toEqual([
      { repo: spec.repo, commit: spec.commit, path: spec.path, size: spec.size, bytesDone: spec.size, complete: true, verified: true },
    ]);

    hub.resetLog();
    const again: ShardProgress[] = [];
    await cache.ensure(spec, fetchRange, { onProgress: (p) => again.push(p) });
    expect(again).toEqual([{ spec, bytesDone: spec.size, bytesTotal: spec.size, state: 'cached' }]);
    expect(hub.requests.length).toBe(0);
  });

  it('hashes blocks that finish in reverse order right: each read back into one reused buffer, the last one short', async () => {
    expect(spec.size % BLOCK).not.toBe(0); // the last block is shorter than the others
    const { root } = memoryOpfs();
    const count = blocks(spec.size);
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: count });
    // Block i answers once every later block has: block 0 finishes last, so blocks 1.. wait for it.
    const finished = [...Array(count)].map(() => {
      let resolve!: () => void;
      return { promise: new Promise<void>((r) => (resolve = r)), resolve: () => resolve() };
    });
    const reversed: typeof fetchRange = async (start, end, o) => {
      const i = start / BLOCK;
      const bytes = await fetchRange(start, end, o);
      if (i + 1 < count) await finished[i + 1].promise;
      queueMicrotask(() => finished[i].resolve());
      return bytes;
    };
    await cache.ensure(spec, reversed);
    expect((await readAll(cache)).equals(disk)).toBe(true);
    expect((await cache.list())[0]).toMatchObject({ complete: true, verified: true });
  });

  it('resumes after a failure without fetching finished blocks again', async () => {
    const { root } = memoryOpfs();
    // No retries: the 4th range request aborts mid-body and the download stops.
    hub.faults = { rangeFault: (n) => (n === 4 ? 'abort' : undefined) };
    const first = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1, retries: 0 });
    const error = await first.ensure(spec, fetchRange).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShardCacheError);
    expect((error as ShardCacheError).kind).toBe('network');
    expect((error as Error).message).toMatch(/downloading model.safetensors of alloy-test\/ft-a failed after 1 tries: .*The 98.3 kB already downloaded are kept/);
    expect(await first.bytesCached(spec)).toBe(3 * BLOCK);
    const before = hub.rangeReads(spec.repo, spec.path).map((r) => r.range);
    expect(before).toEqual([0, 1, 2, 3].map(rangeOf));

    // A "reload": a new cache object over the same storage.
    hub.resetLog();
    hub.faults = {};
    const second = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 2 });
    await second.ensure(spec, fetchRange);
    const after = hub.rangeReads(spec.repo, spec.path).map((r) => r.range);
    expect(after.sort()).toEqual([...Array(blocks(spec.size)).keys()].slice(3).map(rangeOf).sort());
    expect((await readAll(second)).equals(disk)).toBe(true);
    expect((await second.list())[0]).toMatchObject({ complete: true, verified: true });
  });

  it('resumes a download whose saved hash state it cannot continue by hashing the finished blocks again, fetching none of them', async () => {
    // States saved by the JavaScript SHA-256 of earlier versions, and by another hash-wasm build.
    const oldStates: unknown[] = [
      { h: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], bytes: 3 * BLOCK },
      null,
    ];
    for (const oldState of oldStates) {
      const { root } = memoryOpfs();
      hub.resetLog();
      hub.faults = { rangeFault: (n) => (n === 4 ? 'abort' : undefined) };
      const first = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1, retries: 0 });
      await expect(first.ensure(spec, fetchRange)).rejects.toBeInstanceOf(ShardCacheError);
      const stateFile = await (await (await (await root.getDirectoryHandle('alloy-cache')).getDirectoryHandle(encodeURIComponent(spec.repo)))
        .getDirectoryHandle(encodeURIComponent(spec.commit)))
        .getDirectoryHandle('state')
        .then((dir) => dir.getFileHandle(`${encodeURIComponent(spec.path)}.json`));
      const saved = JSON.parse(await (await stateFile.getFile()).text()) as { hash: { kind: string; saved: string; bytes: number } };
      expect(saved.hash).toMatchObject({ kind: 'hash-wasm', bytes: 3 * BLOCK });
      // null: the same state with its first bytes (the WebAssembly build's id) changed.
      const foreign = Buffer.from(saved.hash.saved, 'base64');
      foreign[0] ^= 0xff;
      const replaced = oldState ?? { ...saved.hash, saved: foreign.toString('base64') };
      const handle = await stateFile.createSyncAccessHandle();
      const text = new TextEncoder().encode(JSON.stringify({ ...saved, hash: replaced }));
      handle.truncate(0);
      handle.write(text, { at: 0 });
      handle.close();

      hub.resetLog();
      hub.faults = {};
      const second = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 2 });
      await second.ensure(spec, fetchRange);
      const after = hub.rangeReads(spec.repo, spec.path).map((r) => r.range);
      expect(after.sort()).toEqual([...Array(blocks(spec.size)).keys()].slice(3).map(rangeOf).sort());
      expect((await readAll(second)).equals(disk)).toBe(true);
      expect((await second.list())[0]).toMatchObject({ complete: true, verified: true });
    }
  });

  it('retries network failures with backoff, reporting them, then succeeds', async () => {
    const { root } = memoryOpfs();
    hub.faults = { rangeFault: (n) => (n === 2 ? 'fail' : n === 3 ? 'abort' : undefined) };
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1, retries: 3, retryBaseDelayMs: 5 });
    const progress: ShardProgress[] = [];
    await cache.ensure(spec, fetchRange, { onProgress: (p) => progress.push(p) });
    const retrying = progress.filter((p) => p.state === 'retrying');
    expect(retrying.length).toBe(2);
    expect(retrying[0].message).toMatch(/\(503\).*retrying in 5 ms \(try 2 of 4\)/);
    expect(retrying[1].message).toMatch(/retrying in 10 ms \(try 3 of 4\)/);
    expect((await readAll(cache)).equals(disk)).toBe(true);
  });

  it('gives up after the retries and explains', async () => {
    const { root } = memoryOpfs();
    hub.faults = { rangeFault: () => 'fail' };
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, retries: 2, retryBaseDelayMs: 1 });
    await expect(cache.ensure(spec, fetchRange)).rejects.toThrow(
      /downloading model.safetensors of alloy-test\/ft-a failed after 3 tries: the Hub had a problem \(503\).*Check your connection and try again\./,
    );
  });

  it('discards a download whose sha256 does not match the Hub’s', async () => {
    const { root } = memoryOpfs();
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK });
    const wrong = { ...spec, sha256: '0'.repeat(64) };
    const error = await cache.ensure(wrong, fetchRange).catch((e: unknown) => e);
    expect((error as ShardCacheError).kind).toBe('checksum');
    expect((error as Error).message).toMatch(/is corrupt: its sha256 is [0-9a-f]{64}, the Hub says 0{64}\. It was discarded/);
    expect(await cache.bytesCached(wrong)).toBe(0);
  });

  it('verifies a file without sha256 (not in LFS) by its git blob id; a mismatch is discarded', async () => {
    const { root } = memoryOpfs();
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK });
    const { sha256: _lfs, ...plain } = spec;
    const gitOid = createHash('sha1').update(`blob ${disk.byteLength}\0`).update(disk).digest('hex');
    const wrong = { ...plain, gitOid: 'f'.repeat(40) };
    const error = await cache.ensure(wrong, fetchRange).catch((e: unknown) => e);
    expect((error as ShardCacheError).kind).toBe('checksum');
    expect((error as Error).message).toMatch(/is corrupt: its git blob id is [0-9a-f]{40}, the Hub says f{40}\. It was discarded/);
    expect((error as Error).message).toContain(gitOid);
    expect(await cache.bytesCached(wrong)).toBe(0);

    const states: string[] = [];
    await cache.ensure({ ...plain, gitOid }, fetchRange, { onProgress: (p) => states.push(p.state) });
    expect(states).toContain('verifying');
    expect((await cache.list()).find((f) => f.path === spec.path)).toMatchObject({ complete: true, verified: true });
    expect(await readAll(cache)).toEqual(disk);
  });

  it('explains a full disk (QuotaExceededError) with the sizes involved', async () => {
    const { root } = memoryOpfs(64 * 1024);
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK });
    const error = await cache.ensure(spec, fetchRange).catch((e: unknown) => e);
    expect((error as ShardCacheError).kind).toBe('quota');
    expect((error as Error).message).toMatch(
      /not enough storage space to download model.safetensors of alloy-test\/ft-a \(\d+ kB; \d+ kB still to fetch\).*QuotaExceededError.*deleting cached models or old outputs/,
    );
  });

  it('stops on abort, keeps what it has, and lists and deletes entries', async () => {
    const { root } = memoryOpfs();
    const controller = new AbortController();
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1 });
    let blocksDone = 0;
    const error = await cache
      .ensure(spec, fetchRange, {
        signal: controller.signal,
        onProgress: (p) => {
          if (p.state === 'downloading' && p.bytesDone >= 2 * BLOCK && blocksDone++ === 0) controller.abort();
        },
      })
      .catch((e: unknown) => e);
    expect((error as ShardCacheError).kind).toBe('aborted');
    const [entry] = await cache.list();
    expect(entry.complete).toBe(false);
    expect(entry.bytesDone).toBeGreaterThanOrEqual(BLOCK);
    expect(entry.bytesDone).toBeLessThan(spec.size);
    await cache.delete(spec.repo, spec.commit);
    expect(await cache.list()).toEqual([]);
    await cache.delete('never/cached');
  });
});
