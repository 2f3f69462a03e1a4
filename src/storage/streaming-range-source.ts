import { Sha256 } from './sha256';
import type { ByteSource } from './types';

/**
 * A ByteSource over a remote file read by HTTP range, for merges that do not cache inputs (the
 * "stream" input mode): the file is cut into large windows (default 32 MiB), each fetched by one
 * range request, so the engine's many small reads cost one request per window, not one per read
 * (every `resolve` request counts against the Hub's quota). While the engine reads window i the
 * next `readAhead` windows are already being fetched; older windows are dropped, so a source
 * holds at most (windows spanned by one read) + readAhead windows whatever the file size.
 *
 * Integrity: a window fetched at the hashing frontier goes into a running SHA-256, so a file read
 * front to back is hashed from the very bytes the merge used. Reads that skip ahead by at most
 * `gapBytes` fetch the gap as well (hashed, then dropped). A read that goes backwards to a dropped
 * window, or skips further, re-fetches or leaves bytes unhashed: the file is then reported as
 * unverified (`finish()` says why) rather than re-downloaded whole to check it.
 */

/** Fetches bytes [start, end); rejects with an error whose `retryable` says whether to retry. */
export type StreamRangeFetch = (start: number, end: number, options: { readonly signal?: AbortSignal }) => Promise<Uint8Array>;

export interface StreamingRangeSourceOptions {
  /** Bytes per range request; a multiple of 64 (default 32 MiB). */
  readonly windowBytes?: number;
  /** Windows fetched ahead of the one being read (default 1). */
  readonly readAhead?: number;
  /** Skips forward of at most this many bytes are fetched anyway, to keep the hash going (default one window). */
  readonly gapBytes?: number;
  /** The file's LFS sha256 (lowercase hex): checked by `finish()`. */
  readonly sha256?: string;
  /** Tries after the first failure of one window (default 5). */
  readonly retries?: number;
  /** First retry delay, doubling each time (default 1000 ms); a `retryAfterMs` on the error (a 429's Retry-After) wins. */
  readonly retryBaseDelayMs?: number;
  readonly signal?: AbortSignal;
  /** Told about every wait before a retry (the Run step shows it). */
  readonly onRetry?: (info: { readonly error: unknown; readonly delayMs: number; readonly attempt: number }) => void;
}

/** What `finish()` found. */
export type StreamVerification =
  | { readonly verified: true }
  | { readonly verified: false; readonly reason: string };

export class StreamIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamIntegrityError';
  }
}

export const DEFAULT_STREAM_WINDOW_BYTES = 32 * 1024 * 1024;
/** Bytes hashed between two yields to the event loop (the GPU's callbacks must keep running). */
const HASH_SLICE_BYTES = 4 * 1024 * 1024;

export class StreamingRangeSource implements ByteSource {
  private readonly windowBytes: number;
  private readonly readAhead: number;
  private readonly gapWindows: number;
  private readonly windowCount: number;
  private readonly windows = new Map<number, Promise<Uint8Array>>();
  private hasher: Sha256 | null;
  /** Index of the next window to hash; windows below it are in the hash. */
  private nextToHash = 0;
  private hashing: Promise<void> = Promise.resolve();
  private unverifiedReason: string | null = null;
  private requests = 0;
  private peakWindows = 0;

  constructor(
    readonly name: string,
    readonly size: number,
    private readonly fetchRange: StreamRangeFetch,
    private readonly options: StreamingRangeSourceOptions = {},
  ) {
    const w = options.windowBytes ?? DEFAULT_STREAM_WINDOW_BYTES;
    if (!Number.isSafeInteger(w) || w <= 0 || w % 64 !== 0) throw new RangeError(`windowBytes must be a positive multiple of 64, not ${w}`);
    this.windowBytes = w;
    this.readAhead = Math.max(0, options.readAhead ?? 1);
    this.gapWindows = Math.max(0, Math.floor((options.gapBytes ?? w) / w));
    this.windowCount = Math.ceil(size / w);
    this.hasher = options.sha256 ? new Sha256() : null;
    if (!options.sha256) this.unverifiedReason = 'the Hub lists no sha256 for it';
  }

  /** Range requests made so far (each one counts against the Hub's quota). */
  get requestCount(): number {
    return this.requests;
  }

