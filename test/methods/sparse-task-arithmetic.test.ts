import { describe, expect, it } from 'vitest';
import { findMethod } from '../../src/methods';
import { dellaKeepProbabilities, outlierBand } from '../../src/methods/sparsify';
import { gaussian, mulberry32 } from '../fixtures/models';
import { onCpuChunk } from '../helpers/cpu-chunk';
import { expectClose } from '../helpers/expect-close';
import { runMethod, type ArrayInput, type RunOptions } from '../helpers/run-method';

// dare_*, breadcrumbs*, della* (docs/methods.md §4–5, worked values of docs/methods.md §20).

const SPARSE_METHODS = ['dare_ties', 'dare_linear', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear'];

/** runMethod with the method's declared defaults filled in, as the planner does. */
function runFamily(method: string, inputs: ArrayInput[], options: RunOptions = {}) {
  const m = findMethod(method)!;
  const defaults = (scope: 'global' | 'model') =>
    Object.fromEntries(m.params.filter((p) => p.scope === scope && p.default !== undefined).map((p) => [p.name, p.default!]));
  return runMethod(
    method,
    inputs.map((input, i) => (i === (options.baseIndex ?? 0) ? input : { ...input, params: { ...defaults('model'), ...input.params } })),
    { baseIndex: 0, ...options, params: { ...defaults('global'), ...options.params } },
  );
}

function normal(n: number, seed: number, std: number): Float32Array {
  const g = gaussian(mulberry32(seed));
  return Float32Array.from({ length: n }, () => g() * std);
}

function plus(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}

const l1 = (x: ArrayLike<number>): number => Array.from(x).reduce((s, v) => s + Math.abs(v), 0);
const keptMask = (out: Float32Array, base: Float32Array): boolean[] => Array.from(out, (v, i) => v !== base[i]);
const count = (mask: boolean[]): number => mask.filter(Boolean).length;

function expectWithin4Sigma(kept: number, n: number, p: number, what: string): void {
  const sigma = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(kept - n * p), `${what}: kept ${kept} of ${n}, expected ${n * p} ± ${4 * sigma}`).toBeLessThanOrEqual(4 * sigma);
}

describe('GTA family table (docs/methods.md §5)', () => {
  it('declares the defaults of the spec', () => {
    const expected: Record<string, { normalize: number; rescale: number; extra?: [string, number] }> = {
      dare_ties: { normalize: 0, rescale: 1 },
      dare_linear: { normalize: 0, rescale: 1 },
      breadcrumbs: { normalize: 0, rescale: 0, extra: ['gamma', 0.01] },
      breadcrumbs_ties: { normalize: 0, rescale: 0, extra: ['gamma', 0.01] },
      della: { normalize: 1, rescale: 1, extra: ['epsilon', 0.15] },
      della_linear: { normalize: 0, rescale: 1, extra: ['epsilon', 0.15] },
    };
    for (const name of SPARSE_METHODS) {
      const m = findMethod(name)!;
      expect(m, name).toBeDefined();
      const decl = (p: string) => m.params.find((d) => d.name === p);
      expect(decl('normalize')?.default, name).toBe(expected[name].normalize);
      expect(decl('rescale')?.default, name).toBe(expected[name].rescale);
      expect(decl('lambda')?.default, name).toBe(1);
      expect(decl('int8_mask')?.default, name).toBe(0);
      expect(decl('weight')?.required, name).toBe(true);
      expect(decl('density')).toMatchObject({ scope: 'model', default: 1 });
      const extra = expected[name].extra;
      if (extra) expect(decl(extra[0]), name).toMatchObject({ scope: 'model', default: extra[1], required: false });
      expect(m.params.map((p) => p.name).filter((p) => p === 'gamma' || p === 'epsilon')).toEqual(extra ? [extra[0]] : []);
      expect(m.base).toBe('required');
      expect(m.wholeRows ?? false).toBe(name.startsWith('della'));
    }
  });

  it('uses sign consensus and normalize as the table says (density 1: no pruning)', async () => {
    const base = { values: [0, 0, 0, 0] };
    const d1 = { values: [1, -2, 3, 0.5], params: { weight: 1, density: 1 } };
    const d2 = { values: [-1, -1, 1, -4], params: { weight: 1, density: 1 } };
    const consensusSum = [1, -3, 4, -4];
    const consensusMean = [1, -1.5, 2, -4];
    const plainSum = [0, -3, 4, -3.5];
    const expected: Record<string, number[]> = {
      dare_ties: consensusSum,
      breadcrumbs_ties: consensusSum,
      della: consensusMean,
      dare_linear: plainSum,
      breadcrumbs: plainSum,
      della_linear: plainSum,
    };
    for (const name of SPARSE_METHODS) {
      const { values } = await runFamily(name, [base, d1, d2]);
      expectClose(values, expected[name]);
    }
  });

  it('applies lambda after normalize', async () => {
    const { values } = await runFamily('della', [
      { values: [1, 1] },
      { values: [3, 1], params: { weight: 1, density: 1 } },
      { values: [5, 1], params: { weight: 3, density: 1 } },
    ], { params: { lambda: 0.5 } });
    // mixed = (1·2 + 3·4) / 4 = 3.5 → 1 + 0.5·3.5
    expectClose(values, [2.75, 1]);
  });

  it('int8_mask is accepted and changes nothing', async () => {
    const base = normal(4000, 1, 0.02);
    const inputs = [{ values: base }, { values: plus(base, normal(4000, 2, 0.01)), params: { weight: 0.5, density: 0.5 } }, { values: plus(base, normal(4000, 3, 0.01)), params: { weight: 0.5, density: 0.5 } }];
    for (const name of SPARSE_METHODS) {
      const a = await runFamily(name, inputs, { params: { int8_mask: 0 } });
      const b = await runFamily(name, inputs, { params: { int8_mask: 1 } });
      expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes)), name).toBe(true);
    }
  });
});

