import type { EngineApi } from '../../worker/api';
import type { MockOptions } from '../dev/mock-engine';

/**
 * Connects the page to the engine: the real worker client (src/worker/client.ts, expected to export
 * `createEngineClient(): EngineApi`, i.e. a comlink Remote of the worker) when it exists, else the
 * mock engine. `?engine=mock` forces the mock (screenshots, demos). The glob keeps the build
 * working while the client does not exist yet.
 */

export interface EngineConnection {
  readonly api: EngineApi;
  readonly kind: 'worker' | 'mock';
  /** Why the mock is in use. */
  readonly reason?: string;
}

const clients = import.meta.glob<Record<string, unknown>>('../../worker/client.ts');

const FACTORY_NAMES = ['createEngineClient', 'createEngine', 'connectEngine', 'default'];

export function mockOptionsFrom(search: string): MockOptions {
  const flags = new Set((new URLSearchParams(search).get('mock') ?? '').split(',').filter(Boolean));
  return {
    ...(flags.has('slow') ? { slowdown: 3 } : flags.has('fast') ? { slowdown: 0.05 } : {}),
    ...(flags.has('cpu') ? { cpuFallback: true } : {}),
    ...(flags.has('quota') ? { quotaError: true } : {}),
    ...(flags.has('fast') ? { latencyMs: 20 } : {}),
  };
}

export async function connectEngine(search: string): Promise<EngineConnection> {
  const forceMock = new URLSearchParams(search).get('engine') === 'mock';
  const load = clients['../../worker/client.ts'];
  let reason = forceMock ? 'the page was opened with ?engine=mock' : 'the engine worker is not part of this build yet';
  if (!forceMock && load) {
    try {
      const module = await load();
      const name = FACTORY_NAMES.find((n) => typeof module[n] === 'function');
      if (name) {
        const api = (await (module[name] as () => EngineApi | Promise<EngineApi>)()) as EngineApi;
        return { api, kind: 'worker' };
      }
      reason = 'src/worker/client.ts exports no createEngineClient()';
    } catch (error) {
      reason = `the engine worker failed to start: ${(error as Error).message}`;
    }
  }
  const { createMockEngine } = await import('../dev/mock-engine');
  return { api: createMockEngine(mockOptionsFrom(search)), kind: 'mock', reason };
}
