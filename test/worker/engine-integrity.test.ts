/**
 * Integrity in the worker (issue 10, item 5): every Hub file a merge reads is verified (LFS by
 * sha256, the others by git blob id), a tampered non-LFS safetensors file is refused with a
 * message naming it and nothing is written, and the plan and the result list what was verified.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EngineService } from '../../src/worker/engine-service';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { memoryOpfs } from '../helpers/memory-opfs';

let lfsHub: FakeHub;
let plainHub: FakeHub;
let models: HubModels;

beforeAll(async () => {
  lfsHub = await FakeHub.start();
  plainHub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(lfsHub, models);
  // Weights stored in git itself (no LFS): only their git blob ids vouch for them.
  serveHubModels(plainHub, models, { lfs: () => false });
});
afterAll(async () => {
  await lfsHub.close();
  await plainHub.close();
  rmSync(models.root, { recursive: true, force: true });
});
beforeEach(() => {
  for (const h of [lfsHub, plainHub]) {
    h.resetLog();
    h.faults = {};
  }
});

function service(hub: FakeHub): EngineService {
  const root = memoryOpfs().root;
  return new EngineService({
    storageRoot: async () => root,
    demoBaseUrl: 'http://127.0.0.1:9/demo-models/',
    defaults: { hubUrl: hub.url, download: { blockBytes: 32 * 1024, retries: 1, retryBaseDelayMs: 5 } },
  });
}

const request = (outputName: string) => ({ yaml: TIES_YAML(models.ids), models: [], outputName, backend: 'cpu' as const, randomSeed: 1 });

describe('EngineService integrity', () => {
  it('verifies non-LFS weights by git blob id: the plan says what will be verified, the result what was', async () => {
    const engine = service(plainHub);
    const plan = await engine.plan(request('plain'));
    expect(plan.ok, JSON.stringify(plan.errors)).toBe(true);
    const byModel = (x: { model: string }, y: { model: string }) => (x.model < y.model ? -1 : 1);
    expect([...(plan.verification?.onDownload ?? [])].sort(byModel)).toEqual(
      [models.ids.a, models.ids.b, models.ids.base].map((model) => ({ model, file: 'model.safetensors', hash: 'git-blob' })).sort(byModel),
    );
    expect(plan.verification?.verified).toContainEqual({ model: models.ids.a, file: 'config.json', hash: 'git-blob' });

    const result = await engine.merge(request('plain'), () => undefined);
    const weights = result.verified!.filter((v) => v.file === 'model.safetensors');
    expect(weights.map((v) => v.model).sort()).toEqual([models.ids.a, models.ids.b, models.ids.base].sort());
    expect(new Set(weights.map((v) => v.hash))).toEqual(new Set(['git-blob']));
    expect(result.verified).toContainEqual({ model: models.ids.base, file: 'config.json', hash: 'git-blob' });
    // Kept with the output: the Result step of a later visit shows it too.
    expect((await engine.listOutputs()).find((o) => o.outputName === 'plain')?.verified).toEqual(result.verified);
  });

  it('verifies LFS weights by sha256', async () => {
    const engine = service(lfsHub);
    const result = await engine.merge(request('lfs'), () => undefined);
    const weights = result.verified!.filter((v) => v.file === 'model.safetensors');
    expect(weights).toHaveLength(3);
    expect(new Set(weights.map((v) => v.hash))).toEqual(new Set(['sha256']));
  });

  it('refuses a tampered non-LFS safetensors file, naming it; nothing is written', async () => {
    const engine = service(plainHub);
    plainHub.faults = { tamper: (repo, path) => repo === models.ids.b && path === 'model.safetensors' };
    const error = await engine.merge(request('tampered'), () => undefined).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /the download of model\.safetensors from alloy-test\/ft-b is corrupt: its git blob id is [0-9a-f]{40}, the Hub says [0-9a-f]{40}\. It was discarded/,
    );
    expect(await engine.listOutputs()).toEqual([]);
  });
});
