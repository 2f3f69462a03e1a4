import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { buildPlan, loadModelMetadata, PlanError, type ModelMetadata } from '../../src/plan';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { tempDir } from '../cli/run-alloy';

async function metadata(dir: string, keys: Record<string, string>, hub: Record<string, string> = {}): Promise<Map<string, ModelMetadata>> {
  const map = new Map<string, ModelMetadata>();
  for (const [key, folder] of Object.entries(keys)) {
    map.set(key, await loadModelMetadata(nodeModelFolder(join(dir, folder), key), key, hub[key]));
  }
  return map;
}

function plan(yaml: string, models: Map<string, ModelMetadata>, options = {}) {
  return buildPlan(parseMergeConfig(yaml).config, models, options);
}

describe('buildPlan', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1, numLayers: 3 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2 });
    await makeTinyModel(join(dir, 'tied'), { seed: 3, numLayers: 3, tied: true });
    await makeTinyModel(join(dir, 'qwen'), { arch: 'qwen2', seed: 4, numLayers: 3 });
    await makeTinyModel(join(dir, 'bigvocab'), { seed: 5, numLayers: 3, vocabSize: 80 });
    await makeTinyModel(join(dir, 'noq'), { seed: 6, numLayers: 3, omit: ['model.layers.1.self_attn.q_proj.weight'] });
  });

  it('resolves parameters with mergekit precedence and gradients per layer (t = 0 for embeddings)', async () => {
    const models = await metadata(dir, { base: 'base', ft: 'ft' });
    const p = plan(
      [
        'models:',
        '  - model: base',
        '  - model: ft',
        '    parameters:',
        '      weight: [0, 1]',
        '      density: [{filter: mlp, value: 0.5}]',
        'base_model: base',
        'merge_method: ties',
        'parameters: {weight: 0.3, density: 0.9, normalize: false}',
      ].join('\n'),
      models,
    );
    const job = (name: string) => p.jobs.find((j) => j.name === name)!;
    const ft = (name: string) => job(name).inputs.find((i) => i.model === 'ft')!.params;
    expect(ft('model.embed_tokens.weight')).toEqual({ weight: 0, density: 0.9 });
    expect(ft('model.layers.1.self_attn.q_proj.weight')).toEqual({ weight: 0.5, density: 0.9 });
    expect(ft('model.layers.2.mlp.up_proj.weight')).toEqual({ weight: 1, density: 0.5 });
    expect(ft('lm_head.weight').weight).toBe(0);
    // the base needs no weight; it gets the top-level one anyway (mergekit resolves it too)
    expect(job('model.norm.weight').inputs[job('model.norm.weight').baseIndex].model).toBe('base');
    expect(job('model.norm.weight').params).toEqual({ normalize: 0, rescale: 0, int8_mask: 0, lambda: 1 });
  });

  it('lists tensors in mergekit order and keeps models: layer counts', async () => {
    const models = await metadata(dir, { base: 'base', ft: 'ft' });
    const p = plan('models:\n  - {model: base, parameters: {weight: 1}}\n  - {model: ft, parameters: {weight: 1}}\nmerge_method: linear\n', models);
    expect(p.jobs[0].name).toBe('model.embed_tokens.weight');
    expect(p.jobs[1].name).toBe('model.layers.0.input_layernorm.weight');
    expect(p.jobs.slice(-2).map((j) => j.name)).toEqual(['model.norm.weight', 'lm_head.weight']);
    expect(p.jobs).toHaveLength(1 + 3 * 9 + 2);
    expect(JSON.parse(p.textFiles['config.json']).num_hidden_layers).toBe(3);
    expect(p.shards).toEqual([{ file: 'model.safetensors', tensors: p.jobs.map((j) => j.name), byteLength: p.totalOutputBytes }]);
  });

  it('renumbers slice layers and rewrites num_hidden_layers', async () => {
    const models = await metadata(dir, { base: 'base', ft: 'ft' });
    const p = plan(
      'slices:\n  - sources: [{model: base, layer_range: [0, 3]}]\n  - sources: [{model: ft, layer_range: [1, 3]}]\nmerge_method: passthrough\n',
      models,
    );
    const l4 = p.jobs.find((j) => j.name === 'model.layers.4.mlp.down_proj.weight')!;
    expect(l4.inputs).toHaveLength(1);
    expect(l4.inputs[0].model).toBe('ft');
    expect(l4.inputs[0].tensor.name).toBe('model.layers.2.mlp.down_proj.weight');
    expect(JSON.parse(p.textFiles['config.json']).num_hidden_layers).toBe(5);
    expect(p.jobs.find((j) => j.name === 'lm_head.weight')!.inputs[0].model).toBe('ft');
  });

  it('takes lm_head from tied models\' embeddings when another model has one, and warns about a tied donor', async () => {
    const models = await metadata(dir, { tied: 'tied', base: 'base' });
    const p = plan('models:\n  - {model: tied, parameters: {weight: 1}}\n  - {model: base, parameters: {weight: 1}}\nmerge_method: linear\n', models);
    const head = p.jobs.find((j) => j.name === 'lm_head.weight')!;
    expect(head.inputs.map((i) => [i.model, i.tensor.name])).toEqual([
      ['tied', 'model.embed_tokens.weight'],
      ['base', 'lm_head.weight'],
    ]);
    expect(p.warnings.join('\n')).toMatch(/tie_word_embeddings: true/);
  });

  it('writes no lm_head when every model is tied', async () => {
    const models = await metadata(dir, { tied: 'tied' });
    const p = plan('models:\n  - {model: tied, parameters: {weight: 1}}\nmerge_method: linear\n', models);
    expect(p.jobs.some((j) => j.name === 'lm_head.weight')).toBe(false);
  });

  it('refuses different architectures unless crimes are allowed', async () => {
    const models = await metadata(dir, { base: 'base', qwen: 'qwen' });
    const yaml = 'models:\n  - {model: base, parameters: {weight: 1}}\n  - {model: qwen, parameters: {weight: 1}}\nmerge_method: linear\n';
    expect(() => plan(yaml, models)).toThrow(/different architectures.*LlamaForCausalLM.*Qwen2ForCausalLM.*--allow-crimes/s);
    // --allow-crimes skips only that check: shapes must still agree (mergekit issue #290)
    expect(() => plan(yaml, models, { allowCrimes: true })).toThrow(/tensor size mismatch for model\.layers\.0\.self_attn\.q_proj\.weight: base \[32, 32\], qwen \[32, 48\]/);
  });

  it('names the tensor and model when a required tensor is missing', async () => {
    const models = await metadata(dir, { base: 'base', noq: 'noq' });
    expect(() =>
      plan('models:\n  - {model: base, parameters: {weight: 1}}\n  - {model: noq, parameters: {weight: 1}}\nmerge_method: linear\n', models),
    ).toThrow(/model\.layers\.1\.self_attn\.q_proj\.weight is required but not present in model noq/);
  });

  it('cuts embeddings to the smallest vocabulary for linear and warns', async () => {
    const models = await metadata(dir, { base: 'base', big: 'bigvocab' });
    const p = plan('models:\n  - {model: base, parameters: {weight: 1}}\n  - {model: big, parameters: {weight: 1}}\nmerge_method: linear\n', models);
    const embed = p.jobs.find((j) => j.name === 'model.embed_tokens.weight')!;
    expect(embed.shape).toEqual([64, 32]);
    expect(embed.inputs[1].tensor.shape).toEqual([80, 32]);
    expect(p.warnings.join('\n')).toMatch(/embedding sizes differ/);
  });

  it('shards by bytes like mergekit and writes the index', async () => {
    const models = await metadata(dir, { base: 'base', ft: 'ft' });
    const p = plan('models:\n  - {model: base, parameters: {weight: 1}}\n  - {model: ft, parameters: {weight: 1}}\nmerge_method: linear\n', models, {
      outShardSize: 10_000,
    });
    expect(p.shards.length).toBeGreaterThan(2);
    for (const shard of p.shards.slice(0, -1)) expect(shard.byteLength).toBeLessThanOrEqual(10_000 + 64 * 32 * 4);
    const index = JSON.parse(p.textFiles['model.safetensors.index.json']);
    expect(index.metadata.total_size).toBe(p.totalOutputBytes);
    expect(Object.keys(index.weight_map)).toHaveLength(p.jobs.length);
  });

  it('records the seed in the model card for methods that draw random numbers, and only for those', async () => {
    const models = await metadata(dir, { base: 'base', ft: 'ft' });
    const yaml = (method: string) =>
      `models:\n  - {model: ft, parameters: {weight: 1, density: 0.5}}\nbase_model: base\nmerge_method: ${method}\n`;
    expect(plan(yaml('dare_ties'), models, { randomSeed: 4242 }).textFiles['README.md']).toContain('seed 4242 (`--random-seed 4242` reproduces this merge)');
    expect(plan(yaml('ties'), models, { randomSeed: 4242 }).textFiles['README.md']).not.toContain('4242');
  });

  it('lists Hub models in the model card front matter and links them', async () => {
    const models = await metadata(dir, { 'org/base': 'base', 'org/ft': 'ft' }, { 'org/base': 'org/base', 'org/ft': 'org/ft' });
    const p = plan(
      'models:\n  - model: org/ft\n    parameters: {weight: 1}\nbase_model: org/base\nmerge_method: task_arithmetic\n',
      models,
      { outputName: 'my-merge' },
    );
    const card = p.textFiles['README.md'];
    expect(card).toContain('base_model:\n- org/ft\n- org/base\n');
    expect(card).toContain('# my-merge');
    expect(card).toContain('using [org/base](https://huggingface.co/org/base) as a base');
    expect(card).toContain('* [org/ft](https://huggingface.co/org/ft)');
    expect(card).not.toContain('* [org/base]');

    // Models from another Hub (a mirror, a test hub) link there.
    const mirrored = plan(
      'models:\n  - model: org/ft\n    parameters: {weight: 1}\nbase_model: org/base\nmerge_method: task_arithmetic\n',
      models,
      { outputName: 'my-merge', hubUrl: 'https://hub.example.org/' },
    ).textFiles['README.md'];
    expect(mirrored).toContain('using [org/base](https://hub.example.org/org/base) as a base');
    expect(mirrored).toContain('* [org/ft](https://hub.example.org/org/ft)');
    expect(mirrored).not.toContain('huggingface.co/org');
  });

  it('builds a tokenizer only from metadata that has the tokenizer files (test/plan/tokenizer-plan.test.ts)', async () => {
    const models = await metadata(dir, { base: 'base' });
    expect(() => plan('models:\n  - {model: base, parameters: {weight: 1}}\nmerge_method: linear\ntokenizer_source: union\n', models)).toThrow(/tokenizer files of base were not loaded/);
  });
});
