import { remoteFileWriter, type OpfsFileWriter, type WriterReply, type WriterRequest } from './opfs-file-writer';
import { webWorkerPort } from './worker-port';

/** Output files written on a Web Worker of their own (a nested worker of the engine worker). */
export function opfsWriterThread(): OpfsFileWriter {
  // Vite bundles the worker from this exact pattern.
  return remoteFileWriter(webWorkerPort<WriterRequest, WriterReply>(new Worker(new URL('./opfs-writer-worker.ts', import.meta.url), { type: 'module', name: 'alloy-writer' })));
}
