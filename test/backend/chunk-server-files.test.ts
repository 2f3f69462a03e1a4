/**
 * A pool worker's two ways of reading the file ranges it is sent: straight into the kernels'
 * memory for the files its direct reader accepts (Node's descriptors; the browser's cached OPFS
 * files, storage/opfs-range-reader.ts), through its range reader for the others (Blobs). Here a
 * ChunkServer runs in this thread behind a WorkerPoolBackend, with a direct reader that accepts
 * some of the files, and every input must come through the reader it belongs to with its bytes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerPoolBackend, createInThreadBackend, type ChunkResponse, type PoolRequest, type WorkerPort } from '../../src/backend/pool';
import { ChunkServer } from '../../src/backend/pool/chunk-server';
import { TimedFileReads } from '../../src/backend/pool/timed-file-reads';
import type { ReductionToken } from '../../src/backend/reduction';
import { BlobRangeReader } from '../../src/storage/blob-source';
import { readFileRangeInto } from '../../src/storage/node-file-range';
import { NodeByteSource } from '../../src/storage/node-fs';
import type { FileRange, SharedFile } from '../../src/storage/types';

const COLS = 1000; // not a multiple of the vector width

/** Values 0, 1, …, COLS-1 times `scale`, as f32 bytes after `pad` bytes: their sum is exact in f32. */
function f32File(scale: number, pad: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(pad + COLS * 4);
  const values = new Float32Array(COLS).map((_, i) => i * scale);
  bytes.set(new Uint8Array(values.buffer), pad);
  return bytes;
}
const expectedSum = (scale: number): number => (scale * (COLS * (COLS - 1))) / 2;

/** A WorkerPort whose worker is `server`, in this thread. */
function inThreadPort(server: ChunkServer): WorkerPort {
  let answer: (message: ChunkResponse) => void = () => {};
  return {
    post: (message: PoolRequest) => server.receive(message, (response) => answer(response)),
    listen: (onMessage) => {
      answer = onMessage;
    },
    terminate: () => {},
  };
}

describe('pool worker file reads', () => {
  let dir: string;
  let fdSource: NodeByteSource;
  let fdFile: SharedFile;
  let blobFile: SharedFile;
  const blobBytes = f32File(3, 20);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'alloy-direct-reads-'));
    writeFileSync(join(dir, 'a.bin'), f32File(1, 12));
    fdSource = await NodeByteSource.open(join(dir, 'a.bin'));
    fdFile = fdSource.shared!;
    blobFile = { kind: 'blob', name: 'b.bin', blob: new Blob([blobBytes]) };
  });

  afterAll(async () => {
    await fdSource.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const accepted of [['fd'], ['fd', 'blob'], []] as const) {
    it(`the direct reader takes ${accepted.length ? accepted.join(' and ') : 'no'} files, the range reader the others; both give the file's bytes`, async () => {
      const direct: string[] = [];
      const ranged: string[] = [];
      const blobs = new BlobRangeReader();
      const files = new TimedFileReads(
        {
          read: (range: FileRange) => {
            ranged.push(range.file.kind);
            if (range.file.kind === 'blob') return blobs.read(range);
            const bytes = new Uint8Array(range.length);
            readFileRangeInto(range, bytes);
            return bytes;
          },
        },
        {
          readInto: (range, target) => {
            direct.push(range.file.kind);
            if (range.file.kind === 'fd') readFileRangeInto(range, target);
            else target.set(blobBytes.subarray(range.offset, range.offset + range.length));
          },
          accepts: async (file) => (accepted as readonly string[]).includes(file.kind),
        },
      );
      const server = new ChunkServer(await createInThreadBackend(files.readInto), files);
      const local = (await createInThreadBackend()).backend;
      const pool = new WorkerPoolBackend({ workers: 1, spawn: () => inThreadPort(server), local, inThreadBelow: 0 });
      try {
        const chunk = pool.beginChunk({ tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: COLS, rowStart: 0, rows: 1, cols: COLS, totalRows: 1, seed: 1 }, [
          { bytes: new Uint8Array(0), file: { file: fdFile, offset: 12, length: COLS * 4 }, dtype: 'F32', cols: COLS },
          { bytes: new Uint8Array(0), file: { file: blobFile, offset: 20, length: COLS * 4 }, dtype: 'F32', cols: COLS },
        ]);
        const sums = [chunk.ops.sum(chunk.ops.input(0)), chunk.ops.sum(chunk.ops.input(1))];
        expect(await chunk.readPartials(sums as unknown as ReductionToken[])).toEqual([expectedSum(1), expectedSum(3)]);
      } finally {
        await pool.dispose();
      }
      expect(direct).toEqual(accepted);
      expect(ranged).toEqual(['fd', 'blob'].filter((k) => !(accepted as readonly string[]).includes(k)));
    });
  }
});
