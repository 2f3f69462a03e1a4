import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readFile, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ByteSink, ByteSource, ModelFolder, OutputFolder, SharedFile } from './types';
import { fileEndedError } from './errors';
import { untrustedText } from './untrusted-text';
import { writeFileThroughSink } from './write-file-through-sink';
import { DirectFileSink, writeInPieces } from './node-direct-sink';

/**
 * Node implementations of the storage interfaces (CLI and tests). Kept out of `index.ts` so the
 * browser bundle never sees `node:fs`; import it as `src/storage/node-fs`.
 */

function isErrno(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}

/**
 * A path that is not a regular file (a named pipe, a device, a socket, a folder): reading a pipe
 * would wait forever for a writer, so it is refused before it is opened for reading.
 */
export class NotARegularFileError extends Error {
  constructor(readonly path: string, info: Stats) {
    super(`${untrustedText(path)} is ${kindOf(info)}, not a regular file: Alloy reads model files only from regular files; put the real file there`);
    this.name = 'NotARegularFileError';
  }
}

function kindOf(info: Stats): string {
  if (info.isFIFO()) return 'a named pipe';
  if (info.isDirectory()) return 'a folder';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'not a plain file';
}

/** Refuses a path that is not a regular file (following symlinks, as a read would). */
async function assertRegularFile(filePath: string): Promise<void> {
  const info = await stat(filePath);
  if (!info.isFile()) throw new NotARegularFileError(filePath, info);
}

// Opening a pipe for reading blocks until a writer appears; O_NONBLOCK makes that open return
// (then fstat refuses it) if the path is swapped for a pipe after the stat. No-op for files.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** A local file read by positional reads on one open handle (safe to read concurrently). */
export class NodeByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private handle: FileHandle | null;
  /** One object for the source's life: a pool sends a file to each worker once (WireFileRange). */
  private readonly sharedFile: SharedFile;

  private constructor(name: string, size: number, handle: FileHandle) {
    this.name = name;
    this.size = size;
    this.handle = handle;
    this.sharedFile = { kind: 'fd', name, fd: handle.fd, size };
  }

  static async open(filePath: string): Promise<NodeByteSource> {
    await assertRegularFile(filePath);
    const handle = await open(filePath, READ_FLAGS);
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new NotARegularFileError(filePath, info);
      return new NodeByteSource(filePath, info.size, handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The open descriptor, which a pool's worker threads read too; none once closed. */
  get shared(): SharedFile | null {
    return this.handle === null ? null : this.sharedFile;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.handle === null) throw new Error(`${this.name}: read after close`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`${this.name}: invalid read of ${length} bytes at ${offset}`);
    }
    if (offset + length > this.size) {
      throw new Error(
        `${this.name}: cannot read bytes ${offset}..${offset + length}, the file is only ${this.size} bytes: ` +
          'it is truncated or was changed while in use; re-download it',
      );
    }
    // Not zero-filled first: the loop below fills every byte or throws, and the buffer is dropped.
    // A plain Uint8Array over the Buffer's own ArrayBuffer (a Buffer's slice() would be a view).
    const unfilled = Buffer.allocUnsafeSlow(length);
    const buffer = new Uint8Array(unfilled.buffer, unfilled.byteOffset, length);
    let done = 0;
    // read() may return fewer bytes than asked (large reads, some file systems): loop.
    while (done < length) {
      const { bytesRead } = await this.handle.read(buffer, done, length - done, offset + done);
      if (bytesRead === 0) throw fileEndedError(this.name, offset + done, length, offset);
      done += bytesRead;
    }
    return buffer;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
  }
}

/** Resolves `file` inside `root`, refusing absolute paths and `..` escapes (names come from indexes). */
function resolveInside(root: string, file: string): string {
  const resolved = path.resolve(root, file);
  const relative = path.relative(root, resolved);
  if (path.isAbsolute(file) || relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new Error(`"${file}" is not a file name inside ${root}`);
  }
  return resolved;
}

