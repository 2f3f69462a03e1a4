import { describe, expect, it } from 'vitest';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod, type ArrayInput, type RunOptions } from '../helpers/run-method';

/** Distance in f32 units in the last place (sign-aware ordering of the bit patterns). */
function ulpDistance(a: number, b: number): number {
  const bits = new Int32Array(new Float32Array([a, b]).buffer);
  const key = (v: number): number => (v < 0 ? -(v & 0x7fffffff) : v);
  return Math.abs(key(bits[0]) - key(bits[1]));
}

interface Case {
  method: string;
  params: Record<string, number>;
  /** Model count besides the base; the base is input 1. */
  others: number;
  weights?: number[];
  /** Reductions are reordered by chunking; the outputs may then differ by this many ulps. */
  ulps: number;
}

const CASES: Case[] = [
  { method: 'nuslerp', params: { nuslerp_flatten: 1, nuslerp_row_wise: 0 }, others: 2, weights: [0.3, 0.7], ulps: 1 },
  { method: 'nuslerp', params: { nuslerp_flatten: 0, nuslerp_row_wise: 0 }, others: 2, weights: [0.3, 0.7], ulps: 1 },
  { method: 'nuslerp', params: { nuslerp_flatten: 0, nuslerp_row_wise: 1 }, others: 2, weights: [0.3, 0.7], ulps: 1 },
  { method: 'multislerp', params: { normalize_weights: 1, eps: 1e-8 }, others: 3, weights: [0.2, 0.5, 0.3], ulps: 1 },
  { method: 'karcher', params: { max_iter: 10, tol: 1e-5 }, others: 3, ulps: 1 },
  { method: 'model_stock', params: { filter_wise: 0 }, others: 3, ulps: 1 },
  { method: 'model_stock', params: { filter_wise: 1 }, others: 2, ulps: 1 },
  { method: 'nearswap', params: { t: 0.002 }, others: 1, ulps: 0 },
  { method: 'arcee_fusion', params: {}, others: 1, ulps: 0 },
  { method: 'sce', params: { select_topk: 1 }, others: 3, ulps: 1 },
  { method: 'sce', params: { select_topk: 0.3 }, others: 2, ulps: 1 },
  { method: 'ram', params: { epsilon: 0.003 }, others: 3, ulps: 0 },
  { method: 'ramplus_tl', params: { r: 0.3, alpha: 0.5, epsilon: 0.003 }, others: 3, ulps: 0 },
];

describe('chunk-size independence', () => {
  for (const c of CASES) {
    for (const shape of [[64, 48], [5000]]) {
      it(`${c.method} ${JSON.stringify(c.params)} on [${shape.join(', ')}]`, async () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const base = randomArray(n, 1, 0.02);
        const others = Array.from({ length: c.others }, (_, k) => perturbed(base, k + 2, 0.005));
        const inputs: ArrayInput[] = [
          { values: others[0], params: { weight: c.weights?.[0] ?? 1 } },
          { values: base },
          ...others.slice(1).map((values, k) => ({ values, params: { weight: c.weights?.[k + 1] ?? 1 } })),
        ];
        const options: RunOptions = { baseIndex: 1, shape, params: c.params };
        const whole = await runMethod(c.method, inputs, options);
        const chunked = await runMethod(c.method, inputs, { ...options, budgetBytes: 4096 });
        let worst = 0;
        for (let i = 0; i < n; i++) worst = Math.max(worst, ulpDistance(whole.values[i], chunked.values[i]));
        expect(worst).toBeLessThanOrEqual(c.ulps);
      });
    }
  }
});
