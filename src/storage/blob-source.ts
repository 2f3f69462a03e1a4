import { whileHeld } from './held-objects';
import type { ByteSource, FileRange, SharedFile } from './types';

/**
 * A ByteSource over a Blob: a File the user picked or dropped, or a disk-backed File of an OPFS
 * file (`FileSystemFileHandle.getFile()`). Reads are slices, so nothing is loaded whole. `shared`
 * says how a worker reads the same bytes: the Blob itself, unless the caller has a better way (an
 * OPFS file's handle).
 */
export class BlobByteSource implements ByteSource {
  readonly name: string;
  readonly shared: SharedFile;
  private readonly blob: Blob;

  constructor(name: string, blob: Blob, shared?: SharedFile) {
    this.name = name;
    this.blob = blob;
    this.shared = shared ?? { kind: 'blob', name, blob };
  }

  get size(): number {
    return this.blob.size;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return readBlob(this.name, this.blob, offset, length);
  }
}

/** Most spare buffers a BlobRangeReader keeps (a chunk reads one per input). */
const SPARE_BUFFERS = 8;

/**
 * Reads blob FileRanges where it is called (a CPU pool's Web Worker), through the Blob's byte
 * stream into buffers it reuses: `Blob.arrayBuffer()` returns fresh memory every time, and faulting
 * its pages in took a quarter of a pool worker's time. `recycle` takes a read's bytes back once
 * they are no longer needed (copied into the kernels' memory).
 */
export class BlobRangeReader {
  private readonly spare: ArrayBuffer[] = [];

  async read(range: FileRange): Promise<Uint8Array> {
    const { file, offset, length } = range;
    if (file.kind === 'fd') throw new Error(`internal: ${file.name} is a Node file descriptor, which a Web Worker cannot read`);
    checkRange(file.name, file.blob, offset, length);
    const at = this.spare.findIndex((b) => b.byteLength >= length);
    let buffer = at >= 0 ? this.spare.splice(at, 1)[0] : new ArrayBuffer(length);
    let done = 0;
    try {
      const stream = file.blob.slice(offset, offset + length).stream();
      const reader = stream.getReader({ mode: 'byob' });
      await whileHeld([stream, reader], async () => {
        try {
          // Stops at the last byte asked for, without waiting for the stream to say it has ended.
          while (done < length) {
            const next = await reader.read(new Uint8Array(buffer, done, length - done));
            // The view comes back on the same memory (moved to a new ArrayBuffer), also when done.
            if (next.value) buffer = next.value.buffer as ArrayBuffer;
            if (next.done) break;
            done += next.value.byteLength;
          }
        } finally {
          reader.cancel().catch(() => undefined);
        }
      });
    } catch (error) {
      throw unreadable(file.name, error);
    }
    if (done !== length) throw new Error(`${file.name}: read ${done} bytes at ${offset} instead of ${length}`);
    return new Uint8Array(buffer, 0, length);
  }

  /** Gives back the bytes of an earlier read for a later one to fill. */
  recycle(bytes: Uint8Array): void {
    const buffer = bytes.buffer as ArrayBuffer;
    if (buffer.byteLength === 0 || this.spare.includes(buffer)) return;
    this.spare.push(buffer);
    // Keep the largest: tensors' chunks grow and shrink, a buffer serves any smaller read.
    if (this.spare.length > SPARE_BUFFERS) this.spare.sort((a, b) => b.byteLength - a.byteLength).pop();
  }
}

async function readBlob(name: string, blob: Blob, offset: number, length: number): Promise<Uint8Array> {
  checkRange(name, blob, offset, length);
  let buffer: ArrayBuffer;
  try {
    buffer = await blob.slice(offset, offset + length).arrayBuffer();
  } catch (error) {
    throw unreadable(name, error);
  }
  if (buffer.byteLength !== length) {
    throw new Error(`${name}: read ${buffer.byteLength} bytes at ${offset} instead of ${length}`);
  }
  return new Uint8Array(buffer);
}

function checkRange(name: string, blob: Blob, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`${name}: invalid read of ${length} bytes at ${offset}`);
  }
  if (offset + length > blob.size) {
    throw new Error(
      `${name}: cannot read bytes ${offset}..${offset + length}, the file is only ${blob.size} bytes: ` +
        'it is truncated; pick or download it again',
    );
  }
}

/** A File snapshot becomes unreadable when the file changes or is deleted underneath it. */
function unreadable(name: string, error: unknown): Error {
  return new Error(
    `${name}: the file could not be read (${(error as Error).message}); it was changed, moved or deleted ` +
      'since it was opened: pick or download it again',
    { cause: error },
  );
}