/** Sort-based breadcrumbs reference: ascending |x| (equal: the earlier element is the larger), keep ranks [bottom, N − top). */
function breadcrumbsRef(x: Float32Array, density: number, gamma: number): Float64Array {
  const { bottom, top } = outlierBand(x.length, density, gamma);
  const order = Array.from(x.keys()).sort((a, b) => Math.abs(x[a]) - Math.abs(x[b]) || b - a);
  const out = new Float64Array(x.length);
  for (const i of order.slice(bottom, x.length - top)) out[i] = x[i];
  return out;
}

describe('breadcrumbs (magnitude_outliers)', () => {
  const ten = Array.from({ length: 10 }, (_, i) => i + 1);
  const zeros = { values: new Array(10).fill(0) };

  it('computes the band of docs/methods.md §4.3', () => {
    expect(outlierBand(10, 0.5, 0.1)).toEqual({ bottom: 4, top: 1 });
    expect(outlierBand(10, 0.5, 0.01)).toEqual({ bottom: 5, top: 0 });
    expect(outlierBand(10, 0.95, 0.2)).toEqual({ bottom: 0, top: 1 }); // bottom −1 taken from top
    expect(outlierBand(10, 0.9, 0.5)).toEqual({ bottom: 0, top: 1 });
    expect(outlierBand(1000, 0.5, 0.01)).toEqual({ bottom: 490, top: 10 });
  });

  it('docs/methods.md §20: [1..10], density 0.5, gamma 0.1 keeps 5..9', async () => {
    const { values } = await runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 0.5, gamma: 0.1 } }]);
    expect(Array.from(values)).toEqual([0, 0, 0, 0, 5, 6, 7, 8, 9, 0]);
  });

  it('docs/methods.md §20 with the default gamma 0.01: no outlier to drop, keeps the top 5 (mergekit zeroes everything)', async () => {
    const { values } = await runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 0.5 } }]);
    expect(Array.from(values)).toEqual([0, 0, 0, 0, 0, 6, 7, 8, 9, 10]);
  });

  it('gamma 0 keeps the top density fraction, like TIES pruning', async () => {
    const { values } = await runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 0.3, gamma: 0 } }]);
    expect(Array.from(values)).toEqual([0, 0, 0, 0, 0, 0, 0, 8, 9, 10]);
  });

  it('rescales to the L1 norm when asked', async () => {
    const { values } = await runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 0.5, gamma: 0.1 } }], {
      params: { rescale: 1 },
    });
    expectClose(values, [0, 0, 0, 0, 5, 6, 7, 8, 9, 0].map((v) => (v * 55) / 35));
  });

  it('density 1 keeps everything, outliers included', async () => {
    const { values } = await runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 1, gamma: 0.2 } }]);
    expect(Array.from(values)).toEqual(ten);
  });

  it('density 0 keeps nothing', async () => {
    const { values } = await runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 0, gamma: 0.1 } }]);
    expect(Array.from(values)).toEqual(new Array(10).fill(0));
  });

  it('refuses a negative gamma', async () => {
    await expect(
      runFamily('breadcrumbs', [zeros, { values: ten, params: { weight: 1, density: 0.5, gamma: -0.1 } }]),
    ).rejects.toThrow(/breadcrumbs: gamma -0.1 of model m1 for tensor .* is negative/);
  });

  it('breaks ties at both cuts in index order, the same for every chunk size', async () => {
    const n = 20_000;
    const rand = mulberry32(3);
    // few distinct magnitudes, so both cuts fall inside runs of equal values
    const delta = Float32Array.from({ length: n }, () => (Math.floor(rand() * 9) - 4) / 8);
    const base = normal(n, 4, 0.02).map(() => 0);
    for (const [density, gamma] of [[0.5, 0.1], [0.37, 0.013], [0.8, 0.3]]) {
      const inputs = [{ values: base }, { values: delta, params: { weight: 1, density, gamma } }];
      const whole = await runFamily('breadcrumbs', inputs);
      const chunked = await runFamily('breadcrumbs', inputs, { budgetBytes: 4096 });
      expect(Array.from(whole.values)).toEqual(Array.from(breadcrumbsRef(delta, density, gamma)));
      expect(Buffer.from(chunked.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
    }
  });

  it('breadcrumbs_ties elects signs over the pruned, weighted deltas', async () => {
    const n = 3000;
    const base = normal(n, 10, 0.02);
    const d = [normal(n, 11, 0.01), normal(n, 12, 0.01)];
    const params: Record<string, number>[] = [{ weight: 0.7, density: 0.6, gamma: 0.05 }, { weight: 0.4, density: 0.3 }];
    const { values } = await runFamily('breadcrumbs_ties', [
      { values: base },
      { values: plus(base, d[0]), params: params[0] },
      { values: plus(base, d[1]), params: params[1] },
    ], { shape: [30, 100], budgetBytes: 8192 });
    const deltas = d.map((x, j) => Float32Array.from(x, (v, i) => Math.fround(Math.fround(base[i] + v) - base[i])));
    const pruned = deltas.map((x, j) => breadcrumbsRef(x, params[j].density, params[j].gamma ?? 0.01));
    const expected = Array.from(base, (b, i) => {
      const w = pruned.map((p, j) => p[i] * params[j].weight);
      const sign = w[0] + w[1] >= 0 ? 1 : -1;
      return b + w.filter((v) => Math.sign(v) === sign).reduce((s, v) => s + v, 0);
    });
    expectClose(values, expected, 1e-5, 1e-7);
  });
});

