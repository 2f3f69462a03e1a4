import { BlobByteSource } from './blob-source';
import { formatBytes } from './format-bytes';
import { syncAccessHandle } from './opfs-handles';
// The hashing helper only (no Hub client): the cache checks what the Hub's listing vouches for.
import { gitBlobId } from '../hub/integrity';
import { DEFAULT_RATE_LIMIT_WAIT_MS, formatWait, MAX_RATE_LIMIT_WAIT_MS } from '../hub/rate-limit';
import { Sha256, type Sha256State } from './sha256';
import type { ByteSource } from './types';

/**
 * The download cache of model weights in the origin private file system (OPFS), keyed by repo,
 * commit and file (with the file's sha256 when the Hub gives one). A file is fetched by HTTP range
 * requests in blocks, written with a SyncAccessHandle (so: dedicated workers only), and its block
 * map is saved next to it after every block, so that a reload, a crash or a network failure
 * resumes without fetching finished blocks again. The sha256 is computed as blocks arrive (its
 * midstate saved with the block map) and checked against the Hub's LFS oid at the end.
 *
 * Layout under the root: `alloy-cache/<repo>/<commit>/files/<path>` and
 * `alloy-cache/<repo>/<commit>/state/<path>.json` (names URI-encoded, so paths are flat).
 */

/** One file to cache. */
export interface ShardSpec {
  readonly repo: string;
  /** The resolved commit (never a branch name: a branch moves). */
  readonly commit: string;
  readonly path: string;
  readonly size: number;
  /** LFS oid: the file is verified against it when complete. */
  readonly sha256?: string;
  /**
   * Git blob id (sha1 of `blob <size>\0` + content), for files not stored in LFS: verified, by
   * reading the whole file once (such files are small), when there is no sha256.
   */
  readonly gitOid?: string;
}

/** Fetches bytes [start, end) of the file; rejects with an error whose `retryable` says whether to retry. */
export type RangeFetch = (
  start: number,
  end: number,
  options: { readonly signal: AbortSignal; readonly onBytes: (bytes: number) => void },
) => Promise<Uint8Array>;

export type ShardState = 'cached' | 'downloading' | 'verifying' | 'done' | 'retrying' | 'failed';

export interface ShardProgress {
  readonly spec: ShardSpec;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly state: ShardState;
  readonly message?: string;
}

export interface ShardCacheOptions {
  /** Bytes per range request and per block-map entry; a multiple of 64 (default 32 MiB: a 7B model in about 450 requests, well inside the Hub's per-5-minute quota for three of them). */
  readonly blockBytes?: number;
  /** Blocks of one file fetched at once (default 4). */
  readonly concurrency?: number;
  /** Tries after the first failure of a block before giving up (default 5). */
  readonly retries?: number;
  /** First retry delay; doubles each time (default 1000 ms). */
  readonly retryBaseDelayMs?: number;
  /** Which errors are worth retrying (default: `error.retryable === true`, or a TypeError from fetch). */
  readonly isRetryable?: (error: unknown) => boolean;
}

export interface CachedFileInfo {
  readonly repo: string;
  readonly commit: string;
  readonly path: string;
  readonly size: number;
  readonly bytesDone: number;
  readonly complete: boolean;
  /** Checked against the Hub's sha256. */
  readonly verified: boolean;
}

export type ShardCacheErrorKind = 'network' | 'checksum' | 'quota' | 'locked' | 'aborted' | 'other';

export class ShardCacheError extends Error {
  constructor(
    message: string,
    readonly kind: ShardCacheErrorKind,
    readonly spec: ShardSpec,
    /** Bytes of the file already in the cache (kept for the next try). */
    readonly bytesDone: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ShardCacheError';
  }

  /** Bytes of this file still to download. */
  get bytesMissing(): number {
    return this.spec.size - this.bytesDone;
  }
}

export const DEFAULT_BLOCK_BYTES = 32 * 1024 * 1024;
const CACHE_DIR = 'alloy-cache';
const STATE_VERSION = 1;

