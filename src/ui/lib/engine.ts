import type { EngineApi } from '../../worker/api';
import { createEngineClient } from '../../worker/client';

/**
 * Connects the page to the engine. The app (src/ui/main.ts) uses the engine worker; the dev/test
 * entry mock.html (src/ui/dev/mock-main.ts) passes a connection to the mock engine instead, so the
 * mock is never part of the production bundle.
 */

export interface EngineConnection {
  readonly api: EngineApi;
  readonly kind: 'worker' | 'mock';
  /** Why the mock is in use. */
  readonly reason?: string;
}

/** How the page gets its engine (App's `connect` property). */
export type ConnectEngine = () => Promise<EngineConnection>;

/** The engine worker (src/worker/engine-worker.ts) through its comlink client. */
export async function connectWorker(): Promise<EngineConnection> {
  return { api: createEngineClient(), kind: 'worker' };
}
