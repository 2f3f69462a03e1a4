import { fstatSync, readSync } from 'node:fs';
import { fileEndedError } from './errors';
import type { FileRange } from './types';

/**
 * Reads a FileRange of an open Node file descriptor (SharedFile 'fd') synchronously, on whatever
 * thread calls it: a CPU pool worker reads its chunk straight into its WebAssembly memory.
 * Node-only (import it as `src/storage/node-file-range`).
 */
export function readFileRangeInto(range: FileRange, target: Uint8Array): void {
  const { file, offset, length } = range;
  if (file.kind !== 'fd') throw new Error(`internal: ${file.name} is not an open file here`);
  if (target.byteLength !== length) throw new Error(`internal: a read of ${length} bytes of ${file.name} into ${target.byteLength}`);
  let done = 0;
  // read() may return fewer bytes than asked (large reads, some file systems): loop.
  while (done < length) {
    const bytesRead = readSync(file.fd, target, done, length - done, offset + done);
    if (bytesRead === 0) {
      // The merge checked every range against the file's size when it opened it.
      const size = safeSize(file.fd);
      throw fileEndedError(file.name, offset + done, length, offset, size === null || size === file.size ? '' : ` (it has ${size} bytes now, ${file.size} when it was opened)`);
    }
    done += bytesRead;
  }
}

/** A FileRange's bytes in a new buffer. */
export function readFileRange(range: FileRange): Uint8Array {
  const bytes = new Uint8Array(range.length);
  readFileRangeInto(range, bytes);
  return bytes;
}

function safeSize(fd: number): number | null {
  try {
    return fstatSync(fd).size;
  } catch {
    return null;
  }
}
