/// <reference lib="webworker" />
import { whileHeld } from './held-objects';

/**
 * Opening a file of the File System API, with its handle held until the open settles: Chromium
 * drops the pending open of a file handle that is collected meanwhile, and its promise then never
 * settles (a merge hung saving its checkpoint, test/e2e/under-gc.e2e.test.ts). Nothing else holds
 * the handle for sure: an async function waiting on the open is itself held only by that open.
 */

/** A sync access handle on `handle`; `options` (its mode) as the browser takes them. */
export function syncAccessHandle(handle: FileSystemFileHandle, options?: object): Promise<FileSystemSyncAccessHandle> {
  const file = handle as unknown as { createSyncAccessHandle(options?: object): Promise<FileSystemSyncAccessHandle> };
  return whileHeld([handle], () => file.createSyncAccessHandle(options));
}

/** A sync access handle on file `name` of `dir`, created if missing. */
export async function openSyncAccessHandle(dir: FileSystemDirectoryHandle, name: string): Promise<FileSystemSyncAccessHandle> {
  return syncAccessHandle(await dir.getFileHandle(name, { create: true }));
}

/** A writable stream on `handle` (a picked folder's file, written through a swap file). */
export function writableFile(handle: FileSystemFileHandle, options?: FileSystemCreateWritableOptions): Promise<FileSystemWritableFileStream> {
  return whileHeld([handle], () => handle.createWritable(options));
}
