/**
 * The Hub's rate limit (issue 15, item 6): a 429 on `resolve` is waited out for as long as its
 * `Retry-After` asks, visibly, and a limit that does not lift ends with a clear message; the
 * bytes already downloaded are kept.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HubClient, HubError, type HubRepoSnapshot } from '../../src/hub';
import { parseRetryAfter } from '../../src/hub/rate-limit';
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

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
  client = new HubClient({ hubUrl: hub.url });
  snapshot = await client.resolveRepo(models.ids.a);
  const file = snapshot.files.find((f) => f.path === 'model.safetensors')!;
  spec = { repo: snapshot.repo, commit: snapshot.commit, path: file.path, size: file.size, sha256: file.sha256 };
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

describe('Retry-After', () => {
  it('reads seconds and HTTP dates, and nothing else', () => {
    expect(parseRetryAfter('30')).toBe(30_000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:02:00 GMT', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('-5')).toBeUndefined();
    expect(parseRetryAfter('1.5')).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('a 429 from the Hub', () => {
  it('becomes a rate-limited HubError carrying the wait the Hub asked for', async () => {
    hub.faults = { rateLimit: () => 30 };
    const file = snapshot.files.find((f) => f.path === 'model.safetensors')!;
    const error = (await client.readRange(snapshot, file, 0, 100).catch((e: unknown) => e)) as HubError;
    expect(error).toBeInstanceOf(HubError);
    expect(error.kind).toBe('rate-limited');
    expect(error.status).toBe(429);
    expect(error.retryAfterMs).toBe(30_000);
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/rate-limiting requests \(429\) while trying to download alloy-test\/ft-a: the Hub asks to wait 30 s/);
    // The 429 came from the Hub itself: nothing reached the CDN.
    expect(hub.requests.filter((r) => r.server === 'cdn')).toEqual([]);
  });

  it('is waited out for its Retry-After, shown as a wait, then the download completes', async () => {
    const { root } = memoryOpfs();
    hub.faults = { rateLimit: (n) => (n === 2 ? 1 : undefined) };
    // A base delay far below Retry-After: the wait used must be the Hub's, not the backoff.
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1, retries: 3, retryBaseDelayMs: 5 });
    const progress: ShardProgress[] = [];
    const started = performance.now();
    await cache.ensure(spec, fetchRange, { onProgress: (p) => progress.push(p) });
    const retrying = progress.filter((p) => p.state === 'retrying');
    expect(retrying.map((p) => p.message)).toEqual(['The Hub asks to wait 1 s (rate limit); retrying… (try 2 of 4)']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    const source = await cache.openFile(spec);
    expect(Buffer.from(await source.read(0, source.size)).equals(readFileSync(join(models.a.dir, 'model.safetensors')))).toBe(true);
    expect(hub.requests.filter((r) => r.fault === 'rate-limit').length).toBe(1);
  });

  it('ends with a clear message when the limit does not lift, keeping what was downloaded', async () => {
    const { root } = memoryOpfs();
    hub.faults = { rateLimit: (n) => (n >= 2 ? 1 : undefined) };
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1, retries: 1, retryBaseDelayMs: 5 });
    const error = (await cache.ensure(spec, fetchRange).catch((e: unknown) => e)) as ShardCacheError;
    expect(error).toBeInstanceOf(ShardCacheError);
    expect(error.bytesDone).toBe(BLOCK);
    expect(error.message).toBe(
      'downloading model.safetensors of alloy-test/ft-a was stopped by the Hub’s rate limit (429): it kept refusing after 2 tries. ' +
        'The Hub allows a few thousand file requests per 5 minutes (more when signed in); wait a few minutes, then merge again. ' +
        `The 32.8 kB already downloaded are kept: merging again resumes where it stopped.`,
    );
    expect(hub.requests.filter((r) => r.fault === 'rate-limit').length).toBe(2);
  });

  it('is not sat through when the Hub asks for more than 10 minutes', async () => {
    const { root } = memoryOpfs();
    hub.faults = { rateLimit: () => 3600 };
    const cache = await OpfsShardCache.open(root, { blockBytes: BLOCK, concurrency: 1, retries: 5, retryBaseDelayMs: 5 });
    const error = (await cache.ensure(spec, fetchRange).catch((e: unknown) => e)) as ShardCacheError;
    expect(error.message).toMatch(/stopped by the Hub’s rate limit \(429\): it asks to wait 60 min\./);
    expect(hub.requests.filter((r) => r.fault === 'rate-limit').length).toBe(1);
  });
});
