/** A Web Worker seen as a two-way message port (the CPU pool's workers, the output writer thread). */
export interface WebWorkerPort<Out, In> {
  post(message: Out, transfer: Transferable[]): void;
  /**
   * Registers the handlers once: messages, and a failure after which the worker is gone (it did
   * not load, threw an uncaught error, or sent a message that could not be read).
   */
  listen(onMessage: (message: In) => void, onFailure: (error: Error) => void): void;
  terminate(): void;
}

/** `worker` as a WebWorkerPort. The caller creates it, so that bundlers see `new Worker(new URL(…))`. */
export function webWorkerPort<Out, In>(worker: Worker): WebWorkerPort<Out, In> {
  return {
    post: (message, transfer) => worker.postMessage(message, transfer),
    listen(onMessage, onFailure) {
      worker.onmessage = (event: MessageEvent<In>) => onMessage(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        onFailure(new Error(event.message || 'the worker failed to load or threw'));
      };
      worker.onmessageerror = () => onFailure(new Error('a message could not be read'));
    },
    terminate: () => worker.terminate(),
  };
}