interface StoredState {
  version: number;
  repo: string;
  commit: string;
  path: string;
  size: number;
  sha256: string | null;
  blockBytes: number;
  /** Indices of the blocks written and flushed. */
  done: number[];
  /**
   * SHA-256 midstate over blocks 0..n-1 (n = hash.bytes / blockBytes). Files written by earlier
   * versions hold the JavaScript SHA-256's `{ h, bytes }` here, which Sha256.resume refuses.
   */
  hash: Sha256State | null;
  complete: boolean;
  verified: boolean;
}

const enc = (name: string): string => encodeURIComponent(name);

export class OpfsShardCache {
  private readonly blockBytes: number;
  private readonly concurrency: number;
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;
  private readonly isRetryable: (error: unknown) => boolean;

  private constructor(
    private readonly root: FileSystemDirectoryHandle,
    options: ShardCacheOptions,
  ) {
    const block = options.blockBytes ?? DEFAULT_BLOCK_BYTES;
    if (!Number.isSafeInteger(block) || block <= 0 || block % 64 !== 0) {
      throw new RangeError(`blockBytes must be a positive multiple of 64, not ${block}`);
    }
    this.blockBytes = block;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.retries = Math.max(0, options.retries ?? 5);
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 1000;
    this.isRetryable = options.isRetryable ?? defaultRetryable;
  }

  /** `storageRoot` is `await navigator.storage.getDirectory()` (or a test double). */
  static async open(storageRoot: FileSystemDirectoryHandle, options: ShardCacheOptions = {}): Promise<OpfsShardCache> {
    const root = await storageRoot.getDirectoryHandle(CACHE_DIR, { create: true });
    return new OpfsShardCache(root, options);
  }

  /** Bytes of the file already cached (finished blocks); the size when complete. */
  async bytesCached(spec: ShardSpec): Promise<number> {
    const state = await this.readState(spec);
    if (!state) return 0;
    if (state.complete) return spec.size;
    return doneBytes(state);
  }

  async isComplete(spec: ShardSpec): Promise<boolean> {
    const state = await this.readState(spec);
    return state?.complete === true;
  }

  /** Opens a complete cached file for reading (a disk-backed File: nothing is loaded whole). */
  async openFile(spec: ShardSpec): Promise<ByteSource> {
    const state = await this.readState(spec);
    if (!state?.complete) {
      throw new ShardCacheError(`${spec.repo}/${spec.path} is not in the download cache (yet)`, 'other', spec, state ? doneBytes(state) : 0);
    }
    const dir = await this.commitDir(spec, false);
    const files = dir && (await childDir(dir, 'files', false));
    const handle = files && (await childFile(files, enc(spec.path), false));
    const file = handle && (await handle.getFile());
    if (!file || file.size !== spec.size) {
      await this.forget(spec).catch(() => undefined);
      throw new ShardCacheError(
        `the cached copy of ${spec.repo}/${spec.path} is missing or damaged; it was removed and will be downloaded again`,
        'other',
        spec,
        0,
      );
    }
    const name = `${spec.repo}/${spec.path}`;
    return new BlobByteSource(name, file, { kind: 'opfs', name, key: `${spec.repo}@${spec.commit}/${spec.path}`, handle, blob: file });
  }

  /**
   * Makes sure the file is completely cached and verified: fetches the missing blocks (resuming a
   * partial download), retrying network failures with backoff, and checks the sha256.
   */
  async ensure(
    spec: ShardSpec,
    fetchRange: RangeFetch,
    options: { signal?: AbortSignal; onProgress?: (progress: ShardProgress) => void } = {},
  ): Promise<void> {
    const report: Report = (state, bytesDone, message) =>
      options.onProgress?.({ spec, bytesDone, bytesTotal: spec.size, state, ...(message ? { message } : {}) });
    const signal = options.signal;

    const state = await this.stateFor(spec);
    if (state?.complete) {
      await this.confirmCached(spec, state, report);
      return;
    }
    signal?.throwIfAborted();
    const dir = await this.commitDir(spec, true);
    const filesDir = await dir.getDirectoryHandle('files', { create: true });
    const stateDir = await dir.getDirectoryHandle('state', { create: true });
    const file = new PartialFile(spec, state ?? this.freshState(spec));
    try {
      await file.open(filesDir, stateDir, signal);
      await file.resumeHash();
      await this.fetchMissing(file, fetchRange, signal, report);
      // Everything is here: finish the hash and compare it with the Hub's.
      file.advanceHash();
      await this.verify(file, report);
      file.markComplete();
      report('done', spec.size);
    } catch (error) {
      throw this.explain(error, spec, file.bytesDone());
    } finally {
      file.close();
    }
  }

