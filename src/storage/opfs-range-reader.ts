/// <reference lib="webworker" />
import { fileEndedError } from './errors';
import { syncAccessHandle } from './opfs-handles';
import type { FileRange, SharedFile } from './types';

/**
 * Reads ranges of the Hub download cache's complete files (SharedFile 'opfs') in a CPU pool's Web
 * Worker, synchronously and straight into the caller's memory (the kernels' WebAssembly memory),
 * through a read-only sync access handle the worker opens once per file. Read-only handles share
 * the file: every worker holds one at once, and the browser process takes no part in a read (a
 * Blob read goes through it, and cost it as much CPU as the worker). Where a worker cannot open
 * one (a browser without read-only handles, a file locked for writing), `accepts` says no and the
 * file is read as its Blob. Handles close with the worker (the pool ends with its merge).
 */
export class OpfsRangeReader {
  private readonly opening = new Map<string, Promise<FileSystemSyncAccessHandle | null>>();
  private readonly open = new Map<string, FileSystemSyncAccessHandle>();

  /** Whether `readInto` reads this file: it is a cached file, and this worker holds a handle on it. */
  async accepts(file: SharedFile): Promise<boolean> {
    if (file.kind !== 'opfs') return false;
    let opening = this.opening.get(file.key);
    if (!opening) {
      opening = openReadOnly(file.handle).then((access) => {
        if (access) this.open.set(file.key, access);
        return access;
      });
      this.opening.set(file.key, opening);
    }
    return (await opening) !== null;
  }

  /** Reads `range` into `target` (its length), on a file `accepts` said yes to. */
  readInto(range: FileRange, target: Uint8Array): void {
    const { file, offset, length } = range;
    const access = file.kind === 'opfs' ? this.open.get(file.key) : undefined;
    if (!access) throw new Error(`internal: ${file.name} is not open for reading in this worker`);
    if (target.byteLength !== length) throw new Error(`internal: a read of ${length} bytes of ${file.name} into ${target.byteLength}`);
    let done = 0;
    while (done < length) {
      const n = access.read(target.subarray(done), { at: offset + done });
      if (n === 0) throw fileEndedError(file.name, offset + done, length, offset);
      done += n;
    }
  }
}

/**
 * A read-only sync access handle on `handle`, or null where the browser has none. A browser that
 * does not know the `mode` option ignores it and opens an exclusive read-write handle, which would
 * lock the file against the other workers: the option is read through a getter to tell.
 */
async function openReadOnly(handle: FileSystemFileHandle): Promise<FileSystemSyncAccessHandle | null> {
  if (typeof handle.createSyncAccessHandle !== 'function') return null;
  let understood = false;
  const options = {
    get mode() {
      understood = true;
      return 'read-only';
    },
  };
  try {
    const access = await syncAccessHandle(handle, options);
    if (understood) return access;
    access.close();
    return null;
  } catch {
    return null;
  }
}
