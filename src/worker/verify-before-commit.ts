import type { ByteSink, OutputFolder } from '../storage/types';

/**
 * An output folder that runs `check` before committing: the engine commits as its last step,
 * and checks that can only run once every input was read (the sha256 of streamed files) must be
 * able to stop the output from appearing. A failing check aborts the output (the engine's own
 * error path does) and its error fails the merge.
 */
export function verifyBeforeCommit<T extends OutputFolder>(output: T, check: () => Promise<void>): OutputFolder {
  return {
    create: (file: string): Promise<ByteSink> => output.create(file),
    ...(output.reopen ? { reopen: (file: string, at: number): Promise<ByteSink> => output.reopen!(file, at) } : {}),
    writeText: (file: string, text: string) => output.writeText(file, text),
    writeBytes: (file: string, bytes: Uint8Array) => output.writeBytes(file, bytes),
    commit: async () => {
      await check();
      await output.commit();
    },
    abort: () => output.abort(),
  };
}
