import type { ByteSource } from './types';

/**
 * A ByteSource over a Blob: a File the user picked or dropped, or a disk-backed File of an OPFS
 * file (`FileSystemFileHandle.getFile()`). Reads are slices, so nothing is loaded whole.
 */
export class BlobByteSource implements ByteSource {
  readonly name: string;
  private readonly blob: Blob;

  constructor(name: string, blob: Blob) {
    this.name = name;
    this.blob = blob;
  }

  get size(): number {
    return this.blob.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`${this.name}: invalid read of ${length} bytes at ${offset}`);
    }
    if (offset + length > this.blob.size) {
      throw new Error(
        `${this.name}: cannot read bytes ${offset}..${offset + length}, the file is only ${this.blob.size} bytes: ` +
          'it is truncated; pick or download it again',
      );
    }
    let buffer: ArrayBuffer;
    try {
      buffer = await this.blob.slice(offset, offset + length).arrayBuffer();
    } catch (error) {
      // A File snapshot becomes unreadable when the file changes or is deleted underneath it.
      throw new Error(
        `${this.name}: the file could not be read (${(error as Error).message}); it was changed, moved or deleted ` +
          'since it was opened: pick or download it again',
        { cause: error },
      );
    }
    if (buffer.byteLength !== length) {
      throw new Error(`${this.name}: read ${buffer.byteLength} bytes at ${offset} instead of ${length}`);
    }
    return new Uint8Array(buffer);
  }
}
