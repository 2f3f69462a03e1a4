import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExtractProgress, ExtractRequest } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { runAlloy } from '../cli/run-alloy';
import { makeHubModels, serveHubModels, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { memoryOpfs } from '../helpers/memory-opfs';

/**
 * "Extract a LoRA" in the worker (docs/lora.md §2): the adapter extracted from fake-hub models
 * (downloaded through the verified cache) is byte for byte what `alloy extract-lora` writes from
 * the same files with the same options; problems are listed by the plan and nothing is written.
 */
let hub: FakeHub;
let models: HubModels;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
});

function service(): EngineService {
  return new EngineService({
    storageRoot: async () => memoryOpfs().root,
    demoBaseUrl: 'http://127.0.0.1:9/unused/',
    defaults: { hubUrl: hub.url, download: { blockBytes: 32 * 1024, retries: 1, retryBaseDelayMs: 5 } },
  });
}

const request = (outputName: string, options: ExtractRequest['options'], base = models.ids.base): ExtractRequest => ({
  fineTuned: { kind: 'hub', repo: models.ids.a },
  base: { kind: 'hub', repo: base },
  options,
  outputName,
});

describe('Extract a LoRA in the worker', () => {
  it('plans, then extracts from Hub models: the same adapter files as `alloy extract-lora`, with per-module progress', async () => {
    const engine = service();
    const options = { maxRank: 8, excludeRegexes: ['k_proj'], skipUndecomposable: true, randomSeed: 3 };
    const plan = await engine.planExtraction(request('lora8', options));
    expect(plan.errors).toEqual([]);
    expect(plan.ok).toBe(true);
    // 3 layers × (q, v, o, gate, up, down) linear modules; k_proj excluded; embeddings and lm_head saved whole.
    expect(plan.modules.length).toBe(18);
    expect(plan.modules.find((m) => m.module === 'model.layers.0.self_attn.q_proj')).toEqual({ module: 'model.layers.0.self_attn.q_proj', shape: [64, 64], maxRank: 8, embedding: false });
    expect([...plan.savedTensors].sort()).toEqual(['lm_head.weight', 'model.embed_tokens.weight']);
    expect(plan.downloadBytes).toBe(readFileSync(join(models.a.dir, 'model.safetensors')).byteLength + readFileSync(join(models.base.dir, 'model.safetensors')).byteLength);

    const progress: ExtractProgress[] = [];
    const result = await engine.extractLora(request('lora8', options), (p) => progress.push(p));
    expect(result.files.map((f) => f.name).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const last = progress.at(-1)!;
    expect(last.phase).toBe('done');
    expect(last.modulesDone).toBe(18);
    expect(last.modules.every((m) => m.rank === 8 && m.relativeError > 0 && m.relativeError < 1)).toBe(true);
    expect(result.verified?.map((v) => v.model).sort()).toEqual([models.ids.a, models.ids.base].sort());

    const cli = await runAlloy(
      ['extract-lora', '--model', models.ids.a, '--base-model', models.ids.base, '--out-path', 'cli-lora8', '--max-rank', '8', '-e', 'k_proj', '--skip-undecomposable', '--random-seed', '3', '--quiet'],
      models.root,
    );
    expect(cli.code, cli.stderr).toBe(0);
    for (const file of ['adapter_model.safetensors', 'adapter_config.json']) {
      const ours = Buffer.from(await (await engine.outputFile('lora8', file)).arrayBuffer());
      expect(ours.equals(readFileSync(join(models.root, 'cli-lora8', file))), file).toBe(true);
    }
  });

  it('lists problems instead of extracting (a bad rank, a missing base model); nothing is written or downloaded', async () => {
    const engine = service();
    const bad = await engine.planExtraction(request('x', { maxRank: 0 }));
    expect(bad.ok).toBe(false);
    expect(bad.errors).toEqual(['the rank must be a whole number ≥ 1, not 0']);
    const gone = await engine.planExtraction({ ...request('x', {}), base: { kind: 'hub', repo: 'alloy-test/nope' } });
    expect(gone.errors.length).toBe(1);
    expect(gone.errors[0]).toMatch(/^Base model: Model alloy-test\/nope: /);
    await expect(engine.extractLora({ ...request('x', {}), base: { kind: 'hub', repo: 'alloy-test/nope' } }, () => {})).rejects.toThrow(/^Base model: Model alloy-test\/nope/);
    expect(await engine.listOutputs()).toEqual([]);
    expect(await engine.listCache()).toEqual([]);
  });

  it('cancels an extraction once it extracts: nothing is kept among the outputs', async () => {
    const engine = service();
    let cancelled = false;
    const run = engine.extractLora(request('cancelled', { maxRank: 4 }), (p) => {
      if (p.phase === 'extracting' && !cancelled) {
        cancelled = true;
        void engine.cancel();
      }
    });
    await expect(run).rejects.toThrow('The extraction was cancelled; nothing was written.');
    expect(cancelled).toBe(true);
    expect(await engine.listOutputs()).toEqual([]);
    // The worker is free again: the same extraction runs to the end.
    const again = await engine.extractLora(request('cancelled', { maxRank: 4 }), () => {});
    expect(again.files.map((f) => f.name).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  });
});
