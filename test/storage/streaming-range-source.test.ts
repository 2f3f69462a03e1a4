import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { StreamIntegrityError, StreamingRangeSource, type StreamRangeFetch } from '../../src/storage/streaming-range-source';

const W = 1024; // window bytes in these tests (a multiple of 64)

/** A file of `size` bytes (value i*7+3 mod 251, so any misplaced byte shows) behind a logging range fetch. */
function remote(size: number, faults: { failFirst?: number; retryAfterMs?: number; corruptAt?: number; corruptFetchOf?: { at: number; nth: number } } = {}) {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + 3) % 251;
  const sha256 = createHash('sha256').update(data).digest('hex');
  const requests: [number, number][] = [];
  let failures = faults.failFirst ?? 0;
  const fetchRange: StreamRangeFetch = async (start, end) => {
    requests.push([start, end]);
    if (failures > 0) {
      failures--;
      throw Object.assign(new Error('429 Too Many Requests'), { retryable: true, ...(faults.retryAfterMs !== undefined ? { retryAfterMs: faults.retryAfterMs } : {}) });
    }
    const out = data.slice(start, end);
    if (faults.corruptAt !== undefined && faults.corruptAt >= start && faults.corruptAt < end) out[faults.corruptAt - start] ^= 1;
    // Altered once, in the nth request that holds it (a transient fault on the way).
    const once = faults.corruptFetchOf;
    if (once && once.at >= start && once.at < end && --once.nth === 0) out[once.at - start] ^= 1;
    return out;
  };
  return { data, sha256, requests, fetchRange };
}