  /** Most windows held at once (memory bound: times the window size). */
  get peakWindowCount(): number {
    return this.peakWindows;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size)) {
      throw new RangeError(`${this.name}: cannot read ${length} bytes at ${offset} of a ${this.size}-byte file`);
    }
    if (length === 0) return new Uint8Array(0);
    const first = Math.floor(offset / this.windowBytes);
    const last = Math.floor((offset + length - 1) / this.windowBytes);
    const keep = new Set<number>();
    for (let i = first; i <= Math.min(this.windowCount - 1, last + this.readAhead); i++) keep.add(i);
    // Drop what this read and its read-ahead do not need before fetching more: the memory bound.
    for (const i of [...this.windows.keys()]) if (!keep.has(i)) this.windows.delete(i);
    const parts: Promise<Uint8Array>[] = [];
    for (let i = first; i <= last; i++) parts.push(this.window(i));
    for (let i = last + 1; i <= Math.min(this.windowCount - 1, last + this.readAhead); i++) {
      // Read-ahead only goes forward from the frontier (never behind the hash, never re-fetches).
      if (!this.windows.has(i) && (i >= this.nextToHash || this.unverifiedReason !== null)) void this.window(i).catch(() => undefined);
    }
    const bytes = await Promise.all(parts);
    if (bytes.length === 1) {
      const start = offset - first * this.windowBytes;
      return bytes[0].subarray(start, start + length);
    }
    const out = new Uint8Array(length);
    let at = 0;
    for (let k = 0; k < bytes.length; k++) {
      const windowStart = (first + k) * this.windowBytes;
      const from = Math.max(offset, windowStart) - windowStart;
      const to = Math.min(offset + length, windowStart + bytes[k].byteLength) - windowStart;
      out.set(bytes[k].subarray(from, to), at);
      at += to - from;
    }
    return out;
  }

  /**
   * Waits for the hash, hashes what the merge did not read at the end of the file (only when
   * everything before was hashed), and compares with the sha256. Throws StreamIntegrityError on a
   * mismatch: the merge must then fail before its output is committed.
   */
  async finish(): Promise<StreamVerification> {
    await this.hashing;
    this.windows.clear();
    if (this.unverifiedReason !== null || !this.hasher) return { verified: false, reason: this.unverifiedReason ?? 'no hash' };
    while (this.nextToHash < this.windowCount) {
      const i = this.nextToHash;
      const bytes = await this.window(i);
      this.windows.delete(i);
      await this.hashing;
      void bytes;
    }
    await this.hashing;
    const actual = this.hasher.hex();
    const expected = this.options.sha256!.toLowerCase();
    if (actual !== expected) {
      throw new StreamIntegrityError(
        `the bytes of ${this.name} streamed for this merge have sha256 ${actual}, but the Hub says ${expected}: ` +
          'the download was altered or damaged on the way, so the merge was not saved. Merge again; if this repeats, a proxy or the network is altering downloads.',
      );
    }
    return { verified: true };
  }

  async close(): Promise<void> {
    this.windows.clear();
  }

  private window(i: number): Promise<Uint8Array> {
    const held = this.windows.get(i);
    if (held) return held;
    if (this.hasher && this.unverifiedReason === null) {
      if (i < this.nextToHash) {
        this.unverifiedReason = 'the merge read it out of file order (a part was read again after it had been hashed)';
      } else if (i > this.nextToHash) {
        if (i - this.nextToHash <= this.gapWindows) {
          // Fetch the skipped windows too, for the hash only: cheaper than losing verification.
          for (let g = this.nextToHash; g < i; g++) void this.window(g).catch(() => undefined);
        } else {
          this.unverifiedReason = `the merge skipped ${formatMiB((i - this.nextToHash) * this.windowBytes)} of it (read out of file order)`;
        }
      }
    }
    const start = i * this.windowBytes;
    const end = Math.min(this.size, start + this.windowBytes);
    const fetched = this.fetchWithRetry(start, end);
    this.windows.set(i, fetched);
    this.peakWindows = Math.max(this.peakWindows, this.windows.size);
    fetched.catch(() => {
      if (this.windows.get(i) === fetched) this.windows.delete(i);
    });
    if (this.hasher && this.unverifiedReason === null && i === this.nextToHash) {
      this.nextToHash = i + 1;
      const hasher = this.hasher;
      this.hashing = this.hashing.then(async () => {
        let bytes: Uint8Array;
        try {
          bytes = await fetched;
        } catch {
          this.unverifiedReason ??= 'a part of it could not be downloaded';
          return;
        }
        for (let at = 0; at < bytes.byteLength; at += HASH_SLICE_BYTES) {
          hasher.update(bytes.subarray(at, Math.min(bytes.byteLength, at + HASH_SLICE_BYTES)));
          if (at + HASH_SLICE_BYTES < bytes.byteLength) await yieldToEventLoop();
        }
      });
    }
    return fetched;
  }

  private async fetchWithRetry(start: number, end: number): Promise<Uint8Array> {
    const retries = Math.max(0, this.options.retries ?? 5);
    const signal = this.options.signal;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      this.requests++;
      try {
        const bytes = await this.fetchRange(start, end, signal ? { signal } : {});
        if (bytes.byteLength !== end - start) {
          throw Object.assign(new Error(`${this.name}: got ${bytes.byteLength} bytes for the range ${start}..${end}`), { retryable: true });
        }
        return bytes;
      } catch (error) {
        if (signal?.aborted || !isRetryable(error) || attempt >= retries) throw error;
        const retryAfter = (error as { retryAfterMs?: unknown }).retryAfterMs;
        const delayMs = typeof retryAfter === 'number' && retryAfter >= 0 ? retryAfter : (this.options.retryBaseDelayMs ?? 1000) * 2 ** attempt;
        this.options.onRetry?.({ error, delayMs, attempt: attempt + 1 });
        await sleep(delayMs, signal);
      }
    }
  }
}

function isRetryable(error: unknown): boolean {
  if (typeof error === 'object' && error !== null && 'retryable' in error) return (error as { retryable: unknown }).retryable === true;
  return error instanceof TypeError;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function formatMiB(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))} MiB`;
}
