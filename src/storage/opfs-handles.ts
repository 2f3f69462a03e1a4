/// <reference lib="webworker" />
import { whileHeld } from './held-objects';

/**
 * A sync access handle on `handle` (`options`: its mode), with `handle` held until the open
 * settles: Chromium drops the pending open of a file handle that is collected meanwhile, and its
 * promise then never settles (a merge hung saving its checkpoint, test/e2e/under-gc.e2e.test.ts).
 * Nothing else holds it for sure: an async function waiting on the open is itself held only by
 * that open.
 */
export function syncAccessHandle(handle: FileSystemFileHandle, options?: object): Promise<FileSystemSyncAccessHandle> {
  const open = handle.createSyncAccessHandle as (this: FileSystemFileHandle, options?: object) => Promise<FileSystemSyncAccessHandle>;
  return whileHeld([handle], () => open.call(handle, options));
}

/** A sync access handle on file `name` of `dir`, created if missing (syncAccessHandle). */
export async function openSyncAccessHandle(dir: FileSystemDirectoryHandle, name: string): Promise<FileSystemSyncAccessHandle> {
  return syncAccessHandle(await dir.getFileHandle(name, { create: true }));
}
