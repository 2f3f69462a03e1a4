import { createInThreadBackend } from './in-thread-backend';
import { webWorkerPort } from '../../storage/worker-port';
import type { PoolRequest, ChunkResponse, WorkerPort } from './protocol';
import { WorkerPoolBackend } from './worker-pool-backend';

/** A module Web Worker as a pool port; a load failure or an uncaught error fails the pending chunks. */
function browserWorkerPort(): WorkerPort {
  // Vite bundles the worker from this exact pattern (a nested worker of the engine worker).
  return webWorkerPort<PoolRequest, ChunkResponse>(new Worker(new URL('./browser-worker.ts', import.meta.url), { type: 'module', name: 'alloy-cpu' }));
}

/** Threads the app uses by default: the cores the browser reports. */
export function defaultBrowserThreads(): number {
  return Math.max(1, (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1);
}

/** The CPU backend on `threads` Web Workers (nested workers of the engine worker). */
export async function createBrowserWorkerPool(options: { threads: number; cacheBytes?: number }): Promise<WorkerPoolBackend> {
  const local = (await createInThreadBackend()).backend;
  return new WorkerPoolBackend({ workers: options.threads, spawn: browserWorkerPort, local, cacheBytes: options.cacheBytes });
}
