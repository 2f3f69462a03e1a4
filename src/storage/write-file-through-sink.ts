import type { OutputFolder } from './types';

/** Writes a small file in one go through an output folder's sink (shared by every OutputFolder). */
export async function writeFileThroughSink(folder: Pick<OutputFolder, 'create'>, file: string, bytes: Uint8Array): Promise<void> {
  const sink = await folder.create(file);
  try {
    await sink.write(bytes);
  } finally {
    await sink.close();
  }
}
