import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import {
  arceeFusionRef,
  karcherRef,
  modelStockRef,
  multislerpRef,
  nearswapRef,
  nuslerpRef,
  ramRef,
  sceRef,
} from '../helpers/method-references';
import { expectWithinUlp, magnitudes } from '../helpers/ulp';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

/**
 * One end-to-end `alloy merge` per method of docs/methods.md §8–15 on tiny f32 Llama
 * models, every output tensor checked against the independent references in
 * test/helpers/method-references.ts.
 */
describe('alloy merge with nuslerp, multislerp, karcher, model_stock, nearswap, arcee_fusion, sce, ram, ramplus_tl', () => {
  let dir: string;
  let base: TinyModel;
  let fts: TinyModel[];
  let sparse: TinyModel[];
  beforeAll(async () => {
    dir = tempDir();
    base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'F32', seed: 21, numLayers: 2 });
    fts = [
      await makeFineTune(join(dir, 'ft1'), base, { seed: 22, deltaScale: 0.01 }),
      await makeFineTune(join(dir, 'ft2'), base, { seed: 23, deltaScale: 0.01 }),
      await makeFineTune(join(dir, 'ft3'), base, { seed: 24, deltaScale: 0.01 }),
    ];
    sparse = [
      await makeFineTune(join(dir, 'sp1'), base, { seed: 25, deltaScale: 0.01, deltaDensity: 0.4 }),
      await makeFineTune(join(dir, 'sp2'), base, { seed: 26, deltaScale: 0.01, deltaDensity: 0.4 }),
    ];
  });

  async function merge(name: string, yaml: string[], extra: string[] = []): Promise<ReturnType<typeof readModelDir>> {
    writeConfig(dir, `${name}.yml`, [...yaml, 'dtype: float32'].join('\n'));
    const r = await runAlloy(['merge', `${name}.yml`, `out-${name}`, '--quiet', ...extra], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = readModelDir(join(dir, `out-${name}`));
    expect([...out.tensors.keys()].sort()).toEqual([...base.names].sort());
    return out;
  }
  const v = (m: TinyModel, name: string): Float32Array => m.values.get(name)!;
  const shapeOf = (name: string): number[] => [...base.shapes.get(name)!];

  it('nuslerp (row_wise, with a base)', async () => {
    const out = await merge('nuslerp', [
      'models:',
      '  - {model: ./ft1, parameters: {weight: 0.6}}',
      '  - {model: ./ft2, parameters: {weight: 0.4}}',
      'merge_method: nuslerp',
      'base_model: ./base',
      'parameters: {nuslerp_flatten: false, nuslerp_row_wise: true}',
    ], ['--memory', '64k']);
    for (const name of base.names) {
      const expected = nuslerpRef(v(fts[0], name), v(fts[1], name), v(base, name), 0.6, 0.4, shapeOf(name), { flatten: false, rowWise: true });
      const got = out.tensors.get(name)!;
      expect(got.dtype).toBe('F32');
      expectWithinUlp(got.values, expected, 'F32', 2, name, magnitudes(v(base, name), v(fts[0], name), v(fts[1], name)));
    }
  });

  it('multislerp (three models, with a base)', async () => {
    const out = await merge('multislerp', [
      'models:',
      '  - {model: ./ft1, parameters: {weight: 0.5}}',
      '  - {model: ./ft2, parameters: {weight: 0.3}}',
      '  - {model: ./ft3, parameters: {weight: 0.2}}',
      'merge_method: multislerp',
      'base_model: ./base',
    ]);
    for (const name of base.names) {
      const xs = fts.map((f) => v(f, name));
      const expected = multislerpRef(xs, v(base, name), [0.5, 0.3, 0.2]);
      expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 4, name, magnitudes(v(base, name), ...xs));
    }
  });

  it('karcher (the base averaged as a member)', async () => {
    const out = await merge('karcher', [
      'models:',
      '  - model: ./ft1',
      '  - model: ./ft2',
      '  - model: ./base',
      'merge_method: karcher',
      'parameters: {max_iter: 20, tol: 1.0e-7}',
    ]);
    for (const name of base.names) {
      const xs = [v(fts[0], name), v(fts[1], name), v(base, name)];
      expectWithinUlp(out.tensors.get(name)!.values, karcherRef(xs, 20, 1e-7), 'F32', 4, name, magnitudes(...xs));
    }
  });

  it('model_stock (filter_wise)', async () => {
    const out = await merge('model_stock', [
      'models:',
      '  - model: ./ft1',
      '  - model: ./ft2',
      '  - model: ./ft3',
      'merge_method: model_stock',
      'base_model: ./base',
      'parameters: {filter_wise: true}',
    ]);
    for (const name of base.names) {
      const xs = fts.map((f) => v(f, name));
      const expected = modelStockRef(v(base, name), xs, shapeOf(name), true);
      expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 2, name, magnitudes(v(base, name), ...xs));
    }
  });

  it('nearswap', async () => {
    const out = await merge('nearswap', [
      'models:',
      '  - model: ./ft1',
      'merge_method: nearswap',
      'base_model: ./base',
      'parameters: {t: 0.004}',
    ]);
    for (const name of base.names) {
      const expected = nearswapRef(v(base, name), v(fts[0], name), 0.004);
      expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 1, name, magnitudes(v(base, name), v(fts[0], name)));
    }
  });

  it('arcee_fusion (exact quantiles; outliers take the other model)', async () => {
    const out = await merge('arcee_fusion', [
      'models:',
      '  - model: ./ft1',
      '  - model: ./base',
      'merge_method: arcee_fusion',
      'base_model: ./base',
    ]);
    let taken = 0;
    for (const name of base.names) {
      const b = v(base, name);
      const x = v(fts[0], name);
      const ref = arceeFusionRef(b, x, shapeOf(name));
      const got = out.tensors.get(name)!;
      expect(got.dtype).toBe('F32');
      for (let i = 0; i < b.length; i++) {
        // The KL of two close rows is a sum of cancelling terms: in f32 (as in mergekit) it carries
        // ~1e-3 relative noise, so elements this close to the threshold may go either way.
        const near = Math.abs(ref.importance[i] - ref.threshold) <= 1e-2 * Math.abs(ref.threshold);
        const want = near ? (got.values[i] === b[i] ? b[i] : x[i]) : ref.values[i];
        expect(Math.abs(got.values[i] - want), `${name}[${i}]`).toBeLessThanOrEqual(2 ** -22 * (Math.abs(b[i]) + Math.abs(x[i])));
        if (got.values[i] !== b[i]) taken++;
      }
    }
    expect(taken).toBeGreaterThan(0);
  });

  it('sce (select_topk 0.5)', async () => {
    const out = await merge('sce', [
      'models:',
      '  - model: ./ft1',
      '  - model: ./ft2',
      '  - model: ./ft3',
      'merge_method: sce',
      'base_model: ./base',
      'parameters: {select_topk: 0.5}',
    ]);
    for (const name of base.names) {
      const xs = fts.map((f) => v(f, name));
      const expected = sceRef(v(base, name), xs, 0.5);
      expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 2, name, magnitudes(v(base, name), ...xs));
    }
  });

  for (const method of ['ram', 'ramplus_tl'] as const) {
    it(`${method} (sparse fine-tunes)`, async () => {
      const out = await merge(method, [
        'models:',
        '  - model: ./sp1',
        '  - model: ./sp2',
        `merge_method: ${method}`,
        'base_model: ./base',
      ]);
      for (const name of base.names) {
        const xs = sparse.map((f) => v(f, name));
        const expected = ramRef(v(base, name), xs, method === 'ramplus_tl' ? { plus: { r: 0.1, alpha: 0.2 } } : {});
        expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 1, name, magnitudes(v(base, name), ...xs));
      }
    });
  }
});

