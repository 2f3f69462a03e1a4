import type { ByteSource, FileRange, SharedFile } from './types';

/**
 * A ByteSource over a Blob: a File the user picked or dropped, or a disk-backed File of an OPFS
 * file (`FileSystemFileHandle.getFile()`). Reads are slices, so nothing is loaded whole.
 */
export class BlobByteSource implements ByteSource {
  readonly name: string;
  readonly shared: SharedFile;
  private readonly blob: Blob;

  constructor(name: string, blob: Blob) {
    this.name = name;
    this.blob = blob;
    this.shared = { kind: 'blob', name, blob };
  }

  get size(): number {
    return this.blob.size;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return readBlob(this.name, this.blob, offset, length);
  }
}

/** The bytes of a blob FileRange, read where it is called (a CPU pool's Web Worker). */
export async function readBlobRange(range: FileRange): Promise<Uint8Array> {
  if (range.file.kind !== 'blob') throw new Error(`internal: ${range.file.name} is not a Blob here, and a Web Worker reads only Blobs`);
  return readBlob(range.file.name, range.file.blob, range.offset, range.length);
}

async function readBlob(name: string, blob: Blob, offset: number, length: number): Promise<Uint8Array> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`${name}: invalid read of ${length} bytes at ${offset}`);
  }
  if (offset + length > blob.size) {
    throw new Error(
      `${name}: cannot read bytes ${offset}..${offset + length}, the file is only ${blob.size} bytes: ` +
        'it is truncated; pick or download it again',
    );
  }
  let buffer: ArrayBuffer;
  try {
    buffer = await blob.slice(offset, offset + length).arrayBuffer();
  } catch (error) {
    // A File snapshot becomes unreadable when the file changes or is deleted underneath it.
    throw new Error(
      `${name}: the file could not be read (${(error as Error).message}); it was changed, moved or deleted ` +
        'since it was opened: pick or download it again',
      { cause: error },
    );
  }
  if (buffer.byteLength !== length) {
    throw new Error(`${name}: read ${buffer.byteLength} bytes at ${offset} instead of ${length}`);
  }
  return new Uint8Array(buffer);
}
