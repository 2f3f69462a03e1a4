/**
 * How OPFS output files get their bytes: through a SyncAccessHandle, whose writes are synchronous.
 * In the thread that computes a merge such a write stops everything else for as long as the disk
 * takes (337 MB: 0.4–0.8 s on ext4 here), so the app writes on a thread of its own
 * (`remoteFileWriter` with `serveFileWrites` in ./opfs-writer-worker.ts); `inThreadFileWriter`
 * writes where it is called (Node tests, and anything that writes little).
 */
import { syncAccessHandle } from './opfs-handles';
import { WRITE_PIECE_BYTES } from './write-pieces';

/** A file open for writing; `write` is done with `bytes` when its promise resolves. */
export interface WritableFile {
  write(bytes: Uint8Array, at: number): Promise<void>;
  /** Closes the file, without flushing it to the disk (SyncFileWrites.close). */
  close(): Promise<void>;
}

export interface OpfsFileWriter {
  /**
   * Opens `handle` for writing and cuts the file at byte `at` (0: a new file). Throws a
   * ShortFileError when the file holds fewer than `at` bytes.
   */
  open(handle: FileSystemFileHandle, at: number): Promise<WritableFile>;
}

/** The file is shorter than where writing was to continue. */
export class ShortFileError extends Error {
  override readonly name = 'ShortFileError';
  constructor(readonly size: number) {
    super(`the file holds only ${size} bytes`);
  }
}

/** The writes themselves, on SyncAccessHandles of the thread this runs in. */
export class SyncFileWrites {
  private readonly files = new Map<number, FileSystemSyncAccessHandle>();
  private nextFile = 1;

  async open(handle: FileSystemFileHandle, at: number): Promise<number> {
    const access = await syncAccessHandle(handle);
    try {
      const size = access.getSize();
      if (size < at) throw new ShortFileError(size);
      // Only where bytes after `at` are to go: on ext4, a file cut to length 0 (a new one too) is
      // written back to the disk when it closes (auto_da_alloc), ~0.1 s for 375 MB on the test VMs.
      if (size > at) access.truncate(at);
    } catch (error) {
      access.close();
      throw error;
    }
    const file = this.nextFile++;
    this.files.set(file, access);
    return file;
  }

  write(file: number, bytes: Uint8Array, at: number): void {
    const access = this.access(file);
    let done = 0;
    while (done < bytes.byteLength) {
      const n = access.write(bytes.subarray(done, done + WRITE_PIECE_BYTES), { at: at + done });
      if (n <= 0) throw new Error('the file system accepted no bytes');
      done += n;
    }
  }

  /**
   * Closes the file. Not flushed (no fsync), as neither the CLI nor mergekit flush theirs: a reload,
   * a crashed tab or a closed browser keep what the file system was given, and only a crash of the
   * machine before the kernel writes it back (within ~30 s on Linux) loses it. The flush at each
   * shard's end stopped the merge while the disk caught up: 0.18 s of a 1.2 s merge of 375 MB here.
   */
  close(file: number): void {
    const access = this.access(file);
    this.files.delete(file);
    access.close();
  }

  private access(file: number): FileSystemSyncAccessHandle {
    const access = this.files.get(file);
    if (!access) throw new Error('internal: write to a closed output file');
    return access;
  }
}

/** Writes in the calling thread. */
export function inThreadFileWriter(): OpfsFileWriter {
  const writes = new SyncFileWrites();
  return {
    async open(handle, at) {
      const file = await writes.open(handle, at);
      return {
        write: async (bytes, at) => writes.write(file, bytes, at),
        close: async () => writes.close(file),
      };
    },
  };
}

export type WriterRequest =
  | { readonly op: 'open'; readonly id: number; readonly handle: FileSystemFileHandle; readonly at: number }
  /** `length` bytes of `buffer` (transferred, and transferred back in the reply). */
  | { readonly op: 'write'; readonly id: number; readonly file: number; readonly buffer: ArrayBuffer; readonly length: number; readonly at: number }
  | { readonly op: 'close'; readonly id: number; readonly file: number };

