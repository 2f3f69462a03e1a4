import { inThreadFileWriter, ShortFileError, type OpfsFileWriter, type WritableFile } from './opfs-file-writer';
import { entries } from './opfs-shard-cache';
import type { NonFiniteTensor } from './non-finite';
import type { ByteSink, OutputFolder } from './types';
import { outputNameProblem } from './output-name';
import { whileHeld } from './held-objects';
import { openSyncAccessHandle } from './opfs-handles';
import { writeFileThroughSink } from './write-file-through-sink';

export { outputNameProblem };

/**
 * Merge outputs in the origin private file system. A merge writes into a temporary folder
 * (`alloy-outputs/.partial-<random>/`) that `commit()` turns into `alloy-outputs/<name>/` (its
 * files moved in, then a manifest written last) and `abort()` deletes, so a cancelled or failed
 * merge never leaves something that looks like a finished model. Files are written front to back
 * through SyncAccessHandles (dedicated workers only; on a writer thread of their own where one is
 * given, see ./opfs-file-writer.ts) and read back as disk-backed Files, which is how the page
 * downloads a multi-GB shard without holding it in memory.
 */

export interface OutputManifest {
  readonly name: string;
  readonly files: readonly { readonly name: string; readonly size: number }[];
  readonly createdAt: string;
  readonly warnings: readonly string[];
  readonly elapsedMs: number;
  /** The Hub files the merge read, each checked against the Hub's hash (absent for older outputs). */
  readonly verified?: readonly { readonly model: string; readonly file: string; readonly hash: 'sha256' | 'git-blob' }[];
  /** Tensors whose inputs or output held NaN or Inf (absent in outputs written before it was counted). */
  readonly nonFinite?: readonly NonFiniteTensor[];
}

const OUTPUTS_DIR = 'alloy-outputs';
const PARTIAL_PREFIX = '.partial-';
export const MANIFEST_FILE = '.alloy-output.json';
/** In a resumable merge's temporary folder: how far the merge got (its JSON is the caller's). */
const CHECKPOINT_FILE = '.alloy-resume.json';
const RESUMABLE_PREFIX = `${PARTIAL_PREFIX}resume-`;

/** Whether `id` can name a resumable merge (it becomes part of a folder name). */
export function isResumeId(id: string): boolean {
  return /^[0-9a-z]{8,40}$/.test(id);
}

/** The temporary folder of the resumable merge `resumeId` (kept by `removeUnfinished` when asked). */
export function resumableFolderName(resumeId: string): string {
  return `${RESUMABLE_PREFIX}${resumeId}`;
}

export class OpfsOutputStore {
  private constructor(
    private readonly root: FileSystemDirectoryHandle,
    /** @internal how OpfsOutputFolder writes its files */
    readonly writer: OpfsFileWriter,
  ) {}

  static async open(storageRoot: FileSystemDirectoryHandle, writer: OpfsFileWriter = inThreadFileWriter()): Promise<OpfsOutputStore> {
    return new OpfsOutputStore(await storageRoot.getDirectoryHandle(OUTPUTS_DIR, { create: true }), writer);
  }

  /** Starts writing an output; fails at once when the name is taken or invalid. */
  async begin(name: string): Promise<OpfsOutputFolder> {
    const problem = outputNameProblem(name);
    if (problem) throw new Error(problem);
    await this.checkFree(name);
    const tempName = `${PARTIAL_PREFIX}${randomId()}`;
    const temp = await this.root.getDirectoryHandle(tempName, { create: true });
    return new OpfsOutputFolder(this, name, temp, tempName);
  }

  /**
   * Starts, or continues, the output of a merge that can be resumed after a reload. Its temporary
   * folder is named after `resumeId` (not random), survives the page, and holds the checkpoint
   * last saved with `saveCheckpoint`, returned here (null for a new merge). A merge that does not
   * use the checkpoint must start afresh: `restart()` empties the folder.
   */
  async beginResumable(name: string, resumeId: string): Promise<{ folder: OpfsOutputFolder; checkpoint: unknown }> {
    const problem = outputNameProblem(name);
    if (problem) throw new Error(problem);
    if (!isResumeId(resumeId)) throw new Error(`internal: invalid resume id ${resumeId.slice(0, 50)}`);
    await this.checkFree(name);
    const tempName = resumableFolderName(resumeId);
    const temp = await this.root.getDirectoryHandle(tempName, { create: true });
    const found = new Map<string, number>();
    let checkpoint: unknown = null;
    for await (const [file, handle] of entries(temp)) {
      if (handle.kind !== 'file') continue;
      if (file === CHECKPOINT_FILE) {
        try {
          checkpoint = JSON.parse(await (await (handle as FileSystemFileHandle).getFile()).text());
        } catch {
          checkpoint = null;
        }
      } else if (!file.startsWith('.')) {
        found.set(file, (await (handle as FileSystemFileHandle).getFile()).size);
      }
    }
    return { folder: new OpfsOutputFolder(this, name, temp, tempName, checkpoint === null ? new Map() : found), checkpoint };
  }