  /** The saved state of the file, unless it describes another version of it (then forgotten). */
  private async stateFor(spec: ShardSpec): Promise<StoredState | null> {
    const state = await this.readState(spec);
    if (state && (state.size !== spec.size || state.sha256 !== (spec.sha256 ?? null))) {
      await this.forget(spec);
      return null;
    }
    return state;
  }

  /** A complete file: checks its git blob id if that was never done, and reports it cached. */
  private async confirmCached(spec: ShardSpec, state: StoredState, report: Report): Promise<void> {
    // Cached before git blob ids were checked, or by a run that stopped between download and check.
    if (!state.verified && !spec.sha256 && spec.gitOid) {
      report('verifying', spec.size);
      const file = await this.openFile(spec);
      await this.checkGitBlob(spec, await file.read(0, spec.size));
    }
    report('cached', spec.size);
  }

  private freshState(spec: ShardSpec): StoredState {
    return {
      version: STATE_VERSION,
      repo: spec.repo,
      commit: spec.commit,
      path: spec.path,
      size: spec.size,
      sha256: spec.sha256 ?? null,
      blockBytes: this.blockBytes,
      done: [],
      hash: null,
      complete: false,
      verified: false,
    };
  }

  /**
   * Fetches the blocks the file lacks, `concurrency` at a time; the first failure (after its
   * retries) stops the others, and the blocks finished so far stay saved.
   */
  private async fetchMissing(file: PartialFile, fetchRange: RangeFetch, signal: AbortSignal | undefined, report: Report): Promise<void> {
    const progress = new BlockProgress(file, report);
    progress.report('downloading');
    const pending = file.missingBlocks();
    const internal = new AbortController();
    const linked = signal ? AbortSignal.any([signal, internal.signal]) : internal.signal;
    let firstError: unknown = null;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < pending.length && firstError === null) {
        const index = pending[next++];
        try {
          await this.fetchBlock(file, index, fetchRange, linked, progress);
        } catch (error) {
          if (firstError === null) firstError = error;
          internal.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, pending.length) }, lane));
    if (firstError !== null) {
      file.save();
      if (signal?.aborted) throw new ShardCacheError('cancelled', 'aborted', file.spec, file.bytesDone(), { cause: signal.reason });
      throw firstError;
    }
  }

  /** Fetches one block and writes it, retrying retryable failures with exponential backoff. */
  private async fetchBlock(file: PartialFile, index: number, fetchRange: RangeFetch, signal: AbortSignal, progress: BlockProgress): Promise<void> {
    const start = index * file.blockBytes;
    const end = start + file.blockLength(index);
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      progress.start(index);
      try {
        const bytes = await fetchRange(start, end, { signal, onBytes: (n) => progress.add(index, n) });
        if (bytes.byteLength !== end - start) {
          throw Object.assign(new Error(`got ${bytes.byteLength} bytes instead of ${end - start}`), { retryable: true });
        }
        progress.end(index);
        file.writeBlock(index, bytes);
        progress.report('downloading');
        return;
      } catch (error) {
        progress.end(index);
        if (signal.aborted || !this.isRetryable(error) || attempt >= this.retries) throw error;
        const limit = rateLimit(error);
        if (limit && limit.waitMs > MAX_RATE_LIMIT_WAIT_MS) throw error;
        // A 429 is answered with the wait the Hub asked for, not the usual backoff.
        const delay = limit ? Math.max(limit.waitMs, this.retryBaseDelayMs) : this.retryBaseDelayMs * 2 ** attempt;
        progress.report(
          'retrying',
          limit
            ? `${limit.asked ? 'The Hub asks to wait' : 'The Hub is rate-limiting downloads (429); waiting'} ${formatWait(delay)} (rate limit); retrying… (try ${attempt + 2} of ${this.retries + 1})`
            : `${describe(error)}; retrying in ${formatDelay(delay)} (try ${attempt + 2} of ${this.retries + 1})`,
        );
        await sleep(delay, signal);
      }
    }
  }

  /** Checks the whole file against the Hub's sha256, else its git blob id; a mismatch discards it. */
  private async verify(file: PartialFile, report: Report): Promise<void> {
    const spec = file.spec;
    if (spec.sha256) {
      report('verifying', spec.size);
      const actual = file.hex();
      if (actual !== spec.sha256.toLowerCase()) {
        file.discard();
        throw new ShardCacheError(
          `the download of ${spec.path} from ${spec.repo} is corrupt: its sha256 is ${actual}, the Hub says ${spec.sha256}. ` +
            'It was discarded; merge again to download it again (if this repeats, a proxy or the network is altering the download).',
          'checksum',
          spec,
          0,
        );
      }
      file.verified();
    } else if (spec.gitOid) {
      report('verifying', spec.size);
      const whole = file.readAll();
      try {
        await this.checkGitBlob(spec, whole, false);
      } catch (error) {
        file.discard();
        throw error;
      }
      file.verified();
    }
  }

  /** Every cached file, complete or partial. */
  async list(): Promise<CachedFileInfo[]> {
    const out: CachedFileInfo[] = [];
    for await (const [, repoDir] of entries(this.root)) {
      if (repoDir.kind !== 'directory') continue;
      for await (const [, commitDir] of entries(repoDir as FileSystemDirectoryHandle)) {
        if (commitDir.kind !== 'directory') continue;
        const stateDir = await childDir(commitDir as FileSystemDirectoryHandle, 'state', false);
        if (!stateDir) continue;
        for await (const [name, handle] of entries(stateDir)) {
          if (handle.kind !== 'file' || !name.endsWith('.json')) continue;
          let state: StoredState | null;
          try {
            state = parseState(await (await (handle as FileSystemFileHandle).getFile()).text());
          } catch {
            continue; // locked by a download in progress
          }
          if (!state) continue;
          out.push({
            repo: state.repo,
            commit: state.commit,
            path: state.path,
            size: state.size,
            bytesDone: state.complete ? state.size : doneBytes(state),
            complete: state.complete,
            verified: state.verified,
          });
        }
      }
    }
    return out.sort((a, b) => compareText(a.repo, b.repo) || compareText(a.commit, b.commit) || compareText(a.path, b.path));
  }

  /** Deletes a repo's cached files (one commit, or all of them). */
  async delete(repo: string, commit?: string): Promise<void> {
    try {
      if (commit === undefined) {
        await this.root.removeEntry(enc(repo), { recursive: true });
      } else {
        const repoDir = await childDir(this.root, enc(repo), false);
        await repoDir?.removeEntry(enc(commit), { recursive: true });
      }
    } catch (error) {
      if (isNamed(error, 'NotFoundError')) return;
      if (isNamed(error, 'NoModificationAllowedError', 'InvalidModificationError')) {
        throw new Error(`cannot delete the cached files of ${repo} while they are being downloaded: cancel the merge first`, { cause: error });
      }
      throw error;
    }
  }

  // -------------------------------------------------------------------------------------------

  /** Throws a `checksum` ShardCacheError (forgetting the cached copy unless told not to) when the bytes are not the git blob. */
  private async checkGitBlob(spec: ShardSpec, bytes: Uint8Array, forget = true): Promise<void> {
    const actual = await gitBlobId(bytes);
    if (actual === spec.gitOid!.toLowerCase()) return;
    if (forget) await this.forget(spec).catch(() => undefined);
    throw new ShardCacheError(
      `the download of ${spec.path} from ${spec.repo} is corrupt: its git blob id is ${actual}, the Hub says ${spec.gitOid}. ` +
        'It was discarded; merge again to download it again (if this repeats, a proxy, the network or the Hub mirror is altering the file).',
      'checksum',
      spec,
      0,
    );
  }

  private async forget(spec: ShardSpec): Promise<void> {
    const dir = await this.commitDir(spec, false);
    if (!dir) return;
    for (const [sub, name] of [
      ['files', enc(spec.path)],
      ['state', `${enc(spec.path)}.json`],
    ] as const) {
      const child = await childDir(dir, sub, false);
      await child?.removeEntry(name).catch((error: unknown) => {
        if (!isNamed(error, 'NotFoundError')) throw error;
      });
    }
  }

  private async commitDir(spec: ShardSpec, create: true): Promise<FileSystemDirectoryHandle>;
  private async commitDir(spec: ShardSpec, create: false): Promise<FileSystemDirectoryHandle | null>;
  private async commitDir(spec: ShardSpec, create: boolean): Promise<FileSystemDirectoryHandle | null> {
    const repoDir = await childDir(this.root, enc(spec.repo), create);
    return repoDir && childDir(repoDir, enc(spec.commit), create);
  }

  private async readState(spec: ShardSpec): Promise<StoredState | null> {
    const dir = await this.commitDir(spec, false);
    const stateDir = dir && (await childDir(dir, 'state', false));
    const handle = stateDir && (await childFile(stateDir, `${enc(spec.path)}.json`, false));
    if (!handle) return null;
    let text: string;
    try {
      text = await (await handle.getFile()).text();
    } catch (error) {
      // Locked by a download in progress elsewhere (another tab): treat as not cached.
      if (isNamed(error, 'NoModificationAllowedError', 'NotReadableError')) return null;
      throw error;
    }
    const state = parseState(text);
    if (!state || state.repo !== spec.repo || state.commit !== spec.commit || state.path !== spec.path) return null;
    return state;
  }

  private explain(error: unknown, spec: ShardSpec, bytesDone: number): ShardCacheError {
    if (error instanceof ShardCacheError) return error;
    const what = `${spec.path} of ${spec.repo}`;
    if (isNamed(error, 'AbortError') || (error instanceof Error && error.message === 'cancelled')) {
      return new ShardCacheError('cancelled', 'aborted', spec, bytesDone, { cause: error });
    }
    if (isNamed(error, 'QuotaExceededError')) {
      return new ShardCacheError(
        `not enough storage space to download ${what} (${formatBytes(spec.size)}; ${formatBytes(spec.size - bytesDone)} still to fetch): ` +
          'the browser refused to store more (QuotaExceededError). Free space by deleting cached models or old outputs ' +
          'in the storage view, or free disk space on this computer.',
        'quota',
        spec,
        bytesDone,
        { cause: error },
      );
    }
    if (isNamed(error, 'NoModificationAllowedError', 'InvalidStateError')) {
      return new ShardCacheError(
        `${what} is being downloaded by another tab or merge: wait for it to finish (or close the other tab) and try again`,
        'locked',
        spec,
        bytesDone,
        { cause: error },
      );
    }
    const kept = bytesDone > 0 ? ` The ${formatBytes(bytesDone)} already downloaded are kept: merging again resumes where it stopped.` : '';
    const limit = rateLimit(error);
    if (limit) {
      const wait = limit.waitMs > MAX_RATE_LIMIT_WAIT_MS ? `asks to wait ${formatWait(limit.waitMs)}` : `kept refusing after ${this.retries + 1} tries`;
      return new ShardCacheError(
        `downloading ${what} was stopped by the Hub’s rate limit (429): it ${wait}. The Hub allows a few thousand file ` +
          'requests per 5 minutes (more when signed in); wait a few minutes, then merge again.' + kept,
        'network',
        spec,
        bytesDone,
        { cause: error },
      );
    }
    if (this.isRetryable(error)) {
      return new ShardCacheError(
        `downloading ${what} failed after ${this.retries + 1} tries: ${describe(error)}. Check your connection and try again.${kept}`,
        'network',
        spec,
        bytesDone,
        { cause: error },
      );
    }
    return new ShardCacheError(`downloading ${what} failed: ${describe(error)}.${kept}`, 'other', spec, bytesDone, { cause: error });
  }
}

