import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readFile, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ByteSink, ByteSource, ModelFolder, OutputFolder } from './types';
import { writeFileThroughSink } from './write-file-through-sink';

/**
 * Node implementations of the storage interfaces (CLI and tests). Kept out of `index.ts` so the
 * browser bundle never sees `node:fs`; import it as `src/storage/node-fs`.
 */

function isErrno(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}

/** A local file read by positional reads on one open handle (safe to read concurrently). */
export class NodeByteSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private handle: FileHandle | null;

  private constructor(name: string, size: number, handle: FileHandle) {
    this.name = name;
    this.size = size;
    this.handle = handle;
  }

  static async open(filePath: string): Promise<NodeByteSource> {
    const handle = await open(filePath, 'r');
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new Error(`${filePath} is not a regular file`);
      return new NodeByteSource(filePath, info.size, handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
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
    const buffer = new Uint8Array(length);
    let done = 0;
    // read() may return fewer bytes than asked (large reads, some file systems): loop.
    while (done < length) {
      const { bytesRead } = await this.handle.read(buffer, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new Error(
          `${this.name}: the file ended at byte ${offset + done} while reading ${length} bytes at ${offset}: ` +
            'it was truncated while in use; re-download it',
        );
      }
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
        return await readFile(resolveInside(root, file), 'utf8');
      } catch (error) {
        if (isErrno(error, 'ENOENT')) return null;
        throw error;
      }
    },
  };
}

/** Sequential writes to a new file through one handle. */
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
    let done = 0;
    while (done < bytes.byteLength) {
      // Position null = the current position: the file is written strictly front to back.
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, null);
      done += bytesWritten;
    }
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
 * An output folder that appears only when complete: files are written into a temporary sibling
 * (`<dir>.alloy-tmp-<random>`) that `commit()` renames to `dir` and `abort()` deletes, so a
 * failed or cancelled merge never leaves a folder that looks like a finished model.
 */
export class NodeOutputFolder implements OutputFolder {
  readonly dir: string;
  readonly tempDir: string;
  private readonly openSinks = new Set<NodeFileSink>();
  private state: 'open' | 'committed' | 'aborted' = 'open';

  private constructor(dir: string, tempDir: string) {
    this.dir = dir;
    this.tempDir = tempDir;
  }

  /**
   * Checks up front that `dir` is free (missing, or an empty folder) so that a merge does not
   * run for an hour only to fail at the end, then creates the temporary folder.
   */
  static async open(dir: string): Promise<NodeOutputFolder> {
    const target = path.resolve(dir);
    await checkTargetFree(target);
    await mkdir(path.dirname(target), { recursive: true });
    const tempDir = `${target}.alloy-tmp-${randomBytes(6).toString('hex')}`;
    await mkdir(tempDir);
    return new NodeOutputFolder(target, tempDir);
  }

  async create(file: string): Promise<ByteSink> {
    const target = this.pathOf(file);
    await mkdir(path.dirname(target), { recursive: true });
    // 'wx': each output file is created once; writing one twice is a bug upstream.
    const handle = await open(target, 'wx');
    const sink: NodeFileSink = new NodeFileSink(handle, () => this.openSinks.delete(sink));
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
    await checkTargetFree(this.dir);
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

async function checkTargetFree(target: string): Promise<void> {
  let info;
  try {
    info = await stat(target);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return;
    throw error;
  }
  if (!info.isDirectory()) {
    throw new Error(`the output path ${target} exists and is not a folder: choose another output path`);
  }
  const entries = await readdir(target);
  if (entries.length > 0) {
    throw new Error(
      `the output folder ${target} already exists and is not empty (${entries.length} entries): ` +
        'choose another output folder, or delete this one first',
    );
  }
}
