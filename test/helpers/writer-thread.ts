import { remoteFileWriter, serveFileWrites, type OpfsFileWriter, type WriterRequest } from '../../src/storage/browser';

/**
 * `remoteFileWriter` talking to `serveFileWrites` as across a Worker boundary: every message is
 * delivered on a later task, through structuredClone with its transfer list (so a transferred
 * buffer is detached on the sending side, as postMessage does). File handles pass as they are
 * (the in-memory OPFS's handles cannot be cloned; the browser's can). `stop` makes the thread
 * fail as a crashed worker does: pending and later requests get nothing back.
 */
export function fakeWriterThread(): { writer: OpfsFileWriter; stop: (error: Error) => void } {
  let onReply: ((reply: never) => void) | null = null;
  let onFailure: ((error: Error) => void) | null = null;
  let stopped = false;
  const later = (fn: () => void): void => void setTimeout(() => stopped || fn(), 0);
  const serve = serveFileWrites((reply, transfer) => {
    const copy = structuredClone(reply, { transfer: transfer as Transferable[] as never });
    later(() => onReply!(copy as never));
  });
  const writer = remoteFileWriter({
    post(request, transfer) {
      const { handle, ...rest } = request as WriterRequest & { handle?: FileSystemFileHandle };
      const copy = structuredClone(rest, { transfer: transfer as never });
      later(() => serve((handle ? { ...copy, handle } : copy) as WriterRequest));
    },
    listen(reply, failure) {
      onReply = reply as never;
      onFailure = failure;
    },
  });
  return {
    writer,
    stop(error) {
      stopped = true;
      onFailure!(error);
    },
  };
}