type Report = (state: ShardState, bytesDone: number, message?: string) => void;

/**
 * A file being downloaded into the cache: its open data and state files, its block map, and the
 * SHA-256 over the prefix of finished blocks (which advances as that prefix grows).
 */
class PartialFile {
  readonly blockBytes: number;
  readonly blockCount: number;
  private readonly done: Set<number>;
  private data: FileSystemSyncAccessHandle | null = null;
  private stateFile: FileSystemSyncAccessHandle | null = null;
  private hasher: Sha256 | null = null;
  /** Blocks [0, hashed) are in the hash. */
  private hashed = 0;
  /**
   * Where a block that finished out of order is read back to be hashed, reused: a fresh 32 MiB
   * buffer for each such block (most of them, four blocks being fetched at once) cost its pages.
   */
  private readBack: Uint8Array | null = null;

  constructor(
    readonly spec: ShardSpec,
    private readonly current: StoredState,
  ) {
    this.blockBytes = current.blockBytes;
    this.blockCount = Math.ceil(spec.size / this.blockBytes);
    this.done = new Set(current.done);
  }

  blockLength(i: number): number {
    return Math.min(this.blockBytes, this.spec.size - i * this.blockBytes);
  }

  bytesDone(): number {
    return [...this.done].reduce((sum, i) => sum + this.blockLength(i), 0);
  }

