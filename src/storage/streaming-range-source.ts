import { Sha256 } from './sha256';
import type { ByteSource } from './types';

/**
 * A ByteSource over a remote file read by HTTP range, for merges that do not cache inputs (the
 * "stream" input mode). Reads are served from segments of at most `windowBytes` (default 32 MiB),
 * each fetched by one range request, so the engine's many small reads cost one request per
 * segment, not one per read (every `resolve` request counts against the Hub's quota).
 *
 * The segments follow a read schedule: the byte ranges the merge will read, in the order it reads
 * them (the worker derives it from the plan). Ranges that follow each other in the file are
 * coalesced into runs, and runs cut into segments; with no
 * schedule the whole file is one run. While the engine reads segment k, segments k+1..k+readAhead
 * of the schedule are being fetched, and segments before k are dropped: a source holds at most the
 * segments one read spans plus `readAhead`, whatever the file size. A read the schedule does not
 * cover (a tensor read a second time) is fetched on its own.
 *
 * Integrity: a segment fetched at the hashing frontier goes into a running SHA-256, so a file read
 * front to back is hashed from the very bytes the merge used, and `finish()` hashes the tail the
 * merge did not need. Skips of at most `gapBytes` are fetched for the hash. A merge that reads a
 * file out of file order (it reads tensors in output order) leaves the frontier behind: each
 * request it serves off the frontier gets a SHA-256 digest of its own, and `finish()` reads the
 * rest of the file in file order (in windows cut at those requests' ends), continuing the
 * running hash and comparing each such request's bytes with its digest. So every byte the merge
 * used is checked against the file's sha256, at the cost of downloading the parts read out of
 * order a second time (`verificationBytes`).
 */

/** Fetches bytes [start, end); rejects with an error whose `retryable` says whether to retry. */
export type StreamRangeFetch = (start: number, end: number, options: { readonly signal?: AbortSignal }) => Promise<Uint8Array>;

export interface StreamingRangeSourceOptions {
  /** Most bytes per range request; a multiple of 64 (default 32 MiB). */
  readonly windowBytes?: number;
  /** Segments fetched ahead of the one being read (default 1). */
  readonly readAhead?: number;
  /** Skips forward of at most this many bytes are fetched too, to keep the hash going (default 1 MiB). */
  readonly gapBytes?: number;
  /** The ranges the merge will read, in its order (default: the whole file, front to back). */
  readonly schedule?: readonly { readonly offset: number; readonly length: number }[];
  /** The file's LFS sha256 (lowercase hex): checked by `finish()`. */
  readonly sha256?: string;
  /**
   * When the merge reads the file out of file order, download the rest again at `finish()` to
   * check it (default true). False: such a file is reported unverified, with the reason, and
   * nothing is downloaded twice.
   */
  readonly rereadToVerify?: boolean;
  /** Tries after the first failure of one request (default 5). */
  readonly retries?: number;
  /** First retry delay, doubling each time (default 1000 ms); a `retryAfterMs` on the error (a 429's Retry-After) wins. */
  readonly retryBaseDelayMs?: number;
  readonly signal?: AbortSignal;
  /** Told about every wait before a retry (the Run step shows it). */
  readonly onRetry?: (info: { readonly error: unknown; readonly delayMs: number; readonly attempt: number }) => void;
}

/** What `finish()` found. */
export type StreamVerification = { readonly verified: true } | { readonly verified: false; readonly reason: string };

export class StreamIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamIntegrityError';
  }
}

export const DEFAULT_STREAM_WINDOW_BYTES = 32 * 1024 * 1024;
const DEFAULT_GAP_BYTES = 1024 * 1024;
/** Bytes hashed between two yields to the event loop (the GPU's callbacks must keep running). */
const HASH_SLICE_BYTES = 4 * 1024 * 1024;
/** Segments waiting for the hash before reads wait for it. */
const MAX_HASH_BACKLOG = 2;

