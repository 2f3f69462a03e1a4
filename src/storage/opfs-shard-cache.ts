import { BlobByteSource } from './blob-source';
import { formatBytes } from './format-bytes';
// The hashing helper only (no Hub client): the cache checks what the Hub's listing vouches for.
import { gitBlobId } from '../hub/integrity';
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
  /** Bytes per range request and per block-map entry; a multiple of 64 (default 16 MiB). */
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

export const DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024;
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
  /** SHA-256 midstate over blocks 0..n-1 (n = hash.bytes / blockBytes). */
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
    return new BlobByteSource(`${spec.repo}/${spec.path}`, file);
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
    const report = (state: ShardState, bytesDone: number, message?: string): void =>
      options.onProgress?.({ spec, bytesDone, bytesTotal: spec.size, state, ...(message ? { message } : {}) });
    const signal = options.signal;

    let state = await this.readState(spec);
    if (state && (state.size !== spec.size || state.sha256 !== (spec.sha256 ?? null))) {
      await this.forget(spec);
      state = null;
    }
    if (state?.complete) {
      // Cached before git blob ids were checked, or by a run that stopped between download and check.
      if (!state.verified && !spec.sha256 && spec.gitOid) {
        report('verifying', spec.size);
        const file = await this.openFile(spec);
        await this.checkGitBlob(spec, await file.read(0, spec.size));
      }
      report('cached', spec.size);
      return;
    }
    signal?.throwIfAborted();
    const dir = await this.commitDir(spec, true);
    const filesDir = await dir.getDirectoryHandle('files', { create: true });
    const stateDir = await dir.getDirectoryHandle('state', { create: true });
    const fresh: StoredState = {
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
    const current: StoredState = state ?? fresh;
    const blockBytes = current.blockBytes;
    const blockCount = Math.ceil(spec.size / blockBytes);
    const blockLength = (i: number): number => Math.min(blockBytes, spec.size - i * blockBytes);
    const done = new Set(current.done);

    let data: FileSystemSyncAccessHandle | null = null;
    let stateFile: FileSystemSyncAccessHandle | null = null;
    const bytesDoneNow = (): number => [...done].reduce((sum, i) => sum + blockLength(i), 0);
    const fail = (error: unknown): ShardCacheError => this.explain(error, spec, bytesDoneNow());
    try {
      try {
        // A worker that was just terminated (a reload) may still hold the lock for a moment.
        data = await openExclusive(await filesDir.getFileHandle(enc(spec.path), { create: true }), signal);
        stateFile = await openExclusive(await stateDir.getFileHandle(`${enc(spec.path)}.json`, { create: true }), signal);
        // Reserve the whole file now: a disk or quota too small fails here, not after an hour.
        if (data.getSize() !== spec.size) data.truncate(spec.size);
      } catch (error) {
        throw fail(error);
      }
      const dataHandle = data;
      const stateHandle = stateFile;
      const save = (): void => {
        current.done = [...done].sort((a, b) => a - b);
        const bytes = new TextEncoder().encode(JSON.stringify(current));
        stateHandle.truncate(0);
        writeAll(stateHandle, bytes, 0);
        stateHandle.flush();
      };

      // The hash covers blocks [0, hashed) and advances as the prefix of finished blocks grows.
      let hasher = current.hash ? Sha256.resume(current.hash) : new Sha256();
      let hashed = current.hash ? current.hash.bytes / blockBytes : 0;
      if (!Number.isInteger(hashed) || hashed > blockCount || [...Array(hashed).keys()].some((i) => !done.has(i))) {
        hasher = new Sha256();
        hashed = 0;
      }
      const advanceHash = (justWritten?: { index: number; bytes: Uint8Array }): void => {
        while (hashed < blockCount && done.has(hashed)) {
          let bytes: Uint8Array;
          if (justWritten && justWritten.index === hashed) bytes = justWritten.bytes;
          else {
            bytes = new Uint8Array(blockLength(hashed));
            const read = dataHandle.read(bytes, { at: hashed * blockBytes });
            if (read !== bytes.byteLength) throw new Error(`short read of the cached ${spec.path} while hashing it`);
          }
          hasher.update(bytes);
          hashed++;
        }
        current.hash = hashed < blockCount ? hasher.state() : null;
      };

      const inFlight = new Map<number, number>();
      const progressBytes = (): number => bytesDoneNow() + [...inFlight.values()].reduce((a, b) => a + b, 0);
      report('downloading', progressBytes());

      const pending = [...Array(blockCount).keys()].filter((i) => !done.has(i));
      const internal = new AbortController();
      const linked = signal ? AbortSignal.any([signal, internal.signal]) : internal.signal;
      let firstError: unknown = null;

      const fetchBlock = async (index: number): Promise<void> => {
        const start = index * blockBytes;
        const end = start + blockLength(index);
        for (let attempt = 0; ; attempt++) {
          linked.throwIfAborted();
          inFlight.set(index, 0);
          try {
            const bytes = await fetchRange(start, end, {
              signal: linked,
              onBytes: (n) => {
                inFlight.set(index, (inFlight.get(index) ?? 0) + n);
                report('downloading', progressBytes());
              },
            });
            if (bytes.byteLength !== end - start) {
              throw Object.assign(new Error(`got ${bytes.byteLength} bytes instead of ${end - start}`), { retryable: true });
            }
            inFlight.delete(index);
            writeAll(dataHandle, bytes, start);
            dataHandle.flush();
            done.add(index);
            advanceHash({ index, bytes });
            save();
            report('downloading', progressBytes());
            return;
          } catch (error) {
            inFlight.delete(index);
            if (linked.aborted || !this.isRetryable(error) || attempt >= this.retries) throw error;
            const delay = this.retryBaseDelayMs * 2 ** attempt;
            report(
              'retrying',
              progressBytes(),
              `${describe(error)}; retrying in ${formatDelay(delay)} (try ${attempt + 2} of ${this.retries + 1})`,
            );
            await sleep(delay, linked);
          }
        }
      };

      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < pending.length && firstError === null) {
          const index = pending[next++];
          try {
            await fetchBlock(index);
          } catch (error) {
            if (firstError === null) firstError = error;
            internal.abort();
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, pending.length) }, lane));
      if (firstError !== null) {
        save();
        if (signal?.aborted) throw new ShardCacheError('cancelled', 'aborted', spec, bytesDoneNow(), { cause: signal.reason });
        throw fail(firstError);
      }

      // Everything is here: finish the hash and compare it with the Hub's.
      advanceHash();
      if (spec.sha256) {
        report('verifying', spec.size);
        const actual = hasher.hex();
        if (actual !== spec.sha256.toLowerCase()) {
          current.done = [];
          done.clear();
          current.hash = null;
          save();
          throw new ShardCacheError(
            `the download of ${spec.path} from ${spec.repo} is corrupt: its sha256 is ${actual}, the Hub says ${spec.sha256}. ` +
              'It was discarded; merge again to download it again (if this repeats, a proxy or the network is altering the download).',
            'checksum',
            spec,
            0,
          );
        }
        current.verified = true;
      } else if (spec.gitOid) {
        report('verifying', spec.size);
        const whole = new Uint8Array(spec.size);
        if (dataHandle.read(whole, { at: 0 }) !== spec.size) throw new Error(`short read of the cached ${spec.path} while hashing it`);
        try {
          await this.checkGitBlob(spec, whole, false);
        } catch (error) {
          current.done = [];
          done.clear();
          current.hash = null;
          save();
          throw error;
        }
        current.verified = true;
      }
      current.complete = true;
      current.hash = null;
      save();
      report('done', spec.size);
    } catch (error) {
      if (error instanceof ShardCacheError) throw error;
      throw fail(error);
    } finally {
      data?.close();
      stateFile?.close();
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
      return await handle.createSyncAccessHandle();
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
