import { writableFile } from './opfs-handles';
import { entries } from './opfs-shard-cache';
import type { ByteSink, OutputFolder } from './types';
import { writeFileThroughSink } from './write-file-through-sink';

/**
 * Merge output written straight into a folder the user picked (File System Access API,
 * `showDirectoryPicker`): the shards stream to disk as they are written, with no copy in the
 * browser's private storage and no second copy when saving. The output lands in
 * `<picked>/<name>/`.
 *
 * Commit and abort: the files are written into a hidden temporary folder
 * `<picked>/.alloy-partial-<name>-<random>/` and moved into `<picked>/<name>/` on commit with
 * `FileSystemHandle.move` (a rename on the same disk, no copy), then the temporary folder is
 * removed. Where `move` is missing (browsers without it), the files are written under their final
 * names in `<picked>/<name>/` directly and `abort()` removes that folder: a cancelled or failed merge
 * leaves nothing either way, but without `move` a crash mid-merge (a closed tab) can leave a
 * partial `<name>/` behind (its `model.safetensors.index.json` and config are written last, so it
 * does not look finished). Writes go through `createWritable()` (usable in workers and pages alike;
 * SyncAccessHandles exist only in the origin private file system).
 */

const PARTIAL_PREFIX = '.alloy-partial-';
/** In a resumable merge's temporary folder: how far the merge got (its JSON is the caller's). */
const CHECKPOINT_FILE = '.alloy-resume.json';

type MovableFileHandle = FileSystemFileHandle & { move?: (dir: FileSystemDirectoryHandle, name?: string) => Promise<void> };

/** Whether `dir` can take a new output called `name` (nothing of that name there yet). */
export async function directoryOutputProblem(dir: FileSystemDirectoryHandle, name: string): Promise<string | null> {
  for await (const [entry] of entries(dir)) {
    if (entry === name) return `the folder "${dir.name}" already holds "${name}": choose another output name or another folder`;
  }
  return null;
}

export class DirectoryOutputFolder implements OutputFolder {
  private readonly sinks = new Set<WritableSink>();
  private readonly written = new Map<string, number>();
  /** Files a resumed merge found from before the reload: it may write them again. */
  private readonly inherited = new Set<string>();
  private state: 'open' | 'committed' | 'aborted' = 'open';

  private constructor(
    private readonly picked: FileSystemDirectoryHandle,
    readonly name: string,
    /** Where files are written now: the temporary folder, or the final one without `move`. */
    private readonly target: FileSystemDirectoryHandle,
    private readonly targetName: string,
    /** True when files are moved into place on commit. */
    readonly movesOnCommit: boolean,
  ) {}

  /**
   * Starts, or continues, an output that can be resumed after a reload, at file granularity
   * (a file written with `createWritable` exists only once closed): its temporary folder is named
   * after `resumeId` and holds the checkpoint last saved with `saveCheckpoint`, returned here (null
   * for a new merge). `resumable` is false where files cannot be moved into place (no temporary
   * folder): such an output starts afresh. A merge that does not use the checkpoint calls `restart()`.
   */
  static async beginResumable(
    picked: FileSystemDirectoryHandle,
    name: string,
    resumeId: string,
    options: { canMove?: boolean } = {},
  ): Promise<{ folder: DirectoryOutputFolder; checkpoint: unknown; resumable: boolean }> {
    if (!/^[0-9a-z]{8,40}$/.test(resumeId)) throw new Error(`internal: invalid resume id ${resumeId.slice(0, 50)}`);
    const problem = await directoryOutputProblem(picked, name);
    if (problem) throw new Error(problem);
    const tempName = resumableTempName(name, resumeId);
    const stale: string[] = [];
    for await (const [entry] of entries(picked)) if (entry.startsWith(`${PARTIAL_PREFIX}${name}-`) && entry !== tempName) stale.push(entry);
    for (const entry of stale) await picked.removeEntry(entry, { recursive: true }).catch(() => undefined);
    if (!(options.canMove ?? supportsMove())) {
      await picked.removeEntry(tempName, { recursive: true }).catch(() => undefined);
      return { folder: await DirectoryOutputFolder.begin(picked, name, options), checkpoint: null, resumable: false };
    }
    const temp = await picked.getDirectoryHandle(tempName, { create: true });
    if (!(await moveWorks(temp))) {
      await picked.removeEntry(tempName, { recursive: true }).catch(() => undefined);
      return { folder: await DirectoryOutputFolder.begin(picked, name, { canMove: false }), checkpoint: null, resumable: false };
    }
    const folder = new DirectoryOutputFolder(picked, name, temp, tempName, true);
    let checkpoint: unknown = null;
    for await (const [file, handle] of entries(temp)) {
      if (handle.kind !== 'file') continue;
      const blob = await (handle as FileSystemFileHandle).getFile();
      if (file === CHECKPOINT_FILE) {
        try {
          checkpoint = JSON.parse(await blob.text());
        } catch {
          checkpoint = null;
        }
      } else if (!file.startsWith('.')) {
        folder.written.set(file, blob.size);
        folder.inherited.add(file);
      }
    }
    return { folder, checkpoint, resumable: true };
  }

