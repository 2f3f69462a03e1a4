/// <reference lib="webworker" />
/**
 * Entry of a CPU pool worker in the browser: a module Web Worker that the app's engine worker
 * starts (./browser.ts).
 */
import { BlobRangeReader } from '../../storage/blob-source';
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
// Inputs may come as Blobs (picked or OPFS files) to read here, off the engine's thread.
server = new ChunkServer(await createInThreadBackend(), new TimedFileReads(new BlobRangeReader()));
for (const request of queued.splice(0)) reply(request);
