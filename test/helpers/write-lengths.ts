import { type FileHandle, open } from 'node:fs/promises';

/** `handle`, recording into `lengths` the length of every write through it. */
export function recordWriteLengths(handle: FileHandle, lengths: number[]): FileHandle {
  const original = handle.write.bind(handle);
  handle.write = ((...args: Parameters<typeof original>) => {
    lengths.push(Number(args[2]));
    return original(...args);
  }) as typeof handle.write;
  return handle;
}

/** Creates `file` ('wx'), recording the length of every write through its handle. */
export async function createRecordingLengths(file: string): Promise<{ handle: FileHandle; lengths: number[] }> {
  const lengths: number[] = [];
  return { handle: recordWriteLengths(await open(file, 'wx'), lengths), lengths };
}