  missingBlocks(): number[] {
    return [...Array(this.blockCount).keys()].filter((i) => !this.done.has(i));
  }

  async open(filesDir: FileSystemDirectoryHandle, stateDir: FileSystemDirectoryHandle, signal: AbortSignal | undefined): Promise<void> {
    const name = enc(this.spec.path);
    // A worker that was just terminated (a reload) may still hold the lock for a moment.
    this.data = await openExclusive(await filesDir.getFileHandle(name, { create: true }), signal);
    this.stateFile = await openExclusive(await stateDir.getFileHandle(`${name}.json`, { create: true }), signal);
    // Reserve the whole file now: a disk or quota too small fails here, not after an hour.
    if (this.data.getSize() !== this.spec.size) this.data.truncate(this.spec.size);
  }

  /**
   * Continues the saved hash, or starts it over at block 0 when the saved one is unusable: one
   * that cannot be resumed (saved by the JavaScript SHA-256 of earlier versions, or by another
   * hash-wasm build), or that covers blocks not finished. Finished blocks are then read back
   * from the file and hashed again; none is downloaded again.
   */
  async resumeHash(): Promise<void> {
    const saved = this.current.hash;
    const resumed = saved ? await Sha256.resume(saved).catch(() => null) : null;
    const hashed = resumed ? resumed.bytes / this.blockBytes : 0;
    if (resumed && Number.isInteger(hashed) && hashed <= this.blockCount && [...Array(hashed).keys()].every((i) => this.done.has(i))) {
      this.hasher = resumed;
      this.hashed = hashed;
    } else {
      this.hasher = await Sha256.create();
      this.hashed = 0;
    }
  }