export type WriterReply =
  | { readonly id: number; readonly ok: true; readonly file?: number; readonly buffer?: ArrayBuffer }
  | { readonly id: number; readonly ok: false; readonly name: string; readonly message: string; readonly size?: number };

/** One end of the channel to the writer thread (a Worker, or a fake in tests). */
export interface WriterPort {
  post(request: WriterRequest, transfer: Transferable[]): void;
  listen(onReply: (reply: WriterReply) => void, onFailure: (error: Error) => void): void;
}

/** The writer thread's side: does each request in turn and answers it. */
export function serveFileWrites(reply: (reply: WriterReply, transfer: Transferable[]) => void): (request: WriterRequest) => void {
  const writes = new SyncFileWrites();
  let queue: Promise<void> = Promise.resolve();
  return (request) => {
    queue = queue.then(async () => {
      try {
        if (request.op === 'open') reply({ id: request.id, ok: true, file: await writes.open(request.handle, request.at) }, []);
        else if (request.op === 'write') {
          writes.write(request.file, new Uint8Array(request.buffer, 0, request.length), request.at);
          reply({ id: request.id, ok: true, buffer: request.buffer }, [request.buffer]);
        } else {
          writes.close(request.file);
          reply({ id: request.id, ok: true }, []);
        }
      } catch (error) {
        const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
        reply({ id: request.id, ok: false, name, message, size: error instanceof ShortFileError ? error.size : undefined }, []);
      }
    });
  };
}

/** Buffers kept for the next writes (one write is in flight at a time per file, see SafetensorsStreamWriter). */
const SPARE_BUFFERS = 2;

/**
 * Writes on the thread at the other end of `port`. A write copies its bytes into a buffer that
 * moves to that thread and comes back for a later write, so it resolves as soon as the bytes are
 * in the file while the caller's thread has gone on computing.
 */
export function remoteFileWriter(port: WriterPort): OpfsFileWriter {
  const pending = new Map<number, { resolve: (reply: WriterReply & { ok: true }) => void; reject: (error: Error) => void }>();
  const spare: ArrayBuffer[] = [];
  let failure: Error | null = null;
  let nextId = 1;
  port.listen(
    (reply) => {
      const waiting = pending.get(reply.id);
      if (!waiting) return;
      pending.delete(reply.id);
      if (reply.ok) {
        if (reply.buffer && spare.length < SPARE_BUFFERS) spare.push(reply.buffer);
        waiting.resolve(reply);
      } else if (reply.name === 'ShortFileError') waiting.reject(new ShortFileError(reply.size ?? 0));
      else waiting.reject(Object.assign(new Error(reply.message), { name: reply.name }));
    },
    (error) => {
      failure = new Error(`the thread that writes output files stopped: ${error.message}. The merge cannot go on: reload the page and start it again.`, {
        cause: error,
      });
      for (const waiting of pending.values()) waiting.reject(failure);
      pending.clear();
    },
  );
  const send = (request: WriterRequest, transfer: Transferable[]): Promise<WriterReply & { ok: true }> => {
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      pending.set(request.id, { resolve, reject });
      try {
        port.post(request, transfer);
      } catch (error) {
        pending.delete(request.id);
        reject(error);
      }
    });
  };
  const bufferFor = (bytes: Uint8Array): ArrayBuffer => {
    const i = spare.findIndex((b) => b.byteLength >= bytes.byteLength);
    const buffer = i >= 0 ? spare.splice(i, 1)[0] : new ArrayBuffer(bytes.byteLength);
    new Uint8Array(buffer, 0, bytes.byteLength).set(bytes);
    return buffer;
  };
  return {
    async open(handle, at) {
      const { file } = await send({ op: 'open', id: nextId++, handle, at }, []);
      return {
        write: async (bytes, at) => {
          const buffer = bufferFor(bytes);
          await send({ op: 'write', id: nextId++, file: file!, buffer, length: bytes.byteLength, at }, [buffer]);
        },
        close: async () => {
          await send({ op: 'close', id: nextId++, file: file! }, []);
        },
      };
    },
  };
}
