import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend, createSimdCpuBackend, type ComputeBackend } from '../../src/backend';
import { MERGEKIT_METHOD_NAMES } from '../../src/methods';
import type { FloatDtype } from '../../src/storage/types';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod, type ArrayInput, type RunOptions } from '../helpers/run-method';

/**
 * Every method through the real engine on SimdCpuBackend gives the output bytes of the reference
 * CpuBackend: whole and chunked (tiny budget), 2-D and 1-D, bf16 / f16 / f32.
 */

interface Case {
  method: string;
  params?: Record<string, number>;
  /** Models besides the base (input 0 is the base when `base`). */
  others: number;
  base?: boolean;
  inputParams?: Record<string, number>;
  weights?: number[];
}

const CASES: Case[] = [
  { method: 'linear', others: 3, weights: [0.4, 0.3, 0.3] },
  { method: 'slerp', others: 1, base: true, params: { t: 0.4 } },
  { method: 'nuslerp', others: 2, weights: [0.3, 0.7], params: { nuslerp_flatten: 0, nuslerp_row_wise: 1 } },
  { method: 'multislerp', others: 3, weights: [0.2, 0.5, 0.3], params: { normalize_weights: 1, eps: 1e-8 } },
  { method: 'karcher', others: 3, params: { max_iter: 10, tol: 1e-5 } },
  { method: 'passthrough', others: 1 },
  { method: 'model_stock', others: 3, base: true, params: { filter_wise: 0 } },
  { method: 'arcee_fusion', others: 1, base: true },
  { method: 'nearswap', others: 1, base: true, params: { t: 0.002 } },
  { method: 'task_arithmetic', others: 3, base: true, weights: [0.5, 0.3, 0.7] },
  { method: 'ties', others: 3, base: true, weights: [0.5, 0.3, 0.7], inputParams: { density: 0.4 } },
  { method: 'dare_ties', others: 2, base: true, weights: [0.6, 0.4], inputParams: { density: 0.5 } },
  { method: 'dare_linear', others: 2, base: true, weights: [0.6, 0.4], inputParams: { density: 0.5 } },
  { method: 'breadcrumbs', others: 2, base: true, weights: [0.6, 0.4], inputParams: { density: 0.6, gamma: 0.05 } },
  { method: 'breadcrumbs_ties', others: 3, base: true, weights: [0.6, 0.4, 0.2], inputParams: { density: 0.6, gamma: 0.05 } },
  { method: 'della', others: 2, base: true, weights: [0.6, 0.4], inputParams: { density: 0.5, epsilon: 0.1 } },
  { method: 'della_linear', others: 3, base: true, weights: [0.6, 0.4, 0.3], inputParams: { density: 0.5, epsilon: 0.1 } },
  { method: 'sce', others: 3, base: true, params: { select_topk: 0.3 } },
  { method: 'ram', others: 3, base: true, params: { epsilon: 0.003 } },
  { method: 'ramplus_tl', others: 3, base: true, params: { r: 0.3, alpha: 0.5, epsilon: 0.003 } },
];

let simd: ComputeBackend;
beforeAll(async () => {
  simd = await createSimdCpuBackend();
});

function inputs(c: Case, n: number, seed: number): ArrayInput[] {
  const base = randomArray(n, seed, 0.05);
  const count = c.others + (c.base ? 1 : 0);
  return Array.from({ length: count }, (_, i) => {
    const values = c.base && i === 0 ? base : perturbed(base, seed + i, 0.01);
    const k = c.base ? i - 1 : i;
    const params = c.base && i === 0 ? {} : { ...(c.inputParams ?? {}), ...(c.weights ? { weight: c.weights[k] } : {}) };
    return { values, params };
  });
}

describe('every method on SimdCpuBackend equals CpuBackend byte for byte', () => {
  it('covers all mergekit methods', () => {
    expect(CASES.map((c) => c.method).sort()).toEqual([...MERGEKIT_METHOD_NAMES].sort());
  });

  for (const c of CASES) {
    it(c.method, async () => {
      const runs: { shape: number[]; dtype: FloatDtype; budgetBytes?: number }[] = [
        { shape: [48, 40], dtype: 'BF16' },
        { shape: [48, 40], dtype: 'F16', budgetBytes: 6000 },
        { shape: [1999], dtype: 'F32', budgetBytes: 3000 },
        { shape: [7, 13], dtype: 'BF16', budgetBytes: 700 },
      ];
      for (const [k, run] of runs.entries()) {
        const n = run.shape.reduce((a, b) => a * b, 1);
        const data = inputs(c, n, 11 + k);
        const options: RunOptions = {
          shape: run.shape,
          dtype: run.dtype,
          params: c.params ?? {},
          baseIndex: c.base ? 0 : -1,
          ...(run.budgetBytes ? { budgetBytes: run.budgetBytes } : {}),
        };
        const expected = await runMethod(c.method, data, { ...options, backend: new CpuBackend() });
        const actual = await runMethod(c.method, data, { ...options, backend: simd });
        expect(actual.warnings).toEqual(expected.warnings);
        const same = Buffer.from(actual.bytes).equals(Buffer.from(expected.bytes));
        expect(same, `${c.method} ${run.shape.join('x')} ${run.dtype} budget ${run.budgetBytes ?? 'default'}`).toBe(true);
        // Not vacuous: the output has numbers in it.
        expect(expected.values.some((v) => v !== 0 && Number.isFinite(v))).toBe(true);
      }
    });
  }
});
