/// <reference lib="webworker" />
/**
 * The engine's Web Worker: exposes EngineService (the EngineApi of ./api.ts) to the page with
 * comlink. Created by ./client.ts; everything heavy (downloads into OPFS, the merge, uploads)
 * runs here so the page never blocks.
 */
import * as Comlink from 'comlink';
import { createBrowserWorkerPool, defaultBrowserThreads } from '../backend/pool/browser';
import { opfsWriterThread } from '../storage/browser';
import { EngineService } from './engine-service';

declare const self: DedicatedWorkerGlobalScope;

const service = new EngineService({
  storageRoot: () => navigator.storage.getDirectory(),
  demoBaseUrl: new URL(`${import.meta.env.BASE_URL}demo-models/`, self.location.origin).href,
  gpu: () => (navigator as Navigator & { gpu?: GPU }).gpu,
  estimateStorage: () => navigator.storage.estimate(),
  // The CPU backend's workers are nested workers of this one (module workers, no SharedArrayBuffer).
  cpuPool: (threads, cacheBytes) => createBrowserWorkerPool({ threads, cacheBytes }),
  defaultThreads: defaultBrowserThreads,
  // Output files are written on a thread of their own: a SyncAccessHandle's write blocks its thread.
  opfsWriter: opfsWriterThread,
});

Comlink.expose(service);
