/// <reference lib="webworker" />
import { whileHeld } from './held-objects';

/**
 * A sync access handle on file `name` of `dir` (created if missing), with the file's handle held
 * until the open settles: Chromium drops the pending open of a file handle that is collected
 * meanwhile, and its promise then never settles (a merge hung saving its checkpoint,
 * test/e2e/under-gc.e2e.test.ts).
 */
export async function openSyncAccessHandle(dir: FileSystemDirectoryHandle, name: string): Promise<FileSystemSyncAccessHandle> {
  const file = await dir.getFileHandle(name, { create: true });
  return whileHeld([file], () => file.createSyncAccessHandle());
}
