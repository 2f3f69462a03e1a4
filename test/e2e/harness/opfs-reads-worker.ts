/// <reference lib="webworker" />
/**
 * A worker of the harness's `opfsReads`: reads ranges of an OPFS file as a CPU pool worker does
 * (OpfsRangeReader), or holds the file open for writing, as its messages say.
 */
import { OpfsRangeReader } from '../../../src/storage/opfs-range-reader';
import { patternByte } from './pattern';
import type { SharedFile } from '../../../src/storage/types';

declare const self: DedicatedWorkerGlobalScope;

export type OpfsReadsRequest =
  | { readonly op: 'read'; readonly handle: FileSystemFileHandle; readonly ranges: readonly (readonly [number, number])[]; readonly size: number }
  | { readonly op: 'lock'; readonly handle: FileSystemFileHandle }
  | { readonly op: 'close' };

export type OpfsReadsReply =
  /** `wrong`: per range, the first byte that is not the file's (null: all right). */
  | { readonly accepted: boolean; readonly wrong: readonly (number | null)[]; readonly pastEnd: string | null }
  | { readonly locked: boolean }
  | { readonly closed: true };

const reader = new OpfsRangeReader();
let lock: FileSystemSyncAccessHandle | null = null;

self.onmessage = async (event: MessageEvent<OpfsReadsRequest>) => {
  const request = event.data;
  if (request.op === 'close') {
    lock?.close();
    self.postMessage({ closed: true } satisfies OpfsReadsReply);
    return;
  }
  if (request.op === 'lock') {
    lock = await request.handle.createSyncAccessHandle();
    self.postMessage({ locked: true } satisfies OpfsReadsReply);
    return;
  }
  const file: SharedFile = { kind: 'opfs', name: 'opfs-reads.bin', key: 'opfs-reads.bin', handle: request.handle, blob: await request.handle.getFile() };
  const accepted = await reader.accepts(file);
  const wrong: (number | null)[] = [];
  let pastEnd: string | null = null;
  if (accepted) {
    for (const [offset, length] of request.ranges) {
      const target = new Uint8Array(length);
      reader.readInto({ file, offset, length }, target);
      const at = target.findIndex((b, i) => b !== patternByte(offset + i));
      wrong.push(at < 0 ? null : offset + at);
    }
    try {
      reader.readInto({ file, offset: request.size - 10, length: 20 }, new Uint8Array(20));
    } catch (error) {
      pastEnd = (error as Error).message;
    }
  }
  self.postMessage({ accepted, wrong, pastEnd } satisfies OpfsReadsReply);
};