  /** Hashes the finished blocks that now continue the hashed prefix (`justWritten` saves reading one back). */
  advanceHash(justWritten?: { index: number; bytes: Uint8Array }): void {
    const hasher = this.opened(this.hasher);
    while (this.hashed < this.blockCount && this.done.has(this.hashed)) {
      let bytes: Uint8Array;
      if (justWritten && justWritten.index === this.hashed) bytes = justWritten.bytes;
      else {
        this.readBack ??= new Uint8Array(this.blockBytes);
        bytes = this.readBack.subarray(0, this.blockLength(this.hashed));
        const read = this.opened(this.data).read(bytes, { at: this.hashed * this.blockBytes });
        if (read !== bytes.byteLength) throw new Error(`short read of the cached ${this.spec.path} while hashing it`);
      }
      hasher.update(bytes);
      this.hashed++;
    }
    this.current.hash = this.hashed < this.blockCount ? hasher.state() : null;
  }

  /** Writes and flushes a fetched block, then records it (hash and block map) as finished. */
  writeBlock(index: number, bytes: Uint8Array): void {
    const data = this.opened(this.data);
    writeAll(data, bytes, index * this.blockBytes);
    data.flush();
    this.done.add(index);
    this.advanceHash({ index, bytes });
    this.save();
  }

  /** The finished hash (call once every block is hashed). */
  hex(): string {
    return this.opened(this.hasher).hex();
  }

  readAll(): Uint8Array {
    const whole = new Uint8Array(this.spec.size);
    if (this.opened(this.data).read(whole, { at: 0 }) !== this.spec.size) {
      throw new Error(`short read of the cached ${this.spec.path} while hashing it`);
    }
    return whole;
  }

  /** Forgets every block (a download that failed its check is fetched again from the start). */
  discard(): void {
    this.current.done = [];
    this.done.clear();
    this.current.hash = null;
    this.save();
  }

  verified(): void {
    this.current.verified = true;
  }

