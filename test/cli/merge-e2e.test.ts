import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { expectWithinUlp, magnitudes } from '../helpers/ulp';
import { linearRef, slerpRef, tiesRef } from './reference-math';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

/** Layer-gradient value at layer idx of L (docs/config.md §4), written independently. */
function gradient(values: number[], idx: number, layers: number): number {
  const t = layers === 1 ? 1 : idx / (layers - 1);
  const s = t * (values.length - 1);
  const i0 = Math.floor(s);
  const i1 = Math.min(values.length - 1, i0 + 1);
  return (1 - (s - i0)) * values[i0] + (s - i0) * values[i1];
}

function layerOf(name: string): number | null {
  const m = /\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

describe('alloy merge on tiny Llama models (bf16)', () => {
  let dir: string;
  let base: TinyModel;
  let a: TinyModel;
  let b: TinyModel;
  beforeAll(async () => {
    dir = tempDir();
    base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'BF16', seed: 1, numLayers: 3 });
    a = await makeFineTune(join(dir, 'ft-a'), base, { seed: 2, deltaScale: 0.02 });
    b = await makeFineTune(join(dir, 'ft-b'), base, { seed: 3, deltaScale: 0.02 });
  });

  it('linear: every tensor is the weighted average, rounded to bf16', async () => {
    writeConfig(dir, 'linear.yml', [
      'models:',
      '  - model: ./ft-a',
      '    parameters: {weight: 1.0}',
      '  - model: ./ft-b',
      '    parameters: {weight: 0.5}',
      '  - model: ./base',
      '    parameters: {weight: 0.25}',
      'merge_method: linear',
      'dtype: bfloat16',
    ].join('\n'));
    const r = await runAlloy(['merge', 'linear.yml', 'out-linear'], dir);
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    const out = readModelDir(join(dir, 'out-linear'));
    expect([...out.tensors.keys()].sort()).toEqual([...base.names].sort());
    for (const name of base.names) {
      const t = out.tensors.get(name)!;
      expect(t.dtype).toBe('BF16');
      expect(t.shape).toEqual([...base.shapes.get(name)!]);
      const xs = [a.values.get(name)!, b.values.get(name)!, base.values.get(name)!];
      const expected = linearRef(xs, [1, 0.5, 0.25]);
      expectWithinUlp(t.values, expected, 'BF16', 1, name, magnitudes(...xs));
    }
    const config = JSON.parse(readFileSync(join(dir, 'out-linear', 'config.json'), 'utf8'));
    expect(config.torch_dtype).toBe('bfloat16');
    expect(config.num_hidden_layers).toBe(3);
    expect(readFileSync(join(dir, 'out-linear', 'mergekit_config.yml'), 'utf8')).toContain('merge_method: linear');
    const card = readFileSync(join(dir, 'out-linear', 'README.md'), 'utf8');
    expect(card).toMatch(/^---\n/);
    expect(card).toContain('library_name: transformers');
    expect(card).toContain('- alloy');
    expect(card).toContain('This model was merged using the [Linear](https://arxiv.org/abs/2203.05482) merge method.');
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      expect(readFileSync(join(dir, 'out-linear', f), 'utf8')).toBe(readFileSync(join(dir, 'base', f), 'utf8'));
    }
  });

  it('slerp with a per-layer gradient on t follows the gradient layer by layer', async () => {
    const tGrad = [0, 0.5, 1];
    writeConfig(dir, 'slerp.yml', [
      'slices:',
      '  - sources:',
      '      - model: ./ft-a',
      '        layer_range: [0, 3]',
      '      - model: ./ft-b',
      '        layer_range: [0, 3]',
      'merge_method: slerp',
      'base_model: ./ft-a',
      'parameters:',
      '  t:',
      `    - filter: self_attn`,
      `      value: [${tGrad.join(', ')}]`,
      '    - value: 0.3',
      'dtype: float32',
    ].join('\n'));
    const r = await runAlloy(['merge', 'slerp.yml', 'out-slerp', '--quiet'], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = readModelDir(join(dir, 'out-slerp'));
    for (const name of base.names) {
      const layer = layerOf(name);
      const t = name.includes('self_attn') && layer !== null ? gradient(tGrad, layer, 3) : 0.3;
      const expected = slerpRef(a.values.get(name)!, b.values.get(name)!, t);
      const got = out.tensors.get(name)!;
      expect(got.dtype).toBe('F32');
      expectWithinUlp(got.values, expected, 'F32', 1, name, magnitudes(a.values.get(name)!, b.values.get(name)!));
    }
  });

  it('passthrough frankenmerge stacks layer ranges and rewrites num_hidden_layers', async () => {
    writeConfig(dir, 'stack.yml', [
      'slices:',
      '  - sources:',
      '      - model: ./ft-a',
      '        layer_range: [0, 2]',
      '  - sources:',
      '      - model: ./ft-b',
      '        layer_range: [1, 3]',
      '  - sources:',
      '      - model: ./ft-b',
      '        layer_range: [2, 3]',
      '        parameters:',
      '          scale:',
      '            - filter: o_proj',
      '              value: 0.5',
      '            - value: 1',
      'merge_method: passthrough',
    ].join('\n'));
    const r = await runAlloy(['merge', 'stack.yml', 'out-stack', '--quiet'], dir);
    expect(r.code).toBe(0);
    const out = readModelDir(join(dir, 'out-stack'));
    const config = JSON.parse(readFileSync(join(dir, 'out-stack', 'config.json'), 'utf8'));
    expect(config.num_hidden_layers).toBe(5);
    const source: [TinyModel, number][] = [[a, 0], [a, 1], [b, 1], [b, 2], [b, 2]];
    for (let layer = 0; layer < 5; layer++) {
      const [model, from] = source[layer];
      for (const name of model.names.filter((n) => layerOf(n) === from)) {
        const outName = name.replace(`.layers.${from}.`, `.layers.${layer}.`);
        const got = out.tensors.get(outName)!;
        const want = model.values.get(name)!;
        const scale = layer === 4 && name.includes('o_proj') ? 0.5 : 1;
        expect(Array.from(got.values), outName).toEqual(Array.from(want, (v) => v * scale));
      }
    }
    // embeddings from the first slice's model, norm and lm_head from the last slice's
    expect(Buffer.from(out.tensors.get('model.embed_tokens.weight')!.raw).equals(Buffer.from(readModelDir(join(dir, 'ft-a')).tensors.get('model.embed_tokens.weight')!.raw))).toBe(true);
    expect(Array.from(out.tensors.get('lm_head.weight')!.values)).toEqual(Array.from(b.values.get('lm_head.weight')!));
    expect(out.tensors.size).toBe(2 + 5 * 9 + 1);
  });
});

