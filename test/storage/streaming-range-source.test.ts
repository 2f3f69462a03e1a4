import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { StreamIntegrityError, StreamingRangeSource, type StreamRangeFetch } from '../../src/storage/streaming-range-source';

const W = 1024; // window bytes in these tests (a multiple of 64)

/** A file of `size` bytes (value i*7+3 mod 251, so any misplaced byte shows) behind a logging range fetch. */
function remote(size: number, faults: { failFirst?: number; retryAfterMs?: number; corruptAt?: number } = {}) {
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

  it('reports a file read out of order as unverified, without downloading it again', async () => {
    const r = remote(8 * W);
    const source = new StreamingRangeSource('x', r.data.byteLength, r.fetchRange, { windowBytes: W, readAhead: 0, gapBytes: W, sha256: r.sha256 });
    await source.read(5 * W, 10); // far ahead of the hash frontier
    await source.read(0, 10);
    const result = await source.finish();
    expect(result.verified).toBe(false);
    expect(result.verified === false && result.reason).toMatch(/out of file order/);
    expect(r.requests.length).toBe(2);
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
    // Read out of file order: reported, nothing downloaded again to check it.
    const result = await source.finish();
    expect(result).toEqual({ verified: false, reason: expect.stringMatching(/out of file order/) });
    expect(r.requests.length).toBe(5);
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
