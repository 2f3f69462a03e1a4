/**
 * The floor under a merge from picked folders: how long this browser takes only to read the
 * same files through their Blobs, as a pool does (`navigator.hardwareConcurrency` Web Workers,
 * each reading every file's next 8 MiB range at once through a BYOB stream), with no merge.
 *
 * Chromium serves a picked file's Blob from the browser process through a Mojo data pipe, in
 * pieces of about 64 KiB, each a file read on a thread pool and a message through its IO thread.
 * On the bench's 2-core machines that costs about 2 CPU-s per GB read, which the CLI (`pread`
 * from the page cache) does not pay: no change of the app's makes a merge from picked folders
 * faster than this floor. docs/browser.md §1 has the numbers.
 */
import type { BrowserContext } from 'playwright-core';

/** Bytes each read asks for: the size of a CPU pool chunk's input at the natural budget. */
const RANGE_BYTES = 8 << 20;

/** One reading of the floor: its wall time, and the CPU seconds the browser's processes took meanwhile. */
export interface ReadFloor {
  readonly seconds: number;
  readonly cpuSeconds: number;
}

/**
 * Reads `files` whole, in a fresh page of `context`, `runs` times: the reading of median time.
 * `cpuSeconds` says how many CPU seconds all the browser's processes have used so far.
 */
export async function blobReadFloor(context: BrowserContext, files: readonly string[], cpuSeconds: () => number, runs = 3): Promise<ReadFloor> {
  const page = await context.newPage();
  try {
    await page.setContent('<input type="file" multiple>');
    await page.locator('input').setInputFiles([...files]);
    const readings: ReadFloor[] = [];
    for (let run = 0; run < runs; run++) {
      const cpuBefore = cpuSeconds();
      const seconds = await page.evaluate(readAllInWorkers, { source: readerSource, rangeBytes: RANGE_BYTES });
      readings.push({ seconds, cpuSeconds: cpuSeconds() - cpuBefore });
    }
    return readings.sort((a, b) => a.seconds - b.seconds)[runs >> 1];
  } finally {
    await page.close();
  }
}

/** Runs in the page: starts the readers on the input's files and times them until the last is done. */
async function readAllInWorkers({ source, rangeBytes }: { source: string; rangeBytes: number }): Promise<number> {
  const files = [...document.querySelector('input')!.files!];
  const url = URL.createObjectURL(new Blob([`onmessage = ${source}`], { type: 'text/javascript' }));
  const count = navigator.hardwareConcurrency || 1;
  const started = performance.now();
  const read = await Promise.all(
    Array.from({ length: count }, (_, me) => {
      const worker = new Worker(url);
      return new Promise<number>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<number>) => (worker.terminate(), resolve(event.data));
        worker.onerror = (event) => (worker.terminate(), reject(new Error(event.message)));
        worker.postMessage({ files, me, count, rangeBytes });
      });
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  URL.revokeObjectURL(url);
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (read.reduce((a, b) => a + b, 0) !== total) throw new Error(`the readers read ${read.join(' + ')} bytes of ${total}`);
  return seconds;
}

/**
 * A reader worker's message handler, as source text: reads ranges `me`, `me + count`, … of every
 * file (one range of each file at a time), into one buffer per file; answers the bytes read.
 */
const readerSource = `async ({ data: { files, me, count, rangeBytes } }) => {
  const longest = Math.max(...files.map((f) => f.size));
  const buffers = files.map(() => new ArrayBuffer(rangeBytes));
  let read = 0;
  for (let offset = me * rangeBytes; offset < longest; offset += count * rangeBytes) {
    await Promise.all(files.map(async (file, i) => {
      const length = Math.min(file.size, offset + rangeBytes) - offset;
      if (length <= 0) return;
      const reader = file.slice(offset, offset + length).stream().getReader({ mode: 'byob' });
      let done = 0;
      while (done < length) {
        const next = await reader.read(new Uint8Array(buffers[i], done, length - done));
        if (next.value) buffers[i] = next.value.buffer;
        if (next.done) break;
        done += next.value.byteLength;
      }
      await reader.cancel();
      read += done;
    }));
  }
  postMessage(read);
}`;