describe('alloy merge on tiny Qwen2 models (f16, sharded)', () => {
  let dir: string;
  let base: TinyModel;
  let fts: TinyModel[];
  beforeAll(async () => {
    dir = tempDir();
    base = await makeTinyModel(join(dir, 'base'), { arch: 'qwen2', dtype: 'F16', seed: 11, shards: 3, numLayers: 4 });
    fts = [
      await makeFineTune(join(dir, 'ft1'), base, { seed: 12, deltaScale: 0.05 }),
      await makeFineTune(join(dir, 'ft2'), base, { seed: 13, deltaScale: 0.05, shards: 2 }),
    ];
  });

  it('ties with a density gradient matches the reference math and shards the output', async () => {
    const densityGrad = [1, 0.7, 0.1];
    writeConfig(dir, 'ties.yml', [
      'models:',
      '  - model: ./base',
      '  - model: ./ft1',
      '    parameters:',
      `      density: [${densityGrad.join(', ')}]`,
      '      weight: 0.7',
      '  - model: ./ft2',
      '    parameters:',
      '      density: 0.5',
      '      weight: 0.5',
      'merge_method: ties',
      'base_model: ./base',
      'parameters:',
      '  normalize: true',
      'dtype: float16',
    ].join('\r\n'));
    const r = await runAlloy(['merge', 'ties.yml', 'out-ties', '--out-shard-size', '20k', '--memory', '64k'], dir);
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(join(dir, 'out-ties')).filter((f) => f.endsWith('.safetensors')).sort();
    expect(files.length).toBeGreaterThan(1);
    expect(files[0]).toBe(`model-00001-of-${String(files.length).padStart(5, '0')}.safetensors`);
    const out = readModelDir(join(dir, 'out-ties'));
    expect(out.index?.metadata?.total_size).toBe([...out.tensors.values()].reduce((s, t) => s + t.raw.length, 0));
    for (const name of base.names) {
      const layer = layerOf(name);
      const d1 = layer === null ? densityGrad[0] : gradient(densityGrad, layer, 4);
      const expected = tiesRef(base.values.get(name)!, fts.map((f) => f.values.get(name)!), [0.7, 0.5], [d1, 0.5]);
      const got = out.tensors.get(name)!;
      expect(got.dtype).toBe('F16');
      expectWithinUlp(got.values, expected, 'F16', 1, name, magnitudes(base.values.get(name)!, ...fts.map((f) => f.values.get(name)!)));
    }
  });

  it('task_arithmetic with lambda on the sharded inputs', async () => {
    writeConfig(dir, 'ta.yml', [
      'models:',
      '  - {model: ./ft1, parameters: {weight: 0.6}}',
      '  - {model: ./ft2, parameters: {weight: 0.4}}',
      'merge_method: task_arithmetic',
      'base_model: ./base',
      'parameters: {lambda: 0.8}',
      'out_dtype: float32',
    ].join('\n'));
    const r = await runAlloy(['merge', 'ta.yml', 'out-ta', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = readModelDir(join(dir, 'out-ta'));
    expect(out.files).toEqual(['model.safetensors']);
    for (const name of base.names) {
      const expected = tiesRef(base.values.get(name)!, fts.map((f) => f.values.get(name)!), [0.6, 0.4], [1, 1], {
        consensus: false,
        normalize: false,
        lambda: 0.8,
      });
      const scale = magnitudes(base.values.get(name)!, ...fts.map((f) => f.values.get(name)!));
      expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 1, name, scale);
    }
  });
});

describe('alloy merge refuses bad input and leaves no output', () => {
  it('reports a truncated shard with exit 1 and writes nothing', async () => {
    const dir = tempDir();
    const base = await makeTinyModel(join(dir, 'base'), { seed: 5 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 6 });
    const shard = join(dir, 'ft', 'model.safetensors');
    const bytes = readFileSync(shard);
    writeFileSync(shard, bytes.subarray(0, bytes.length - 10));
    writeConfig(dir, 'c.yml', 'models:\n  - model: ./base\n    parameters: {weight: 1}\n  - model: ./ft\n    parameters: {weight: 1}\nmerge_method: linear\n');
    const r = await runAlloy(['merge', 'c.yml', 'out', '--quiet'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('model.safetensors');
    expect(readdirSync(dir).sort()).toEqual(['base', 'c.yml', 'ft']);
  });

  it('exits 2 with the YAML path on an invalid config', async () => {
    const dir = tempDir();
    writeConfig(dir, 'c.yml', 'models:\n  - model: ./a\nmerge_method: linear\ndtype: bf16\n');
    const r = await runAlloy(['merge', 'c.yml', 'out'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dtype');
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('exits 2 on unknown options', async () => {
    const r = await runAlloy(['merge', '--bogus'], tempDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--bogus');
  });

  it('exits 2 on a --memory size it does not understand, and says it is a memory size', async () => {
    const r = await runAlloy(['merge', 'c.yml', 'out', '--memory', '1G'], tempDir());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--memory: memory size "1G" is not understood');
  });
});
