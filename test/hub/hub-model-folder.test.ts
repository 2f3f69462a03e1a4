import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { HubClient } from '../../src/hub';
import { buildPlan, loadModelMetadata, type ModelMetadata } from '../../src/plan';
import { HubModelFolder } from '../../src/storage/browser';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { makeHubModels, serveHubModels, TIES_YAML, type HubModels } from '../fakehub/models';
import { FakeHub } from '../fakehub/server';
import { tempDir } from '../cli/run-alloy';

let hub: FakeHub;
let models: HubModels;
let shardedDir: string;

beforeAll(async () => {
  hub = await FakeHub.start();
  models = await makeHubModels();
  serveHubModels(hub, models);
  const dir = (shardedDir = tempDir('alloy-sharded-'));
  const base = await makeTinyModel(join(dir, 'sharded'), { arch: 'qwen2', dtype: 'F16', shards: 3, seed: 4 });
  hub.addModelDir('alloy-test/sharded', base.dir);
  await makeFineTune(join(dir, 'sharded-ft'), base, { seed: 5 });
  hub.addModelDir('alloy-test/sharded-ft', join(dir, 'sharded-ft'));
});
afterAll(async () => {
  await hub.close();
  rmSync(models.root, { recursive: true, force: true });
  rmSync(shardedDir, { recursive: true, force: true });
});
beforeEach(() => hub.resetLog());

function headerBytes(file: string): number {
  const bytes = readFileSync(file);
  return 8 + Number(bytes.readBigUInt64LE(0));
}

describe('HubModelFolder', () => {
  it('reads a model’s metadata with a few KB: config.json plus the safetensors header, nothing of the weights', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const folder = await HubModelFolder.open(client, models.ids.a);
    const meta = await loadModelMetadata(folder, models.ids.a, models.ids.a);
    expect(meta.tensors.tensors.size).toBe(models.a.names.length);
    expect(meta.tensors.tensors.get('model.embed_tokens.weight')?.shape).toEqual([256, 64]);

    const weights = join(models.a.dir, 'model.safetensors');
    const fileSize = readFileSync(weights).byteLength;
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    const weightBytes = cdn.reduce((s, r) => s + r.bytesSent, 0);
    // The 8-byte length, then the header: exactly the header, two range requests.
    expect(cdn.map((r) => r.range)).toEqual(['bytes=0-7', `bytes=8-${headerBytes(weights) - 1}`]);
    expect(weightBytes).toBe(headerBytes(weights));
    expect(weightBytes).toBeLessThan(16 * 1024);
    expect(weightBytes / fileSize).toBeLessThan(0.05);
    // Small files read whole: config.json only (the index does not exist: no request for it).
    const resolved = hub.requests.filter((r) => r.server === 'hub' && r.path.includes('/resolve/'));
    expect(resolved.map((r) => r.path.split('/').pop())).toEqual(['config.json', 'model.safetensors', 'model.safetensors']);
  });

  it('reads every shard header of a sharded model through the index', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const folder = await HubModelFolder.open(client, 'alloy-test/sharded');
    const meta = await loadModelMetadata(folder, 'alloy-test/sharded');
    expect(meta.tensors.files).toEqual([
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
    ]);
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    expect(cdn.length).toBe(6);
    expect(cdn.every((r) => r.range !== null && r.status === 206)).toBe(true);
  });

  it('plans a TIES merge of fake-hub models from metadata alone', async () => {
    const client = new HubClient({ hubUrl: hub.url });
    const { config } = parseMergeConfig(TIES_YAML(models.ids));
    const metadata = new Map<string, ModelMetadata>();
    for (const id of Object.values(models.ids)) {
      metadata.set(id, await loadModelMetadata(await HubModelFolder.open(client, id), id, id));
    }
    const plan = buildPlan(config, metadata, { outputName: 'tiny-ties', randomSeed: 1 });
    expect(plan.jobs.length).toBe(models.base.names.length);
    expect(plan.jobs.every((j) => j.method === 'ties' || j.method === 'passthrough')).toBe(true);
    expect(plan.copyFiles.map((c) => c.file)).toContain('tokenizer.json');
    expect(plan.textFiles['README.md']).toContain(models.ids.a);
    // Planning read no weights beyond the headers.
    const weightBytes = hub.requests.filter((r) => r.server === 'cdn').reduce((s, r) => s + r.bytesSent, 0);
    const headers = [models.base, models.a, models.b].reduce((s, m) => s + headerBytes(join(m.dir, 'model.safetensors')), 0);
    expect(weightBytes).toBe(headers);
  });
});
