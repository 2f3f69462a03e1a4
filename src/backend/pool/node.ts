import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createInThreadBackend } from './in-thread-backend';
import type { WorkerPort } from './protocol';
import { WorkerPoolBackend } from './worker-pool-backend';

/** The worker bundle's file name, next to the bundle that starts it (dist/cli, dist/bench). */
const WORKER_FILE = './pool-worker.js';

/** Threads the CLI uses by default: all cores. */
export function defaultThreadCount(): number {
  return Math.max(1, availableParallelism());
}

/** A worker_threads worker as a pool port; its crash or exit fails the pending chunks. */
export function nodeWorkerPort(url: URL): WorkerPort {
  const worker = new Worker(url);
  let closing = false;
  return {
    post: (message, transfer) => worker.postMessage(message, transfer),
    listen(onMessage, onFailure) {
      worker.on('message', onMessage);
      worker.on('error', (error) => onFailure(error));
      worker.on('messageerror', (error) => onFailure(error));
      worker.on('exit', (code) => {
        if (!closing) onFailure(new Error(`it exited with code ${code}`));
      });
    },
    async terminate() {
      closing = true;
      await worker.terminate();
    },
  };
}

/**
 * The CPU backend on `threads` worker_threads. `workerUrl` defaults to pool-worker.js beside the
 * running bundle (tests pass a freshly built one).
 */
export async function createNodeWorkerPool(options: { threads: number; workerUrl?: URL; cacheBytes?: number }): Promise<WorkerPoolBackend> {
  // A variable, not a literal: bundlers must leave this URL alone (the file is a separate entry).
  const file = WORKER_FILE;
  const url = options.workerUrl ?? new URL(file, import.meta.url);
  if (url.protocol === 'file:' && !existsSync(url)) {
    throw new Error(
      `the CPU worker bundle ${fileURLToPath(url)} is missing (running from sources?): build it with \`npm run build:cli\`, or use --threads 1`,
    );
  }
  // The workers start first: each takes ~40 ms to load its bundle and kernels, on other cores,
  // while this thread compiles its own kernels for the chunks it keeps (inThreadBelow).
  const ports = Array.from({ length: Math.max(1, Math.floor(options.threads)) }, () => nodeWorkerPort(url));
  const local = await createInThreadBackend().catch(async (error: unknown) => {
    await Promise.all(ports.map((p) => p.terminate()));
    throw error;
  });
  return new WorkerPoolBackend({ workers: ports.length, spawn: (i) => ports[i], local: local.backend, cacheBytes: options.cacheBytes });
}
