import type { FileRange, SharedFile } from '../../storage/types';
import type { FileRangeReader } from '../cpu/simd';

/** Reads file ranges into buffers of their own, which `recycle` may take back for later reads. */
export interface RangeReader {
  read(range: FileRange): Uint8Array | Promise<Uint8Array>;
  recycle?(bytes: Uint8Array): void;
}

/** Reads file ranges synchronously straight into a given buffer (the kernels' memory). */
export interface DirectReader {
  readInto(range: FileRange, target: Uint8Array): void;
  /** Whether `readInto` reads this file; without it, every file. */
  accepts?(file: SharedFile): boolean | Promise<boolean>;
}

/**
 * How a pool worker reads the file ranges it is sent (ChunkInputBytes.file), timed: the share of
 * a chunk's time its reads took travels with its result, so that the engine's read/compute split
 * still says what bounds a merge whose reading the workers do.
 */
export class TimedFileReads {
  /** Milliseconds spent reading so far. */
  ms = 0;
  /**
   * Reads straight into a given buffer (the kernels' memory), where reads can be synchronous: Node's
   * files, the browser's cached OPFS files (`direct` says which files).
   */
  readonly readInto: FileRangeReader | undefined;

  constructor(
    private readonly reader: RangeReader,
    private readonly into?: DirectReader,
  ) {
    this.readInto = into && ((range, target) => {
      const start = performance.now();
      try {
        into.readInto(range, target);
      } finally {
        this.ms += performance.now() - start;
      }
    });
  }

  /** Whether `readInto` reads `file` (else `read` does). */
  async direct(file: SharedFile): Promise<boolean> {
    if (!this.into) return false;
    return this.into.accepts ? this.into.accepts(file) : true;
  }

  /** A range's bytes in a buffer of their own, until they are given back with `recycle`. */
  async read(range: FileRange): Promise<Uint8Array> {
    const start = performance.now();
    try {
      return await this.reader.read(range);
    } finally {
      this.ms += performance.now() - start;
    }
  }

  /** Takes back bytes `read` returned, once nothing uses them. */
  recycle(bytes: Uint8Array): void {
    this.reader.recycle?.(bytes);
  }
}