describe('dare (random)', () => {
  const rows = 100, cols = 1000, n = rows * cols;
  const base = normal(n, 20, 0.02);
  const ft = plus(base, normal(n, 21, 0.01));
  const delta = Float32Array.from(ft, (v, i) => Math.fround(v - base[i]));

  it('keeps each element with probability density and rescales to the exact L1 norm', async () => {
    for (const density of [0.1, 0.3, 0.9]) {
      const { values } = await runFamily('dare_linear', [{ values: base }, { values: ft, params: { weight: 1, density } }], { shape: [rows, cols] });
      const mask = keptMask(values, base);
      expectWithin4Sigma(count(mask), n, density, `density ${density}`);
      const out = Float64Array.from(values, (v, i) => v - base[i]);
      expect(Math.abs(l1(out) / l1(delta) - 1)).toBeLessThan(1e-5);
      // every kept element is the delta times one common factor
      const factor = l1(delta) / l1(delta.filter((_, i) => mask[i]));
      for (let i = 0; i < n; i += 97) if (mask[i]) expect(out[i]).toBeCloseTo(delta[i] * factor, 6);
    }
  });

  it('does not rescale with rescale: false', async () => {
    const { values } = await runFamily('dare_linear', [{ values: base }, { values: ft, params: { weight: 1, density: 0.5 } }], {
      shape: [rows, cols],
      params: { rescale: 0 },
    });
    values.forEach((v, i) => {
      if (v !== base[i]) expect(v).toBe(ft[i]);
    });
  });

  it('gives byte-identical output for every chunk size, and another mask for another seed', async () => {
    const inputs = [{ values: base }, { values: ft, params: { weight: 0.6, density: 0.4 } }, { values: plus(base, normal(n, 22, 0.01)), params: { weight: 0.4, density: 0.6 } }];
    const whole = await runFamily('dare_ties', inputs, { shape: [rows, cols], seed: 5 });
    const chunked = await runFamily('dare_ties', inputs, { shape: [rows, cols], seed: 5, budgetBytes: 4096 });
    const flat = await runFamily('dare_ties', inputs, { shape: [n], seed: 5, budgetBytes: 4096 });
    expect(Buffer.from(chunked.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
    expect(Buffer.from(flat.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
    const other = await runFamily('dare_ties', inputs, { shape: [rows, cols], seed: 6 });
    const a = keptMask(whole.values, base);
    const b = keptMask(other.values, base);
    expect(a.filter((k, i) => k !== b[i]).length).toBeGreaterThan(n / 10);
  });

  it('draws an independent mask per model', async () => {
    // deltas 1 and 2 everywhere, no rescale: the output 0..3 spells out both masks
    const zeros = new Array(n).fill(0);
    const { values } = await runFamily('dare_linear', [
      { values: zeros },
      { values: new Array(n).fill(1), params: { weight: 1, density: 0.5 } },
      { values: new Array(n).fill(2), params: { weight: 1, density: 0.5 } },
    ], { params: { rescale: 0 } });
    const both = Array.from(values).filter((v) => v === 3).length;
    const first = Array.from(values).filter((v) => v === 1 || v === 3).length;
    expect(Array.from(values).every((v) => v === 0 || v === 1 || v === 2 || v === 3)).toBe(true);
    expectWithin4Sigma(first, n, 0.5, 'model 1');
    expectWithin4Sigma(both, n, 0.25, 'both models');
  });

  it('density 1 is the plain sum; density 0 leaves the base', async () => {
    const one = await runFamily('dare_linear', [{ values: base }, { values: ft, params: { weight: 1, density: 1 } }]);
    expect(Array.from(one.values)).toEqual(Array.from(base, (b, i) => Math.fround(b + delta[i])));
    const zero = await runFamily('dare_linear', [{ values: base }, { values: ft, params: { weight: 1, density: 0 } }]);
    expect(Array.from(zero.values)).toEqual(Array.from(base));
  });

  it('refuses a negative density', async () => {
    await expect(runFamily('dare_ties', [{ values: base }, { values: ft, params: { weight: 1, density: -0.5 } }])).rejects.toThrow(
      /dare_ties: density -0.5 of model m1 for tensor .* is not a probability/,
    );
  });
});

describe('della (della_magprune)', () => {
  it('docs/methods.md §20: keep probabilities of the row [0.1, −0.4, 0.2, 0.3], density 0.5, epsilon 0.1', async () => {
    const p = await onCpuChunk([[0.1, -0.4, 0.2, 0.3]], 1, 4, (c) => dellaKeepProbabilities(c, c.input(0), 0.5, 0.1));
    expectClose(p, [0.4, 0.6, 0.466667, 0.533333]);
  });

  it('ranks each row of a matrix on its own', async () => {
    const p = await onCpuChunk([[3, 1, 2, -0.5, -1, 0]], 2, 3, (c) => dellaKeepProbabilities(c, c.input(0), 0.5, 0.2));
    expectClose(p, [0.7, 0.3, 0.5, 0.5, 0.7, 0.3]);
  });

  it('a row of one element gets p = density (mergekit: 0/0 = NaN)', async () => {
    const p = await onCpuChunk([[5, -2, 0]], 3, 1, (c) => dellaKeepProbabilities(c, c.input(0), 0.4, 0.15));
    expectClose(p, [0.4, 0.4, 0.4]);
  });

  const rows = 400, cols = 500, n = rows * cols;
  const base = normal(n, 30, 0.02);
  const ft = plus(base, normal(n, 31, 0.01));
  const delta = Float32Array.from(ft, (v, i) => Math.fround(v - base[i]));

  it('keeps larger ranks more often, at the rate of the spec per rank bucket', async () => {
    const density = 0.5, epsilon = 0.2;
    const { values } = await runFamily('della_linear', [{ values: base }, { values: ft, params: { weight: 1, density, epsilon } }], {
      shape: [rows, cols],
      params: { rescale: 0 },
    });
    const mask = keptMask(values, base);
    expectWithin4Sigma(count(mask), n, density, 'overall');
    const buckets = 5;
    const kept = new Array(buckets).fill(0);
    const total = new Array(buckets).fill(0);
    const pSum = new Array(buckets).fill(0);
    for (let r = 0; r < rows; r++) {
      const row = Array.from({ length: cols }, (_, i) => r * cols + i);
      row.sort((a, b) => Math.abs(delta[a]) - Math.abs(delta[b]) || b - a);
      row.forEach((i, rank0) => {
        const b = Math.floor((rank0 * buckets) / cols);
        total[b]++;
        pSum[b] += density - epsilon + (rank0 / (cols - 1)) * 2 * epsilon;
        if (mask[i]) kept[b]++;
      });
    }
    for (let b = 0; b < buckets; b++) {
      const p = pSum[b] / total[b];
      expectWithin4Sigma(kept[b], total[b], p, `rank bucket ${b}`);
      if (b > 0) expect(kept[b]).toBeGreaterThan(kept[b - 1]);
    }
  });

  it('rescales to the exact L1 norm and is identical for every chunk size', async () => {
    const inputs = [{ values: base }, { values: ft, params: { weight: 1, density: 0.3, epsilon: 0.1 } }];
    const whole = await runFamily('della_linear', inputs, { shape: [rows, cols] });
    const chunked = await runFamily('della_linear', inputs, { shape: [rows, cols], budgetBytes: 4096 });
    expect(Buffer.from(chunked.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
    expectWithin4Sigma(count(keptMask(whole.values, base)), n, 0.3, 'kept');
    const out = Float64Array.from(whole.values, (v, i) => v - base[i]);
    expect(Math.abs(l1(out) / l1(delta) - 1)).toBeLessThan(1e-5);
  });

  it('keeps a long 1-D tensor in one row whatever the memory budget', async () => {
    const m = 6000;
    const inputs = [{ values: base.subarray(0, m) }, { values: ft.subarray(0, m), params: { weight: 1, density: 0.5, epsilon: 0.3 } }];
    const small = await runFamily('della', inputs, { budgetBytes: 4096 });
    const large = await runFamily('della', inputs);
    expect(Buffer.from(small.bytes).equals(Buffer.from(large.bytes))).toBe(true);
    // ranks over the whole row: the largest tenth is kept far more often (p ≈ 0.77) than the smallest (≈ 0.23)
    const order = Array.from({ length: m }, (_, i) => i).sort((a, b) => Math.abs(delta[a]) - Math.abs(delta[b]));
    const keptIn = (idx: number[]) => idx.filter((i) => large.values[i] !== base[i]).length / idx.length;
    expect(keptIn(order.slice(-m / 10))).toBeGreaterThan(0.65);
    expect(keptIn(order.slice(0, m / 10))).toBeLessThan(0.35);
  });

  it('different seeds and different models draw different masks', async () => {
    const inputs = [{ values: base }, { values: ft, params: { weight: 1, density: 0.5, epsilon: 0.1 } }];
    const a = await runFamily('della_linear', inputs, { shape: [rows, cols], seed: 1 });
    const b = await runFamily('della_linear', inputs, { shape: [rows, cols], seed: 2 });
    const ma = keptMask(a.values, base);
    const mb = keptMask(b.values, base);
    expectWithin4Sigma(ma.filter((k, i) => k && mb[i]).length, n, 0.25, 'kept by both seeds');
  });

  it('density ≥ 1 keeps the delta, density ≤ 0 drops it', async () => {
    const x = [0.5, -1, 2];
    const one = await runFamily('della', [{ values: [0, 0, 0] }, { values: x, params: { weight: 1, density: 1 } }]);
    expect(Array.from(one.values)).toEqual(x);
    const zero = await runFamily('della', [{ values: [1, 1, 1] }, { values: x, params: { weight: 1, density: 0 } }]);
    expect(Array.from(zero.values)).toEqual([1, 1, 1]);
  });

  it('refuses density ± epsilon outside (0, 1), naming method, model, tensor and values', async () => {
    const x = [0.5, -1, 2];
    await expect(
      runFamily('della', [{ values: [0, 0, 0] }, { values: x, params: { weight: 1, density: 0.1 } }], { name: 'model.norm.weight' }),
    ).rejects.toThrow(/della: model m1, tensor model\.norm\.weight: density 0\.1 and epsilon 0\.15 .*outside \(0, 1\)/);
    await expect(
      runFamily('della_linear', [{ values: [0, 0, 0] }, { values: x, params: { weight: 1, density: 0.9, epsilon: 0.1 } }]),
    ).rejects.toThrow(/della_linear: model m1, .*density 0\.9 and epsilon 0\.1/);
  });

  it('refuses 3-D tensors (mergekit ranks along dim 1) with a clear message', async () => {
    const x = Array.from({ length: 24 }, (_, i) => i);
    await expect(
      runFamily('della', [{ values: new Array(24).fill(0) }, { values: x, params: { weight: 1, density: 0.5 } }], {
        shape: [2, 3, 4],
        name: 'model.layers.0.mlp.experts.gate_up_proj',
      }),
    ).rejects.toThrow(/tensor model\.layers\.0\.mlp\.experts\.gate_up_proj has 3 dimensions \[2, 3, 4\].*not support yet/);
  });
});