describe('StreamingRangeSource', () => {
  it('coalesces small sequential reads into one range request per window and returns the right bytes', async () => {
    const r = remote(5 * W + 100);
    const source = new StreamingRangeSource('a/model.safetensors', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 1, sha256: r.sha256 });
    // 100-byte reads front to back, some crossing window boundaries.
    for (let at = 0; at < r.data.byteLength; at += 100) {
      const n = Math.min(100, r.data.byteLength - at);
      expect(Array.from(await source.read(at, n))).toEqual(Array.from(r.data.subarray(at, at + n)));
    }
    // 5121 + 100 bytes = 6 windows: exactly 6 requests (no request per read, none twice).
    expect(r.requests).toEqual([0, 1, 2, 3, 4, 5].map((i) => [i * W, Math.min((i + 1) * W, 5 * W + 100)]));
    expect(await source.finish()).toEqual({ verified: true });
  });

  it('holds at most the windows of one read plus the read-ahead, whatever the file size', async () => {
    const r = remote(40 * W);
    const source = new StreamingRangeSource('big', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 2, sha256: r.sha256 });
    for (let at = 0; at < r.data.byteLength; at += 256) await source.read(at, 256);
    // 1 window read + 2 ahead (+ a window dropped only at the next read).
    expect(source.peakSegmentCount).toBeLessThanOrEqual(3);
    expect(r.requests.length).toBe(40);
    expect(await source.finish()).toEqual({ verified: true });
  });

  it('serves a read larger than a window from several windows', async () => {
    const r = remote(10 * W);
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, sha256: r.sha256 });
    const bytes = await source.read(W / 2, 3 * W);
    expect(Array.from(bytes)).toEqual(Array.from(r.data.subarray(W / 2, W / 2 + 3 * W)));
    expect(r.requests).toEqual([0, 1, 2, 3].map((i) => [i * W, (i + 1) * W]));
  });

  it('retries a failed window, waiting the Retry-After of a 429 when given', async () => {
    const r = remote(2 * W, { failFirst: 2, retryAfterMs: 5 });
    const waits: number[] = [];
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, {
      windowBytes: W,
      readAhead: 0,
      sha256: r.sha256,
      retryBaseDelayMs: 10_000, // would time the test out: the Retry-After must win
      onRetry: (info) => waits.push(info.delayMs),
    });
    expect(Array.from(await source.read(10, 20))).toEqual(Array.from(r.data.subarray(10, 30)));
    expect(waits).toEqual([5, 5]);
    expect(r.requests).toEqual([[0, W], [0, W], [0, W]]);
  });

  it('gives up after the retries and rejects with the last error; an error that is not retryable is not retried', async () => {
    const r = remote(W, { failFirst: 10 });
    const source = new StreamingRangeSource('x', W, r.fetchRange, { windowBytes: W, retries: 2, retryBaseDelayMs: 1 });
    await expect(source.read(0, 10)).rejects.toThrow('429');
    expect(r.requests.length).toBe(3);
    const fatal: StreamRangeFetch = async () => {
      throw Object.assign(new Error('403 gated'), { retryable: false });
    };
    const calls: number[] = [];
    const source2 = new StreamingRangeSource('x', W, async (s, e, o) => (calls.push(s), fatal(s, e, o)), { windowBytes: W, retryBaseDelayMs: 1 });
    await expect(source2.read(0, 10)).rejects.toThrow('403 gated');
    expect(calls.length).toBe(1);
  });

  it('fails finish() when the streamed bytes do not hash to the sha256', async () => {
    const r = remote(3 * W, { corruptAt: W + 17 });
    const source = new StreamingRangeSource('a/model.safetensors', r.data.byteLength, r.fetchRange, { windowBytes: W, sha256: r.sha256 });
    await source.read(0, 3 * W);
    await expect(source.finish()).rejects.toThrow(StreamIntegrityError);
  });

  it('hashes the unread tail at finish() and a small skip forward, so a file read front to back is still verified', async () => {
    const r = remote(6 * W);
    // The merge reads [0, W) and then [2W, 6W): the bytes of window 1 are never read.
    const schedule = [{ offset: 0, length: W }, { offset: 2 * W, length: 4 * W }];
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, gapBytes: W, schedule, sha256: r.sha256 });
    await source.read(0, 10); // window 0
    await source.read(2 * W + 5, 10); // skips window 1: fetched for the hash, as nothing reads it later
    expect(await source.finish()).toEqual({ verified: true });
    expect(r.requests.map(([s]) => s / W)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('verifies a file read out of order: finish() reads the rest in file order and checks the bytes the merge used', async () => {
    const r = remote(8 * W);
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, gapBytes: W, sha256: r.sha256 });
    await source.read(5 * W, 10); // far ahead of the hash frontier: window 5 gets a digest of its own
    await source.read(0, 10); // at the frontier: hashed
    expect(r.requests.map(([s]) => s / W)).toEqual([5, 0]);
    expect(await source.finish()).toEqual({ verified: true });
    // Windows 1..7 in file order, window 5 a second time: 7 windows downloaded again.
    expect(r.requests.slice(2).map(([s, e]) => [s / W, e / W])).toEqual([[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7], [7, 8]]);
    expect(source.verificationBytes).toBe(7 * W);
  });

  it('without rereads, reports a file read out of order as unverified, downloading nothing twice', async () => {
    const r = remote(8 * W);
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, gapBytes: W, sha256: r.sha256, rereadToVerify: false });
    await source.read(5 * W, 10); // far ahead of the hash frontier
    await source.read(0, 10);
    const result = await source.finish();
    expect(result).toEqual({ verified: false, reason: 'the merge read it out of file order (it jumped 5 KiB ahead)' });
    expect(r.requests.length).toBe(2);
  });

  it('catches a byte altered in what an out-of-order read served, though the file downloaded again is intact', async () => {
    const r = remote(8 * W, { corruptFetchOf: { at: 5 * W + 3, nth: 1 } });
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, gapBytes: W, sha256: r.sha256 });
    const used = await source.read(5 * W, 10);
    expect(used[3]).toBe(r.data[5 * W + 3] ^ 1);
    await source.read(0, 10);
    await expect(source.finish()).rejects.toThrow(new StreamIntegrityError(
      `the bytes ${5 * W}..${6 * W} of x that this merge used differ from the same bytes downloaded again to check the file's sha256: ` +
        'a download was altered or damaged on the way, so the merge was not saved. Merge again; if this repeats, a proxy or the network is altering downloads.',
    ));
  });

  it('catches a byte altered in every download of a file read out of order (the sha256 differs)', async () => {
    const r = remote(8 * W, { corruptAt: 2 * W + 9 });
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, gapBytes: 0, sha256: r.sha256 });
    await source.read(6 * W, 10);
    await source.read(2 * W, 10);
    await source.read(0, 10);
    await expect(source.finish()).rejects.toThrow(/have sha256 [0-9a-f]{64}, but the Hub says/);
  });

  it('hashes the whole file again when the merge read a part already hashed a second time, and checks that part too', async () => {
    const run = async (faults: Parameters<typeof remote>[1]) => {
      const r = remote(4 * W, faults);
      const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, sha256: r.sha256, schedule: [{ offset: 0, length: 2 * W }] });
      await source.read(0, 2 * W); // hashed at the frontier
      await source.read(0, 10); // drops window 1
      await source.read(W, 10); // window 1 again, from another request: behind the frontier
      return { r, source };
    };
    const good = await run({});
    expect(await good.source.finish()).toEqual({ verified: true });
    expect(good.source.verificationBytes).toBe(4 * W);
    // The second download of window 1 is altered: the merge used it, the first download was intact.
    const bad = await run({ corruptFetchOf: { at: W + 1, nth: 2 } });
    await expect(bad.source.finish()).rejects.toThrow(`the bytes ${W}..${2 * W} of x that this merge used differ`);
  });

  it('follows a read schedule: fetches the scheduled ranges in the merge order, coalesced, a small tensor costing its own bytes', async () => {
    const r = remote(8 * W);
    // Header [0,100), then tensors in output order, not file order: T2 at [5W, 5W+64) (small),
    // T1 at [100, 3W) (2.9 windows), T3 at [3W, 3W+10) right after T1 (coalesced with it).
    const schedule = [
      { offset: 0, length: 100 },
      { offset: 5 * W, length: 64 },
      { offset: 100, length: 3 * W - 100 },
      { offset: 3 * W, length: 10 },
    ];
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 1, gapBytes: 0, schedule, sha256: r.sha256 });
    const expectRead = async (offset: number, length: number) => expect(Array.from(await source.read(offset, length))).toEqual(Array.from(r.data.subarray(offset, offset + length)));
    await expectRead(0, 100);
    await expectRead(5 * W, 64);
    for (let at = 100; at < 3 * W; at += 300) await expectRead(at, Math.min(300, 3 * W - at));
    await expectRead(3 * W, 10);
    // [0,100) | [5W,5W+64) | [100, 3W+10) cut at windows: 100..W+100, W+100..2W+100, 2W+100..3W+10.
    expect(r.requests).toEqual([
      [0, 100],
      [5 * W, 5 * W + 64],
      [100, W + 100],
      [W + 100, 2 * W + 100],
      [2 * W + 100, 3 * W + 10],
    ]);
    // Read out of file order: the rest of the file is read in file order to check it, windows
    // cut so that the small tensor's request [5W, 5W+64) is compared whole.
    expect(await source.finish()).toEqual({ verified: true });
    expect(r.requests.slice(5)).toEqual([
      [3 * W + 10, 4 * W + 10],
      [4 * W + 10, 5 * W + 64],
      [5 * W + 64, 6 * W + 64],
      [6 * W + 64, 7 * W + 64],
      [7 * W + 64, 8 * W],
    ]);
    // A read the schedule does not cover is fetched on its own.
    await expectRead(7 * W, 5);
    expect(r.requests.at(-1)).toEqual([7 * W, 7 * W + 5]);
  });

  it('verifies a file whose schedule is in file order, hashing the unread tail at the end', async () => {
    const r = remote(4 * W);
    const schedule = [{ offset: 0, length: 100 }, { offset: 100, length: W }, { offset: W + 100, length: W }];
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, schedule, sha256: r.sha256 });
    await source.read(0, 100);
    await source.read(100, W);
    await source.read(W + 100, W);
    expect(await source.finish()).toEqual({ verified: true });
    // One run [0, 2W+100) in windows, then the tail the merge did not read, for the hash only.
    expect(r.requests).toEqual([[0, W], [W, 2 * W], [2 * W, 2 * W + 100], [2 * W + 100, 3 * W + 100], [3 * W + 100, 4 * W]]);
  });
});