interface Segment {
  readonly start: number;
  readonly end: number;
  bytes: Promise<Uint8Array> | null;
}

/** Bytes served to the merge that did not go into the running hash: checked by `finish()`. */
interface OffFrontier {
  readonly start: number;
  readonly end: number;
  /** Hex SHA-256 of the bytes served; null when they could not be downloaded (the merge failed then). */
  digest: string | null;
}

export class StreamingRangeSource implements ByteSource {
  private readonly windowBytes: number;
  private readonly readAhead: number;
  private readonly gapBytes: number;
  private readonly segments: Segment[];
  private cursor = 0;
  /** The running hash (its WebAssembly starts asynchronously); null when the Hub gives no sha256. */
  private hasher: Promise<Sha256> | null;
  /** Bytes [0, hashedTo) are in the hash (or on their way into it). */
  private hashedTo = 0;
  private hashing: Promise<void> = Promise.resolve();
  /** Requests queued for the hash and not hashed yet, oldest first: each holds its bytes until hashed. */
  private readonly hashQueue: Promise<void>[] = [];
  private unverifiedReason: string | null = null;
  private readonly offFrontier: OffFrontier[] = [];
  private requests = 0;
  private reverified = 0;
  private peakHeld = 0;

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
    this.gapBytes = Math.max(0, options.gapBytes ?? Math.min(DEFAULT_GAP_BYTES, w));
    this.segments = this.cut(options.schedule ?? [{ offset: 0, length: size }]);
    this.hasher = options.sha256 ? Sha256.create() : null;
    if (!options.sha256) this.unverifiedReason = 'the Hub lists no sha256 for it';
  }

  /** Range requests made so far (each one counts against the Hub's quota). */
  get requestCount(): number {
    return this.requests;
  }

  /** Bytes `finish()` downloaded again to hash the file in order (the parts read out of order). */
  get verificationBytes(): number {
    return this.reverified;
  }

  /** Most segments held at once (the memory bound is this times `windowBytes`). */
  get peakSegmentCount(): number {
    return this.peakHeld;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size)) {
      throw new RangeError(`${this.name}: cannot read ${length} bytes at ${offset} of a ${this.size}-byte file`);
    }
    if (length === 0) return new Uint8Array(0);
    // Hashing slower than the network would queue ever more segments: wait for it (the memory bound).
    while (this.hashQueue.length > MAX_HASH_BACKLOG) await this.hashQueue[0];
    const end = offset + length;
    const first = this.find(offset);
    let last = first;
    if (first >= 0) while (last + 1 < this.segments.length && this.segments[last].end < end && this.segments[last + 1].start === this.segments[last].end) last++;
    if (first < 0 || this.segments[last].end < end) {
      // Not in the schedule (a second read of a tensor): fetched on its own, checked by finish().
      const fetched = this.fetchWithRetry(offset, end);
      if (this.hasher) this.offFrontierRead(offset, end, fetched, offset < this.hashedTo ? 'the merge read a part of it a second time' : 'the merge read a part of it that the plan did not list');
      return fetched;
    }
    this.cursor = last;
    // Drop what this read and its read-ahead do not need before fetching more: the memory bound.
    for (let i = 0; i < this.segments.length; i++) if (i < first || i > last + this.readAhead) this.segments[i].bytes = null;
    const parts: Promise<Uint8Array>[] = [];
    for (let i = first; i <= last; i++) parts.push(this.load(i));
    for (let i = last + 1; i <= Math.min(this.segments.length - 1, last + this.readAhead); i++) void this.load(i).catch(() => undefined);
    const bytes = await Promise.all(parts);
    if (bytes.length === 1) {
      const from = offset - this.segments[first].start;
      return bytes[0].subarray(from, from + length);
    }
    const out = new Uint8Array(length);
    let at = 0;
    for (let k = 0; k < bytes.length; k++) {
      const seg = this.segments[first + k];
      const from = Math.max(offset, seg.start) - seg.start;
      const to = Math.min(end, seg.end) - seg.start;
      out.set(bytes[k].subarray(from, to), at);
      at += to - from;
    }
    return out;
  }

  /**
   * Waits for the hash, hashes the end of the file the merge did not read (only when everything
   * before was hashed), and compares with the sha256. Throws StreamIntegrityError on a mismatch:
   * the merge must then fail before its output is committed.
   */
  async finish(): Promise<StreamVerification> {
    for (const seg of this.segments) seg.bytes = null;
    await this.hashing;
    if (this.unverifiedReason !== null || !this.hasher) return { verified: false, reason: this.unverifiedReason ?? 'no hash' };
    if (this.offFrontier.some((r) => r.digest === null)) return { verified: false, reason: 'a part of it could not be downloaded' };
    // Bytes served off the frontier but before it were hashed from another request: hash it all again.
    if (this.offFrontier.some((r) => r.start < this.hashedTo)) {
      this.hasher = Sha256.create();
      this.hashedTo = 0;
    }
    const checks = [...this.offFrontier].sort((x, y) => x.start - y.start);
    while (this.hashedTo < this.size) {
      const start = this.hashedTo;
      let end = Math.min(this.size, start + this.windowBytes);
      // Windows end where no checked request straddles them, so each is compared whole.
      for (let moved = true; moved; ) {
        moved = false;
        for (const r of checks) if (r.start < end && r.end > end) (end = r.end), (moved = true);
      }
      const fetched = this.fetchWithRetry(start, end);
      this.reverified += end - start;
      const inside = checks.filter((r) => r.start >= start && r.end <= end);
      this.hashBytes(end, fetched);
      await this.hashing;
      if (this.unverifiedReason !== null) return { verified: false, reason: this.unverifiedReason };
      const bytes = await fetched;
      for (const r of inside) {
        const again = await digestOf(bytes.subarray(r.start - start, r.end - start));
        if (again !== r.digest) {
          throw new StreamIntegrityError(
            `the bytes ${r.start}..${r.end} of ${this.name} that this merge used differ from the same bytes downloaded again to check the file's sha256: ` +
              'a download was altered or damaged on the way, so the merge was not saved. Merge again; if this repeats, a proxy or the network is altering downloads.',
          );
        }
      }
    }
    const actual = (await this.hasher).hex();
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
    for (const seg of this.segments) seg.bytes = null;
  }

  /** Runs of the schedule (contiguous ranges, small gaps included) cut into segments of at most a window. */
  private cut(schedule: readonly { readonly offset: number; readonly length: number }[]): Segment[] {
    const runs: { start: number; end: number }[] = [];
    for (const { offset, length } of schedule) {
      if (length <= 0) continue;
      const run = runs[runs.length - 1];
      // Only ranges that follow each other exactly: filling a gap could fetch bytes the schedule
      // reads later, which would then be fetched twice.
      if (run && offset === run.end) run.end = offset + length;
      else runs.push({ start: offset, end: offset + length });
    }
    const segments: Segment[] = [];
    for (const run of runs) {
      for (let at = run.start; at < run.end; at += this.windowBytes) segments.push({ start: at, end: Math.min(run.end, at + this.windowBytes), bytes: null });
    }
    return segments;
  }

  /** The segment holding `offset`, searched from the cursor on (the schedule's order), then from the start. */
  private find(offset: number): number {
    for (let i = this.cursor; i < this.segments.length; i++) if (this.segments[i].start <= offset && offset < this.segments[i].end) return i;
    for (let i = 0; i < this.cursor; i++) if (this.segments[i].start <= offset && offset < this.segments[i].end) return i;
    return -1;
  }

  private load(i: number): Promise<Uint8Array> {
    const seg = this.segments[i];
    if (seg.bytes) return seg.bytes;
    if (this.hasher && this.unverifiedReason === null && seg.start > this.hashedTo) {
      const from = this.hashedTo;
      // Fill a small skip for the hash, unless the schedule reads those bytes later (they would be
      // fetched twice) or the merge already used some of them (finish() checks those).
      const readLater = this.segments.some((other) => other.start < seg.start && other.end > from);
      const usedBefore = this.offFrontier.some((r) => r.start < seg.start && r.end > from);
      if (seg.start - from <= this.gapBytes && !readLater && !usedBefore) this.hashBytes(seg.start, this.fetchWithRetry(from, seg.start));
    }
    const fetched = this.fetchWithRetry(seg.start, seg.end);
    seg.bytes = fetched;
    fetched.catch(() => {
      if (seg.bytes === fetched) seg.bytes = null;
    });
    this.peakHeld = Math.max(this.peakHeld, this.segments.reduce((n, s) => n + (s.bytes ? 1 : 0), 0));
    if (this.hasher && this.unverifiedReason === null) {
      if (seg.start === this.hashedTo) this.hashBytes(seg.end, fetched);
      else {
        const why = seg.start < this.hashedTo ? 'it went back to a part already read' : `it jumped ${formatSize(seg.start - this.hashedTo)} ahead`;
        this.offFrontierRead(seg.start, seg.end, fetched, `the merge read it out of file order (${why})`);
      }
    }
    return fetched;
  }

  /** Bytes served off the hashing frontier: checked at finish(), or (without rereads) the file is unverified. */
  private offFrontierRead(start: number, end: number, bytes: Promise<Uint8Array>, reason: string): void {
    if (this.options.rereadToVerify === false) this.unverifiedReason ??= reason;
    else this.digestOffFrontier(start, end, bytes);
  }

  /** Keeps a digest of bytes served to the merge off the hashing frontier, for finish() to check. */
  private digestOffFrontier(start: number, end: number, bytes: Promise<Uint8Array>): void {
    const entry: OffFrontier = { start, end, digest: null };
    this.offFrontier.push(entry);
    this.queueHashWork(async () => {
      let data: Uint8Array;
      try {
        data = await bytes;
      } catch {
        return;
      }
      entry.digest = await digestOf(data);
    });
  }

  /** Appends the bytes of a request at the frontier to the hash; the frontier moves to `end` at once (requests are issued in order). */
  private hashBytes(end: number, bytes: Promise<Uint8Array>): void {
    const hasher = this.hasher!;
    this.hashedTo = end;
    this.queueHashWork(async () => {
      let data: Uint8Array;
      try {
        data = await bytes;
      } catch {
        this.unverifiedReason ??= 'a part of it could not be downloaded';
        return;
      }
      if (this.unverifiedReason !== null) return;
      await hashInSlices(await hasher, data);
    });
  }

  /** Runs hashing work after the work queued before (one hash at a time, bounded backlog). */
  private queueHashWork(work: () => Promise<void>): void {
    const queued = this.hashing.then(work);
    const done = queued.finally(() => this.hashQueue.splice(this.hashQueue.indexOf(done), 1));
    this.hashQueue.push(done);
    this.hashing = done;
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

/** Feeds `data` to `hasher` a slice at a time, yielding between slices (the GPU's callbacks must keep running). */
async function hashInSlices(hasher: Sha256, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.byteLength; at += HASH_SLICE_BYTES) {
    hasher.update(data.subarray(at, Math.min(data.byteLength, at + HASH_SLICE_BYTES)));
    if (at + HASH_SLICE_BYTES < data.byteLength) await yieldToEventLoop();
  }
}

async function digestOf(data: Uint8Array): Promise<string> {
  const hasher = await Sha256.create();
  await hashInSlices(hasher, data);
  return hasher.hex();
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round(bytes / (1024 * 1024))} MiB` : `${Math.round(bytes / 1024)} KiB`;
}