describe('embedding rectification and optional weights', () => {
  it('karcher cuts embeddings of different vocabulary sizes to the smallest (mergekit fails here)', async () => {
    const dir = tempDir();
    const small = await makeTinyModel(join(dir, 'small'), { seed: 31, vocabSize: 64 });
    const large = await makeTinyModel(join(dir, 'large'), { seed: 32, vocabSize: 72 });
    writeConfig(dir, 'k.yml', 'models:\n  - model: ./small\n  - model: ./large\nmerge_method: karcher\n');
    const r = await runAlloy(['merge', 'k.yml', 'out', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = readModelDir(join(dir, 'out'));
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
      const got = out.tensors.get(name)!;
      expect(got.shape).toEqual([64, 32]);
      const xs = [small.values.get(name)!, large.values.get(name)!.slice(0, 64 * 32)];
      expectWithinUlp(got.values, karcherRef(xs), 'F32', 4, name, magnitudes(...xs));
    }
  });

  it('model_stock leaves out an optional tensor that only the base and one other model have', async () => {
    const dir = tempDir();
    const granite = { architectures: ['GraniteForCausalLM'], model_type: 'granite' };
    const bias = 'model.layers.0.self_attn.q_proj.bias';
    const withBias = await makeTinyModel(join(dir, 'base'), {
      seed: 41,
      config: granite,
      extraTensors: [{ name: bias, dtype: 'F32', shape: [32], values: Array.from({ length: 32 }, (_, i) => i / 100) }],
    });
    const bare = await makeTinyModel(join(dir, 'bare'), { seed: 41, config: granite });
    const fts = [
      await makeFineTune(join(dir, 'ft1'), withBias, { seed: 42 }),
      await makeFineTune(join(dir, 'ft2'), bare, { seed: 43 }),
      await makeFineTune(join(dir, 'ft3'), bare, { seed: 44 }),
    ];
    writeConfig(dir, 'ms.yml', 'models:\n  - model: ./ft1\n  - model: ./ft2\n  - model: ./ft3\nmerge_method: model_stock\nbase_model: ./base\n');
    const r = await runAlloy(['merge', 'ms.yml', 'out'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).toContain(`${bias}: left out of the output`);
    const out = readModelDir(join(dir, 'out'));
    expect(out.tensors.has(bias)).toBe(false);
    for (const name of bare.names) {
      const xs = fts.map((f) => f.values.get(name)!);
      const expected = modelStockRef(withBias.values.get(name)!, xs, [...bare.shapes.get(name)!]);
      expectWithinUlp(out.tensors.get(name)!.values, expected, 'F32', 2, name, magnitudes(withBias.values.get(name)!, ...xs));
    }
  });
});