  /** Whether a resumable merge's temporary folder exists (what `beginResumable` would continue). */
  async hasResumable(resumeId: string): Promise<boolean> {
    if (!isResumeId(resumeId)) return false;
    try {
      await this.root.getDirectoryHandle(resumableFolderName(resumeId));
      return true;
    } catch {
      return false;
    }
  }

  /** Removes the partial output of the resumable merge `resumeId`, if there is one. */
  async discardResumable(resumeId: string): Promise<void> {
    if (!isResumeId(resumeId)) return;
    await this.root.removeEntry(resumableFolderName(resumeId), { recursive: true }).catch(() => undefined);
  }

  async exists(name: string): Promise<boolean> {
    return (await this.dir(name)) !== null;
  }

  /** Committed outputs, newest first. */
  async list(): Promise<OutputManifest[]> {
    const out: OutputManifest[] = [];
    for await (const [name, handle] of entries(this.root)) {
      if (handle.kind !== 'directory' || name.startsWith('.')) continue;
      const manifest = await this.readManifest(name);
      if (manifest) out.push(manifest);
    }
    return out.sort((a, b) => compareText(b.createdAt, a.createdAt) || compareText(a.name, b.name));
  }

  async readManifest(name: string): Promise<OutputManifest | null> {
    const dir = await this.dir(name);
    if (!dir) return null;
    try {
      const handle = await dir.getFileHandle(MANIFEST_FILE);
      return JSON.parse(await (await handle.getFile()).text()) as OutputManifest;
    } catch {
      return null;
    }
  }

  async writeManifest(manifest: OutputManifest): Promise<void> {
    const dir = await this.dir(manifest.name);
    if (!dir) throw new Error(`no output named ${manifest.name}`);
    await writeWholeFile(dir, MANIFEST_FILE, new TextEncoder().encode(JSON.stringify(manifest, null, 2)));
  }

  /** A disk-backed File of one output file (download it with an object URL, or upload it). */
  async file(name: string, file: string): Promise<File> {
    const dir = await this.dir(name);
    if (!dir || !(await this.readManifest(name))) throw new Error(`no output named ${name}`);
    if (file === MANIFEST_FILE || file.includes('/')) throw new Error(`no file ${file} in output ${name}`);
    try {
      return await (await dir.getFileHandle(file)).getFile();
    } catch (error) {
      if (isNamed(error, 'NotFoundError', 'TypeMismatchError')) throw new Error(`no file ${file} in output ${name}`);
      throw error;
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await this.root.removeEntry(name, { recursive: true });
    } catch (error) {
      if (!isNamed(error, 'NotFoundError')) throw error;
    }
  }

  /** Removes temporary folders left by merges that never finished (a closed tab). */
  async removeUnfinished(keep: ReadonlySet<string> = new Set()): Promise<void> {
    const stale: string[] = [];
    for await (const [name, handle] of entries(this.root)) {
      if (handle.kind !== 'directory' || keep.has(name)) continue;
      if (name.startsWith(PARTIAL_PREFIX) || !(await this.readManifest(name))) stale.push(name);
    }
    for (const name of stale) await this.root.removeEntry(name, { recursive: true }).catch(() => undefined);
  }

  /** @internal used by OpfsOutputFolder */
  async checkFree(name: string): Promise<void> {
    if (await this.dir(name)) {
      throw new Error(`an output named "${name}" already exists: delete it first, or choose another name`);
    }
  }

  /** @internal */
  get directory(): FileSystemDirectoryHandle {
    return this.root;
  }

  private async dir(name: string): Promise<FileSystemDirectoryHandle | null> {
    try {
      return await this.root.getDirectoryHandle(name);
    } catch (error) {
      if (isNamed(error, 'NotFoundError', 'TypeMismatchError', 'TypeError')) return null;
      throw error;
    }
  }
}