/** A model in a local folder. Hidden entries (`.git`, `.cache`) are not listed. */
export function nodeModelFolder(dir: string, id: string = dir): ModelFolder {
  const root = path.resolve(dir);
  return {
    id,
    async listFiles(): Promise<string[]> {
      const files: string[] = [];
      const walk = async (relative: string): Promise<void> => {
        const entries = await readdir(path.join(root, relative), { withFileTypes: true });
        for (const entry of entries) {
          if (entry.name.startsWith('.')) continue;
          const name = relative === '' ? entry.name : `${relative}/${entry.name}`;
          if (entry.isDirectory()) await walk(name);
          else if (entry.isFile()) files.push(name);
        }
      };
      await walk('');
      return files.sort();
    },
    async open(file: string): Promise<ByteSource | null> {
      try {
        return await NodeByteSource.open(resolveInside(root, file));
      } catch (error) {
        if (isErrno(error, 'ENOENT')) return null;
        throw error;
      }
    },
    async readText(file: string): Promise<string | null> {
      try {
        const filePath = resolveInside(root, file);
        await assertRegularFile(filePath);
        return await readFile(filePath, 'utf8');
      } catch (error) {
        if (isErrno(error, 'ENOENT')) return null;
        throw error;
      }
    },
  };
}

/** Sequential buffered writes to a new file through one handle (where direct writes are not to be had). */
export class NodeFileSink implements ByteSink {
  private handle: FileHandle | null;
  private readonly onClose: () => void;

  constructor(handle: FileHandle, onClose: () => void = () => {}) {
    this.handle = handle;
    this.onClose = onClose;
  }

  get closed(): boolean {
    return this.handle === null;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.handle === null) throw new Error('write to a closed file');
    // At the current position: the file is written strictly front to back.
    await writeInPieces(this.handle, bytes, null);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    if (handle === null) return;
    this.handle = null;
    this.onClose();
    await handle.close();
  }
}

/**
 * The output path cannot be used (a symlink, a file, a non-empty folder, a parent that cannot be
 * created): found before any merge work, and a problem with the command line rather than the merge.
 */
export class OutputTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputTargetError';
  }
}

const TEMP_MARK = '.alloy-tmp-';

/**
 * An output folder that appears only when complete: files are written into a temporary sibling
 * (`<dir>.alloy-tmp-<pid>-<random>`) that `commit()` renames to `dir` and `abort()` deletes, so a
 * failed or cancelled merge never leaves a folder that looks like a finished model. The pid in the
 * name lets a later run remove what a killed run left behind, and only that.
 */
export class NodeOutputFolder implements OutputFolder {
  readonly dir: string;
  readonly tempDir: string;
  /** Temporary folders of dead earlier runs that `open` removed. */
  readonly removedStale: readonly string[];
  private readonly openSinks = new Set<ByteSink>();
  private state: 'open' | 'committed' | 'aborted' = 'open';

  private constructor(dir: string, tempDir: string, removedStale: readonly string[]) {
    this.dir = dir;
    this.tempDir = tempDir;
    this.removedStale = removedStale;
  }

