import { type FileHandle, open } from 'node:fs/promises';

/** Creates `file` ('wx') and records the length of every write through its handle. */
export async function createRecordingLengths(file: string): Promise<{ handle: FileHandle; lengths: number[] }> {
  const handle = await open(file, 'wx');
  const original = handle.write.bind(handle);
  const lengths: number[] = [];
  handle.write = ((...args: Parameters<typeof original>) => {
    lengths.push(Number(args[2]));
    return original(...args);
  }) as typeof handle.write;
  return { handle, lengths };
}
