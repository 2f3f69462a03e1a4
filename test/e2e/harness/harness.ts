/**
 * A page for the e2e tests that drives the engine worker alone (no UI): it starts the worker
 * through src/worker/client.ts and exposes it as `window.alloyHarness`; tests call it with
 * `page.evaluate`. Progress events are kept in `events` so tests can look at them.
 */
import type { PushProgress, RunProgress } from '../../../src/worker/api';
import { BlobRangeReader } from '../../../src/storage/blob-source';
import type { SharedFile } from '../../../src/storage/types';
import { createEngineClient, type EngineClient } from '../../../src/worker/client';
import type { OpfsOpensReply, OpfsOpensRequest } from './opfs-opens-worker';
import type { OpfsReadsReply, OpfsReadsRequest } from './opfs-reads-worker';
import { patternByte } from './pattern';

export interface Harness {
  readonly engine: EngineClient;
  readonly events: RunProgress[];
  readonly pushEvents: PushProgress[];
  /** Runs a merge, recording progress; resolves to the result or `{error}`. */
  merge(request: Parameters<EngineClient['merge']>[0]): Promise<Awaited<ReturnType<EngineClient['merge']>> | { error: string }>;
  /** An output file as base64. */
  outputBase64(outputName: string, file: string): Promise<string>;
  /**
   * Reads ranges of an OPFS file (a disk-backed Blob) through BlobRangeReader, `concurrent` at a
   * time for `rounds` rounds, allocating garbage and collecting it (`gc`, with --expose-gc) while
   * they are pending; says how many reads came back right, or which never settled or came wrong.
   */
  blobReadsUnderGc(options: { rangeBytes: number; concurrent: number; rounds: number }): Promise<{ reads: number } | { error: string }>;
  /**
   * Reads ranges of an OPFS file of `size` bytes in two workers at once through OpfsRangeReader
   * (as the CPU pool's workers read the download cache), then once more while a third worker
   * holds the file open for writing; ends by deleting the file once every worker is gone.
   */
  opfsReads(size: number, ranges: readonly (readonly [number, number])[]): Promise<{ together: OpfsReadsReply[]; whileLocked: OpfsReadsReply; lockAfterReaders: OpfsReadsReply; removed: boolean }>;
  /** Opens and closes a sync access handle `rounds` times in a worker while garbage is collected (opfs-opens-worker.ts). */
  opensUnderGc(request: OpfsOpensRequest): Promise<OpfsOpensReply>;
}

const engine = createEngineClient();
const events: RunProgress[] = [];
const pushEvents: PushProgress[] = [];

const harness: Harness = {
  engine,
  events,
  pushEvents,
  async merge(request) {
    try {
      return await engine.merge(request, (p) => events.push(p));
    } catch (error) {
      return { error: (error as Error).message };
    }
  },
  async outputBase64(outputName, file) {
    const blob = await engine.outputFile(outputName, file);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  },
  blobReadsUnderGc,
  opfsReads,
  opensUnderGc(request) {
    const worker = new Worker(new URL('./opfs-opens-worker.ts', import.meta.url), { type: 'module' });
    return new Promise<OpfsOpensReply>((resolve) => {
      worker.onmessage = (event: MessageEvent<OpfsOpensReply>) => resolve(event.data);
      worker.onerror = (event) => resolve({ error: event.message });
      worker.postMessage(request);
    }).finally(() => worker.terminate());
  },
};

/** Writes `name` in OPFS: `size` bytes of patternByte. */
async function writePatternFile(name: string, size: number): Promise<FileSystemFileHandle> {
  const handle = await (await navigator.storage.getDirectory()).getFileHandle(name, { create: true });
  const writable = await handle.createWritable();
  const piece = new Uint8Array(1 << 20);
  for (let at = 0; at < size; at += piece.length) {
    const n = Math.min(piece.length, size - at);
    for (let i = 0; i < n; i++) piece[i] = patternByte(at + i);
    await writable.write(piece.subarray(0, n));
  }
  await writable.close();
  return handle;
}

async function opfsReads(size: number, ranges: readonly (readonly [number, number])[]) {
  const handle = await writePatternFile('opfs-reads.bin', size);
  const start = (): Worker => new Worker(new URL('./opfs-reads-worker.ts', import.meta.url), { type: 'module' });
  const ask = (worker: Worker, request: OpfsReadsRequest): Promise<OpfsReadsReply> =>
    new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<OpfsReadsReply>) => resolve(event.data);
      worker.onerror = (event) => reject(new Error(event.message));
      worker.postMessage(request);
    });
  const read: OpfsReadsRequest = { op: 'read', handle, ranges, size };
  // Two readers hold the file at once (the first keeps its handle while the second opens one).
  const readers = [start(), start()];
  const together = [await ask(readers[0], read), await ask(readers[1], read)];
  // Once the readers are gone, a writer can lock the file; while it holds it, a reader cannot open a handle.
  for (const r of readers) r.terminate();
  const locker = start();
  const lockAfterReaders = await ask(locker, { op: 'lock', handle });
  const late = start();
  const whileLocked = await ask(late, read);
  await ask(locker, { op: 'close' });
  locker.terminate();
  late.terminate();
  let removed = true;
  try {
    await (await navigator.storage.getDirectory()).removeEntry('opfs-reads.bin');
  } catch {
    removed = false;
  }
  return { together, whileLocked, lockAfterReaders, removed };
}

async function blobReadsUnderGc(options: { rangeBytes: number; concurrent: number; rounds: number }): Promise<{ reads: number } | { error: string }> {
  const { rangeBytes, concurrent, rounds } = options;
  const size = rangeBytes * concurrent * 2 + 12345;
  const handle = await writePatternFile('blob-reads.bin', size);
  const file: SharedFile = { kind: 'blob', name: 'blob-reads.bin', blob: await handle.getFile() };
  const reader = new BlobRangeReader();
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) return { error: 'gc() is missing: launch Chromium with --js-flags=--expose-gc' };
  let reads = 0;
  for (let round = 0; round < rounds; round++) {
    const offsets = Array.from({ length: concurrent }, (_, k) => ((round * concurrent + k) * 4099 * 1021) % (size - rangeBytes));
    const pending = offsets.map((offset) => reader.read({ file, offset, length: rangeBytes }));
    let settled = false;
    const all = Promise.all(pending).finally(() => (settled = true));
    // Garbage, and collections, while the reads are pending.
    for (let g = 0; g < 8 && !settled; g++) {
      new Float32Array(1 << 20).fill(g);
      collect();
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const got = await Promise.race([all, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
    if (!got) return { error: `round ${round + 1}: a read never settled (${reads} reads before came back)` };
    for (let k = 0; k < got.length; k++) {
      for (let i = 0; i < rangeBytes; i += 997) {
        if (got[k][i] !== patternByte(offsets[k] + i)) return { error: `round ${round + 1}: byte ${offsets[k] + i} came back wrong` };
      }
      reader.recycle(got[k]);
      reads++;
    }
  }
  await (await navigator.storage.getDirectory()).removeEntry('blob-reads.bin');
  return { reads };
}

(window as unknown as { alloyHarness: Harness }).alloyHarness = harness;
document.getElementById('status')!.textContent = 'ready';