  /**
   * Checks up front that `dir` is free (missing, or an empty folder) so that a merge does not
   * run for an hour only to fail at the end, removes temporary folders of dead runs, then creates
   * the temporary folder.
   */
  static async open(dir: string): Promise<NodeOutputFolder> {
    const target = path.resolve(dir);
    await checkOutputTarget(target);
    await makeParents(path.dirname(target));
    const removedStale = await removeStaleTempFolders(target);
    const tempDir = `${target}${TEMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      await mkdir(tempDir);
    } catch (error) {
      throw new OutputTargetError(`cannot create ${tempDir}: ${describeErrno(error)}: choose an output path on a writable disk`);
    }
    return new NodeOutputFolder(target, tempDir, removedStale);
  }

  async create(file: string): Promise<ByteSink> {
    const target = this.pathOf(file);
    await mkdir(path.dirname(target), { recursive: true });
    // 'wx': each output file is created once; writing one twice is a bug upstream.
    const handle = await open(target, 'wx');
    const onClose = (): void => void this.openSinks.delete(sink);
    const sink: ByteSink = DirectFileSink.create(target, handle, onClose) ?? new NodeFileSink(handle, onClose);
    this.openSinks.add(sink);
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
    if (this.openSinks.size > 0) {
      throw new Error(
        `cannot commit ${this.dir}: ${this.openSinks.size} output file(s) are still being written`,
      );
    }
    // Check again: something may have appeared in `dir` while the merge ran.
    await checkOutputTarget(this.dir);
    try {
      await rmdir(this.dir);
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
    }
    await rename(this.tempDir, this.dir);
    this.state = 'committed';
  }

  /** Deletes the temporary folder and everything in it. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await Promise.allSettled([...this.openSinks].map((sink) => sink.close()));
    await rm(this.tempDir, { recursive: true, force: true });
  }

  private pathOf(file: string): string {
    this.assertOpen('write to');
    return resolveInside(this.tempDir, file);
  }

  private assertOpen(action: string): void {
    if (this.state !== 'open') throw new Error(`cannot ${action} ${this.dir}: the output was already ${this.state}`);
  }
}

/**
 * Refuses an output path that a merge could not end in: a symlink (the rename at the end would
 * replace the link, or fail on it), anything but a folder, a non-empty folder. Missing is fine.
 */
export async function checkOutputTarget(dir: string): Promise<void> {
  const target = path.resolve(dir);
  let info: Stats;
  try {
    info = await lstat(target);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return;
    if (isErrno(error, 'ENOTDIR')) {
      throw new OutputTargetError(`the output path ${untrustedText(target)} is inside something that is not a folder: choose another output path`);
    }
    throw new OutputTargetError(`cannot use the output path ${untrustedText(target)}: ${describeErrno(error)}`);
  }
  if (info.isSymbolicLink()) {
    throw new OutputTargetError(
      `the output path ${untrustedText(target)} is a symbolic link: give the real folder's path, or a path that does not exist yet`,
    );
  }
  if (!info.isDirectory()) {
    throw new OutputTargetError(`the output path ${untrustedText(target)} exists and is not a folder: choose another output path`);
  }
  const entries = await readdir(target);
  if (entries.length > 0) {
    throw new OutputTargetError(
      `the output folder ${untrustedText(target)} already exists and is not empty (${entries.length} entries): ` +
        'choose another output folder, or delete this one first',
    );
  }
}

/**
 * Creates the missing folders of `dir` one at a time, so that a failure names the folder that
 * could not be made and why (a recursive mkdir on a read-only disk can report a misleading ENOENT).
 */
async function makeParents(dir: string): Promise<void> {
  const missing: string[] = [];
  let current = dir;
  while (true) {
    try {
      const info = await stat(current);
      if (!info.isDirectory()) {
        throw new OutputTargetError(`cannot create the output folder: ${untrustedText(current)} is not a folder: choose another output path`);
      }
      break;
    } catch (error) {
      if (error instanceof OutputTargetError) throw error;
      if (!isErrno(error, 'ENOENT')) throw new OutputTargetError(`cannot use ${untrustedText(current)}: ${describeErrno(error)}`);
      missing.push(current);
      const parent = path.dirname(current);
      if (parent === current) break;
      current = parent;
    }
  }
  for (const folder of missing.reverse()) {
    try {
      await mkdir(folder);
    } catch (error) {
      if (isErrno(error, 'EEXIST')) continue;
      throw new OutputTargetError(`cannot create the folder ${untrustedText(folder)}: ${describeErrno(error)}: choose an output path on a writable disk`);
    }
  }
}

/** Removes `<target>.alloy-tmp-<pid>-*` folders whose process is gone; returns their paths. */
async function removeStaleTempFolders(target: string): Promise<string[]> {
  const parent = path.dirname(target);
  const prefix = `${path.basename(target)}${TEMP_MARK}`;
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const match = /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || processIsAlive(pid)) continue;
    const folder = path.join(parent, name);
    const info = await lstat(folder).catch(() => null);
    if (!info?.isDirectory()) continue;
    await rm(folder, { recursive: true, force: true });
    removed.push(folder);
  }
  return removed;
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return !isErrno(error, 'ESRCH');
  }
}

/** "read-only file system (EROFS)" and the like, from a Node error. */
function describeErrno(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    EROFS: 'read-only file system',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on the disk',
    ENOTDIR: 'a part of the path is not a folder',
    EEXIST: 'it already exists',
    ELOOP: 'too many symbolic links',
    ENAMETOOLONG: 'the name is too long',
  };
  if (code && reasons[code]) return `${reasons[code]} (${code})`;
  return error instanceof Error ? untrustedText(error.message) : String(error);
}