export class OpfsOutputFolder implements OutputFolder {
  private readonly sinks = new Set<OpfsFileSink>();
  private readonly written = new Map<string, number>();
  /** Files a resumed merge found from before the reload: it may write them again. */
  private readonly inherited: Set<string>;
  private state: 'open' | 'committed' | 'aborted' = 'open';
  /** The checkpoint file, open from the first checkpoint until the output is committed or aborted. */
  private checkpointFile: FileSystemSyncAccessHandle | null = null;

  constructor(
    private readonly store: OpfsOutputStore,
    readonly name: string,
    private readonly temp: FileSystemDirectoryHandle,
    readonly tempName: string,
    inherited: ReadonlyMap<string, number> = new Map(),
  ) {
    for (const [file, size] of inherited) this.written.set(file, size);
    this.inherited = new Set(inherited.keys());
  }

  /**
   * Keeps how far the merge got, for `OpfsOutputStore.beginResumable` after a reload. Not flushed
   * to the disk: a reload, a crashed tab or a closed browser keep what the file system was given,
   * and only a crash of the whole machine loses it, which would lose output bytes that no one
   * flushed either (nor are the output files, SyncFileWrites.close). The flush (an fsync) after every
   * tensor took ~0.6 s of a 2 s app merge of 3 × 375 MB (30 tensors; `npm run bench:browser`).
   * The file stays open until the output is committed or aborted: opening a SyncAccessHandle (and
   * its lock) for every checkpoint cost that merge about 0.15 s (docs/browser.md §7).
   */
  async saveCheckpoint(checkpoint: unknown): Promise<void> {
    this.assertOpen('save a checkpoint of');
    const bytes = new TextEncoder().encode(JSON.stringify(checkpoint));
    try {
      this.checkpointFile ??= await openSyncAccessHandle(this.temp, CHECKPOINT_FILE);
      writeAll(this.checkpointFile, bytes);
      this.checkpointFile.truncate(bytes.byteLength);
    } catch (error) {
      throw explainStorageError(error, `cannot save where output ${this.name} got to (its checkpoint)`);
    }
  }

  private closeCheckpointFile(): void {
    this.checkpointFile?.close();
    this.checkpointFile = null;
  }

  /** Forgets what a resumable merge found from before: the merge starts from the beginning. */
  async restart(): Promise<void> {
    this.assertOpen('restart');
    for (const file of this.inherited) {
      this.written.delete(file);
      await this.temp.removeEntry(file).catch(() => undefined);
    }
    this.inherited.clear();
    this.closeCheckpointFile();
    await this.temp.removeEntry(CHECKPOINT_FILE).catch(() => undefined);
  }

  async reopen(file: string, at: number): Promise<ByteSink> {
    this.assertOpen('write to');
    if (!this.inherited.delete(file)) throw new Error(`internal: output file ${file} was not written before`);
    const handle = await this.temp.getFileHandle(file);
    let opened: WritableFile;
    try {
      opened = await this.store.writer.open(handle, at);
    } catch (error) {
      if (error instanceof ShortFileError) {
        throw new Error(`cannot resume output ${this.name}: ${file} holds ${error.size} bytes, fewer than the ${at} the last checkpoint wrote`);
      }
      throw explainStorageError(error, `cannot write ${file} of output ${this.name}`);
    }
    return this.track(file, opened, at);
  }

  /** Files written so far, with their sizes. */
  get files(): { name: string; size: number }[] {
    return [...this.written].map(([name, size]) => ({ name, size })).sort((a, b) => compareText(a.name, b.name));
  }

  async create(file: string): Promise<ByteSink> {
    this.assertOpen('write to');
    if (file.includes('/') || file === MANIFEST_FILE || file.startsWith('.')) throw new Error(`invalid output file name ${file}`);
    if (this.written.has(file) && !this.inherited.delete(file)) throw new Error(`internal: output file ${file} written twice`);
    this.written.set(file, 0);
    const handle = await this.temp.getFileHandle(file, { create: true });
    let opened: WritableFile;
    try {
      // A file from before a reload is written anew.
      opened = await this.store.writer.open(handle, 0);
    } catch (error) {
      throw explainStorageError(error, `cannot write ${file} of output ${this.name}`);
    }
    return this.track(file, opened, 0);
  }

  private track(file: string, opened: WritableFile, position: number): ByteSink {
    const sink: OpfsFileSink = new OpfsFileSink(opened, file, position, (size) => {
      this.written.set(file, size);
      this.sinks.delete(sink);
    });
    this.sinks.add(sink);
    return sink;
  }

