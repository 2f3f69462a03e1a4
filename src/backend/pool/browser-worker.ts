/// <reference lib="webworker" />
/**
 * Entry of a CPU pool worker in the browser: a module Web Worker that the app's engine worker
 * starts (./browser.ts).
 */
import { BlobRangeReader } from '../../storage/blob-source';
import { OpfsRangeReader } from '../../storage/opfs-range-reader';
import { ChunkServer } from './chunk-server';
import { createInThreadBackend } from './in-thread-backend';
import type { PoolRequest } from './protocol';
import { TimedFileReads } from './timed-file-reads';

declare const self: DedicatedWorkerGlobalScope;

const queued: PoolRequest[] = [];
let server: ChunkServer | null = null;
const reply = (request: PoolRequest): void =>
  server!.receive(request, (response, transfer) => self.postMessage(response, transfer));
// Messages that arrive while the backend starts wait for it.
self.onmessage = (event: MessageEvent<PoolRequest>) => (server ? reply(event.data) : queued.push(event.data));
// Inputs may come as files to read here, off the engine's thread: the download cache's files
// straight into the kernels' memory where a read-only handle opens, other files as Blobs.
const files = new TimedFileReads(new BlobRangeReader(), new OpfsRangeReader());
server = new ChunkServer(await createInThreadBackend(files.readInto), files);
for (const request of queued.splice(0)) reply(request);
