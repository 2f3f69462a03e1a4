/// <reference lib="webworker" />
/**
 * Entry of the thread that writes the app's OPFS output files (./opfs-writer-thread.ts starts it
 * from the engine worker): it holds their SyncAccessHandles and does their synchronous writes.
 */
import { serveFileWrites, type WriterRequest } from './opfs-file-writer';

declare const self: DedicatedWorkerGlobalScope;

const serve = serveFileWrites((reply, transfer) => self.postMessage(reply, transfer));
self.onmessage = (event: MessageEvent<WriterRequest>) => serve(event.data);