  async writeText(file: string, text: string): Promise<void> {
    await this.writeBytes(file, new TextEncoder().encode(text));
  }

  async writeBytes(file: string, bytes: Uint8Array): Promise<void> {
    await writeFileThroughSink(this, file, bytes);
  }

  async commit(): Promise<void> {
    this.assertOpen('commit');
    if (this.sinks.size > 0) throw new Error(`cannot commit output ${this.name}: ${this.sinks.size} file(s) are still being written`);
    await this.store.checkFree(this.name);
    this.closeCheckpointFile();
    const root = this.store.directory;
    const target = await root.getDirectoryHandle(this.name, { create: true });
    try {
      for (const { name } of this.files) {
        const handle = await this.temp.getFileHandle(name);
        await moveFile(handle, this.temp, target, name);
      }
      const manifest: OutputManifest = { name: this.name, files: this.files, createdAt: new Date().toISOString(), warnings: [], elapsedMs: 0 };
      await writeWholeFile(target, MANIFEST_FILE, new TextEncoder().encode(JSON.stringify(manifest, null, 2)));
    } catch (error) {
      await root.removeEntry(this.name, { recursive: true }).catch(() => undefined);
      throw explainStorageError(error, `cannot finish output ${this.name}`);
    }
    this.state = 'committed';
    await root.removeEntry(this.tempName, { recursive: true }).catch(() => undefined);
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.closeCheckpointFile();
    await Promise.allSettled([...this.sinks].map((sink) => sink.close()));
    await this.store.directory.removeEntry(this.tempName, { recursive: true }).catch(() => undefined);
  }

  private assertOpen(action: string): void {
    if (this.state !== 'open') throw new Error(`cannot ${action} output ${this.name}: it was already ${this.state}`);
  }
}

class OpfsFileSink implements ByteSink {
  private opened: WritableFile | null;

  constructor(
    opened: WritableFile,
    private readonly file: string,
    private position: number,
    private readonly onClose: (size: number) => void,
  ) {
    this.opened = opened;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.opened) throw new Error(`write to ${this.file} after close`);
    try {
      await this.opened.write(bytes, this.position);
      this.position += bytes.byteLength;
    } catch (error) {
      throw explainStorageError(error, `cannot write ${this.file}`);
    }
  }

  async close(): Promise<void> {
    const opened = this.opened;
    if (!opened) return;
    this.opened = null;
    try {
      await opened.close();
    } finally {
      this.onClose(this.position);
    }
  }
}

/** Moves a file between OPFS folders (`FileSystemHandle.move`), copying where move is missing. */
async function moveFile(handle: FileSystemFileHandle, from: FileSystemDirectoryHandle, to: FileSystemDirectoryHandle, name: string): Promise<void> {
  const movable = handle as FileSystemFileHandle & { move?: (dir: FileSystemDirectoryHandle, name?: string) => Promise<void> };
  if (typeof movable.move === 'function') {
    await movable.move(to, name);
    return;
  }
  const file = await handle.getFile();
  const target = await openSyncAccessHandle(to, name);
  try {
    const stream = file.stream();
    const reader = stream.getReader();
    await whileHeld([stream, reader], async () => {
      let at = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let written = 0;
        while (written < value.byteLength) {
          written += target.write(value.subarray(written), { at: at + written });
        }
        at += value.byteLength;
      }
    });
    target.flush();
  } finally {
    target.close();
  }
  await from.removeEntry(name);
}

/** Writes `bytes` at the start of the file. */
function writeAll(access: FileSystemSyncAccessHandle, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += access.write(bytes.subarray(done), { at: done });
}

/** Replaces the file's bytes, flushed to the disk. */
async function writeWholeFile(dir: FileSystemDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const access = await openSyncAccessHandle(dir, name);
  try {
    access.truncate(0);
    writeAll(access, bytes);
    access.flush();
  } finally {
    access.close();
  }
}

function explainStorageError(error: unknown, what: string): Error {
  if (isNamed(error, 'QuotaExceededError')) {
    return Object.assign(
      new Error(
        `${what}: not enough storage space (QuotaExceededError). Free space by deleting cached models or old outputs ` +
          'in the storage view, or free disk space on this computer.',
        { cause: error },
      ),
      { name: 'QuotaExceededError' },
    );
  }
  if (error instanceof Error) return error;
  return new Error(`${what}: ${String(error)}`);
}

function isNamed(error: unknown, ...names: string[]): boolean {
  return typeof error === 'object' && error !== null && names.includes((error as { name?: string }).name ?? '');
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
