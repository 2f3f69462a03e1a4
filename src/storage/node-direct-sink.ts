import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { ByteSink } from './types';
import { WRITE_PIECE_BYTES } from './write-pieces';

/**
 * A new file written front to back with direct I/O (Linux `O_DIRECT`): each write goes from a
 * staging buffer to the disk without a copy into the page cache, which on the test VMs cost the
 * merge's own cores seconds of kernel time per GB (docs/pipeline.md §2); nor does the output push
 * out of the page cache the inputs a multi-pass merge reads again.
 *
 * Direct writes need their memory, file offset and length aligned to the disk's block size, so
 * the bytes are gathered into two page-aligned staging buffers (a WebAssembly memory starts on a
 * page) and written in whole pieces; the last one is written up to the next block boundary and
 * the file truncated to its true size. A file shorter than one piece is written buffered as it is
 * (config, tokenizer), and so is everything where the file system has no direct I/O or refuses a
 * write as unaligned (EINVAL): through the handle that created the file.
 */

/** Alignment of direct writes: the largest logical block size of common disks, and a page. */
const DIRECT_ALIGN = 4096;
/** Bytes per direct write: each waits for the disk, so fewer and larger than buffered ones. */
export const DIRECT_PIECE_BYTES = 4 * 1024 * 1024;

/** Opens an existing file for direct writes. */
export type OpenDirect = (path: string) => Promise<FileHandle>;

const openDirectFlag: OpenDirect = (path) => open(path, constants.O_WRONLY | (constants.O_DIRECT ?? 0));

/** Staging buffer pairs of closed files, for the next ones (one file is written at a time). */
const spareStaging: Uint8Array[][] = [];
const MOST_SPARE = 2;

/** Two page-aligned buffers of DIRECT_PIECE_BYTES, or null where no such memory can be had. */
function takeStaging(): Uint8Array[] | null {
  const spare = spareStaging.pop();
  if (spare) return spare;
  try {
    const memory = new WebAssembly.Memory({ initial: (2 * DIRECT_PIECE_BYTES) / 65536 });
    return [0, 1].map((i) => new Uint8Array(memory.buffer, i * DIRECT_PIECE_BYTES, DIRECT_PIECE_BYTES));
  } catch {
    return null;
  }
}

export class DirectFileSink implements ByteSink {
  readonly gathersWrites = true;
  /** The direct handle: undefined until the first piece is written, null when writing buffered. */
  private direct: FileHandle | null | undefined = undefined;
  private staging: Uint8Array[] | null;
  /** Index of the staging buffer being filled, and how many bytes it holds. */
  private filling = 0;
  private used = 0;
  /** File offset of the filling buffer's first byte. */
  private position = 0;
  /** The write of the other staging buffer, if any; its failure is thrown by the next call. */
  private pending: Promise<void> | null = null;
  /** The last write() call, settled either way. */
  private writing: Promise<void> = Promise.resolve();
  private isClosed = false;

  /**
   * A sink for the new file at `path`, which `created` (kept for buffered writes) has just
   * created; null where direct I/O is not to be had (not Linux, no staging memory).
   */
  static create(path: string, created: FileHandle, onClose: () => void, openDirect: OpenDirect = openDirectFlag): DirectFileSink | null {
    if (constants.O_DIRECT === undefined) return null;
    const staging = takeStaging();
    return staging && new DirectFileSink(path, created, onClose, openDirect, staging);
  }

  private constructor(
    private readonly path: string,
    private readonly buffered: FileHandle,
    private readonly onClose: () => void,
    private readonly openDirect: OpenDirect,
    staging: Uint8Array[],
  ) {
    this.staging = staging;
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error('write to a closed file'));
    const writing = this.stage(bytes);
    this.writing = writing.catch(() => undefined);
    return writing;
  }

  private async stage(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.byteLength) {
      const take = Math.min(DIRECT_PIECE_BYTES - this.used, bytes.byteLength - offset);
      this.staging![this.filling].set(bytes.subarray(offset, offset + take), this.used);
      this.used += take;
      offset += take;
      if (this.used === DIRECT_PIECE_BYTES) await this.sendFilling(DIRECT_PIECE_BYTES);
    }
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.onClose();
    try {
      // A write() still staging (an abort does not wait for it) ends first: the staging stays ours.
      await this.writing;
      await this.settle();
      const { used } = this;
      const size = this.position + used;
      // Under one piece in all: buffered as it is.
      if (this.direct === undefined) this.direct = null;
      const length = this.direct === null ? used : Math.ceil(used / DIRECT_ALIGN) * DIRECT_ALIGN;
      if (length > 0) {
        await this.sendFilling(length);
        await this.settle();
      }
      if (length > used) await this.buffered.truncate(size);
    } finally {
      if (this.staging && spareStaging.length < MOST_SPARE) spareStaging.push(this.staging);
      this.staging = null;
      await Promise.allSettled([this.direct?.close(), this.buffered.close()]);
    }
  }

  /** Starts writing the filling buffer's first `length` bytes and goes on filling the other one. */
  private async sendFilling(length: number): Promise<void> {
    await this.settle();
    const writing = this.writeAt(this.staging![this.filling].subarray(0, length), this.position);
    writing.catch(() => undefined);
    this.pending = writing;
    this.position += this.used;
    this.filling = 1 - this.filling;
    this.used = 0;
  }

  private async settle(): Promise<void> {
    const pending = this.pending;
    this.pending = null;
    await pending;
  }

  private async writeAt(bytes: Uint8Array, at: number): Promise<void> {
    if (this.direct === undefined) this.direct = await this.openDirect(this.path).catch(() => null);
    let done = 0;
    while (this.direct && done < bytes.byteLength) {
      try {
        const { bytesWritten } = await this.direct.write(bytes, done, bytes.byteLength - done, at + done);
        done += bytesWritten;
        // A short direct write leaves the rest unaligned: buffered from here on.
        if (done < bytes.byteLength) await this.stopDirect();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        await this.stopDirect();
      }
    }
    if (done < bytes.byteLength) await writeInPieces(this.buffered, bytes.subarray(done), at + done);
  }

  private async stopDirect(): Promise<void> {
    const direct = this.direct;
    this.direct = null;
    await direct?.close();
  }
}

/**
 * Writes all of `bytes` through a buffered `handle`, at most WRITE_PIECE_BYTES per write, at file
 * offset `at` (null: at the handle's position, going on from there).
 */
export async function writeInPieces(handle: FileHandle, bytes: Uint8Array, at: number | null): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const piece = Math.min(bytes.byteLength - done, WRITE_PIECE_BYTES);
    const { bytesWritten } = await handle.write(bytes, done, piece, at === null ? null : at + done);
    done += bytesWritten;
  }
}
