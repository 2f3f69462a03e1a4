/// <reference lib="webworker" />
/**
 * A worker of the harness's `opensUnderGc`: opens and closes a sync access handle on an OPFS file
 * over and over through openSyncAccessHandle, while garbage is made and collected. Opened as
 * `(await dir.getFileHandle(name)).createSyncAccessHandle()`, which drops the file handle at once,
 * the first or second open never settled (in every try).
 */
import { openSyncAccessHandle } from '../../../src/storage/opfs-handles';

declare const self: DedicatedWorkerGlobalScope;

export interface OpfsOpensRequest {
  readonly rounds: number;
}
export type OpfsOpensReply = { readonly opens: number } | { readonly error: string };

self.onmessage = async (event: MessageEvent<OpfsOpensRequest>) => {
  const { rounds } = event.data;
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) return self.postMessage({ error: 'gc() is missing: launch Chromium with --js-flags=--expose-gc' } satisfies OpfsOpensReply);
  const dir = await navigator.storage.getDirectory();
  let opens = 0;
  for (let round = 0; round < rounds; round++) {
    const opening = openSyncAccessHandle(dir, 'opens-under-gc.bin');
    let settled = false;
    void opening.finally(() => (settled = true)).catch(() => undefined);
    for (let g = 0; g < 4 && !settled; g++) {
      new Float32Array(1 << 18).fill(g);
      collect();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const access = await Promise.race([opening, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5_000))]);
    if (!access) return self.postMessage({ error: `round ${round + 1}: the open never settled (${opens} opens before came back)` } satisfies OpfsOpensReply);
    access.close();
    opens++;
  }
  await dir.removeEntry('opens-under-gc.bin');
  self.postMessage({ opens } satisfies OpfsOpensReply);
};