  /** Removes the temporary folder of the resumable merge `resumeId` of output `name`, if there is one. */
  static async discardResumable(picked: FileSystemDirectoryHandle, name: string, resumeId: string): Promise<void> {
    await picked.removeEntry(resumableTempName(name, resumeId), { recursive: true }).catch(() => undefined);
  }

  /** Keeps how far the merge got, for `beginResumable` after a reload. */
  async saveCheckpoint(checkpoint: unknown): Promise<void> {
    this.assertOpen('save a checkpoint of');
    const writable = await writableFile(await this.target.getFileHandle(CHECKPOINT_FILE, { create: true }), { keepExistingData: false });
    await writable.write(new TextEncoder().encode(JSON.stringify(checkpoint)));
    await writable.close();
  }

  /** Forgets what a resumable merge found from before: the merge starts from the beginning. */
  async restart(): Promise<void> {
    this.assertOpen('restart');
    for (const file of this.inherited) {
      this.written.delete(file);
      await this.target.removeEntry(file).catch(() => undefined);
    }
    this.inherited.clear();
    await this.target.removeEntry(CHECKPOINT_FILE).catch(() => undefined);
  }

  /**
   * Starts an output `name` inside `picked`. Fails at once when `picked` already holds that name.
   * `canMove` is for tests (default: whether this browser's file handles have `move`).
   */
  static async begin(picked: FileSystemDirectoryHandle, name: string, options: { canMove?: boolean } = {}): Promise<DirectoryOutputFolder> {
    const problem = await directoryOutputProblem(picked, name);
    if (problem) throw new Error(problem);
    // Temporary folders of earlier merges of this name that never finished (a closed tab).
    const stale: string[] = [];
    for await (const [entry] of entries(picked)) if (entry.startsWith(`${PARTIAL_PREFIX}${name}-`)) stale.push(entry);
    for (const entry of stale) await picked.removeEntry(entry, { recursive: true }).catch(() => undefined);
    if (options.canMove ?? supportsMove()) {
      const tempName = `${PARTIAL_PREFIX}${name}-${randomId()}`;
      const temp = await picked.getDirectoryHandle(tempName, { create: true });
      // `move` may exist yet be refused outside the origin private file system: try it on an
      // empty file first rather than find out after the merge (copying would need twice the disk).
      if (await moveWorks(temp)) return new DirectoryOutputFolder(picked, name, temp, tempName, true);
      await picked.removeEntry(tempName, { recursive: true }).catch(() => undefined);
    }
    const final = await picked.getDirectoryHandle(name, { create: true });
    return new DirectoryOutputFolder(picked, name, final, name, false);
  }

  /** `<picked folder>/<name>`, for messages. */
  get location(): string {
    return `${this.picked.name || 'the chosen folder'}/${this.name}`;
  }

