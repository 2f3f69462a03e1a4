import { remoteFileWriter, type OpfsFileWriter } from './opfs-file-writer';

/** Output files written on a Web Worker of their own (a nested worker of the engine worker). */
export function opfsWriterThread(): OpfsFileWriter {
  // Vite bundles the worker from this exact pattern.
  const worker = new Worker(new URL('./opfs-writer-worker.ts', import.meta.url), { type: 'module', name: 'alloy-writer' });
  return remoteFileWriter({
    post: (request, transfer) => worker.postMessage(request, transfer),
    listen(onReply, onFailure) {
      worker.onmessage = (event) => onReply(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        onFailure(new Error(event.message || 'the worker failed to load or threw'));
      };
      worker.onmessageerror = () => onFailure(new Error('a message could not be read'));
    },
  });
}
