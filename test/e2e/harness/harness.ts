/**
 * A page for the e2e tests that drives the engine worker alone (no UI): it starts the worker
 * through src/worker/client.ts and exposes it as `window.alloyHarness`; tests call it with
 * `page.evaluate`. Progress events are kept in `events` so tests can look at them.
 */
import type { PushProgress, RunProgress } from '../../../src/worker/api';
import { createEngineClient, type EngineClient } from '../../../src/worker/client';

export interface Harness {
  readonly engine: EngineClient;
  readonly events: RunProgress[];
  readonly pushEvents: PushProgress[];
  /** Runs a merge, recording progress; resolves to the result or `{error}`. */
  merge(request: Parameters<EngineClient['merge']>[0]): Promise<Awaited<ReturnType<EngineClient['merge']>> | { error: string }>;
  /** An output file as base64. */
  outputBase64(outputName: string, file: string): Promise<string>;
}

const engine = createEngineClient();
const events: RunProgress[] = [];
const pushEvents: PushProgress[] = [];

const harness: Harness = {
  engine,
  events,
  pushEvents,
  async merge(request) {
    try {
      return await engine.merge(request, (p) => events.push(p));
    } catch (error) {
      return { error: (error as Error).message };
    }
  },
  async outputBase64(outputName, file) {
    const blob = await engine.outputFile(outputName, file);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  },
};

(window as unknown as { alloyHarness: Harness }).alloyHarness = harness;
document.getElementById('status')!.textContent = 'ready';