  get files(): { name: string; size: number }[] {
    return [...this.written].map(([name, size]) => ({ name, size })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async create(file: string): Promise<ByteSink> {
    this.assertOpen('write to');
    if (file.includes('/') || file.includes('\\') || file.startsWith('.')) throw new Error(`invalid output file name ${file}`);
    if (this.written.has(file) && !this.inherited.delete(file)) throw new Error(`internal: output file ${file} written twice`);
    this.written.set(file, 0);
    let writable: FileSystemWritableFileStream;
    try {
      const handle = await this.target.getFileHandle(file, { create: true });
      writable = await writableFile(handle, { keepExistingData: false });
    } catch (error) {
      throw explain(error, `cannot write ${file} into ${this.location}`);
    }
    const sink: WritableSink = new WritableSink(writable, `${this.location}/${file}`, (size) => {
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
    if (this.movesOnCommit) {
      const problem = await directoryOutputProblem(this.picked, this.name);
      if (problem) throw new Error(problem);
      const final = await this.picked.getDirectoryHandle(this.name, { create: true });
      try {
        for (const { name } of this.files) {
          const handle = (await this.target.getFileHandle(name)) as MovableFileHandle;
          await handle.move!(final, name);
        }
      } catch (error) {
        // Leave nothing that looks like an output: the moved files go with the final folder.
        await this.picked.removeEntry(this.name, { recursive: true }).catch(() => undefined);
        await this.picked.removeEntry(this.targetName, { recursive: true }).catch(() => undefined);
        this.state = 'aborted';
        throw explain(error, `cannot finish the output in ${this.location}`);
      }
      await this.picked.removeEntry(this.targetName, { recursive: true }).catch(() => undefined);
    }
    this.state = 'committed';
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await Promise.allSettled([...this.sinks].map((sink) => sink.abort()));
    await this.picked.removeEntry(this.targetName, { recursive: true }).catch(() => undefined);
  }

  private assertOpen(action: string): void {
    if (this.state !== 'open') throw new Error(`cannot ${action} output ${this.name}: it was already ${this.state}`);
  }
}

class WritableSink implements ByteSink {
  private position = 0;
  private stream: FileSystemWritableFileStream | null;

  constructor(
    stream: FileSystemWritableFileStream,
    private readonly what: string,
    private readonly onClose: (size: number) => void,
  ) {
    this.stream = stream;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.stream) throw new Error(`write to ${this.what} after close`);
    try {
      // The caller reuses `bytes` once this resolves; the stream may hold on to what it is given.
      await this.stream.write(bytes.slice());
      this.position += bytes.byteLength;
    } catch (error) {
      throw explain(error, `cannot write ${this.what}`);
    }
  }

  async close(): Promise<void> {
    const stream = this.stream;
    if (!stream) return;
    this.stream = null;
    try {
      await stream.close();
    } catch (error) {
      throw explain(error, `cannot finish writing ${this.what}`);
    } finally {
      this.onClose(this.position);
    }
  }

  async abort(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    await stream?.abort().catch(() => undefined);
  }
}

function resumableTempName(name: string, resumeId: string): string {
  return `${PARTIAL_PREFIX}${name}-r${resumeId}`;
}

async function moveWorks(dir: FileSystemDirectoryHandle): Promise<boolean> {
  try {
    const probe = (await dir.getFileHandle('.probe', { create: true })) as MovableFileHandle;
    await probe.move!(dir, '.probe-moved');
    await dir.removeEntry('.probe-moved');
    return true;
  } catch {
    return false;
  }
}

function supportsMove(): boolean {
  const proto = (globalThis as { FileSystemFileHandle?: { prototype: object } }).FileSystemFileHandle?.prototype;
  return !!proto && typeof (proto as { move?: unknown }).move === 'function';
}

function explain(error: unknown, what: string): Error {
  const name = (error as { name?: string } | null)?.name;
  if (name === 'QuotaExceededError') {
    return Object.assign(new Error(`${what}: the disk is full (QuotaExceededError). Free disk space, or choose a folder on another disk.`, { cause: error }), {
      name: 'QuotaExceededError',
    });
  }
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return new Error(`${what}: the browser no longer allows writing to that folder (${name}). Choose the folder again.`, { cause: error });
  }
  if (error instanceof Error) return new Error(`${what}: ${error.message}`, { cause: error });
  return new Error(`${what}: ${String(error)}`);
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