  markComplete(): void {
    this.current.complete = true;
    this.current.hash = null;
    this.save();
  }

  /** Saves the block map (and the hash state) over the state file. */
  save(): void {
    const stateFile = this.opened(this.stateFile);
    this.current.done = [...this.done].sort((a, b) => a - b);
    const bytes = new TextEncoder().encode(JSON.stringify(this.current));
    stateFile.truncate(0);
    writeAll(stateFile, bytes, 0);
    stateFile.flush();
  }

  close(): void {
    this.data?.close();
    this.stateFile?.close();
    this.readBack = null;
  }

  private opened<T>(value: T | null): T {
    if (value === null) throw new Error(`internal: the cached ${this.spec.path} is not open`);
    return value;
  }
}

/** Bytes of a file done: finished blocks plus the bodies of the blocks in flight so far. */
class BlockProgress {
  private readonly inFlight = new Map<number, number>();

  constructor(
    private readonly file: PartialFile,
    private readonly onReport: Report,
  ) {}

  start(index: number): void {
    this.inFlight.set(index, 0);
  }

  add(index: number, bytes: number): void {
    this.inFlight.set(index, (this.inFlight.get(index) ?? 0) + bytes);
    this.report('downloading');
  }

  end(index: number): void {
    this.inFlight.delete(index);
  }

  report(state: ShardState, message?: string): void {
    this.onReport(state, this.file.bytesDone() + [...this.inFlight.values()].reduce((a, b) => a + b, 0), message);
  }
}

function rateLimit(error: unknown): { waitMs: number; asked: boolean } | undefined {
  if (typeof error !== 'object' || error === null || (error as { status?: unknown }).status !== 429) return undefined;
  const asked = (error as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof asked === 'number' && Number.isFinite(asked) && asked >= 0
    ? { waitMs: asked, asked: true }
    : { waitMs: DEFAULT_RATE_LIMIT_WAIT_MS, asked: false };
}

function defaultRetryable(error: unknown): boolean {
  if (typeof error === 'object' && error !== null && 'retryable' in error) return (error as { retryable: unknown }).retryable === true;
  return error instanceof TypeError;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isNamed(error: unknown, ...names: string[]): boolean {
  return typeof error === 'object' && error !== null && names.includes((error as { name?: string }).name ?? '');
}

function doneBytes(state: StoredState): number {
  return state.done.reduce((sum, i) => sum + Math.max(0, Math.min(state.blockBytes, state.size - i * state.blockBytes)), 0);
}

function parseState(text: string): StoredState | null {
  try {
    const value = JSON.parse(text) as StoredState;
    if (value?.version !== STATE_VERSION || !Array.isArray(value.done) || typeof value.blockBytes !== 'number') return null;
    return value;
  } catch {
    return null;
  }
}

function writeAll(handle: FileSystemSyncAccessHandle, bytes: Uint8Array, at: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const written = handle.write(bytes.subarray(done), { at: at + done });
    if (written <= 0) throw new Error('the file system accepted no bytes');
    done += written;
  }
}

async function childDir(dir: FileSystemDirectoryHandle, name: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
  try {
    return await dir.getDirectoryHandle(name, { create });
  } catch (error) {
    if (!create && isNamed(error, 'NotFoundError', 'TypeMismatchError')) return null;
    throw error;
  }
}

async function childFile(dir: FileSystemDirectoryHandle, name: string, create: boolean): Promise<FileSystemFileHandle | null> {
  try {
    return await dir.getFileHandle(name, { create });
  } catch (error) {
    if (!create && isNamed(error, 'NotFoundError', 'TypeMismatchError')) return null;
    throw error;
  }
}

/** `dir.entries()`, typed (lib.dom lacks the async iterator of FileSystemDirectoryHandle). */
export function entries(dir: FileSystemDirectoryHandle): AsyncIterable<[string, FileSystemHandle]> {
  return (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries();
}

async function openExclusive(handle: FileSystemFileHandle, signal: AbortSignal | undefined): Promise<FileSystemSyncAccessHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await syncAccessHandle(handle);
    } catch (error) {
      if (!isNamed(error, 'NoModificationAllowedError') || attempt >= 10) throw error;
      await sleep(200, signal ?? new AbortController().signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function formatDelay(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
