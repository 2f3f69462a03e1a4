import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { sceRef } from '../helpers/method-references';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

describe('sce (docs/methods.md §14)', () => {
  it('weights by mean squared task vector and erases minority signs (docs/methods.md §20)', async () => {
    const { values } = await runMethod('sce', [{ values: [0, 0] }, { values: [1, 2] }, { values: [3, -2] }], {
      baseIndex: 0,
      params: { select_topk: 1 },
    });
    expectClose(values, [2.444444, 2.0]);
  });

  it('matches the reference with top-k selection by variance', async () => {
    const n = 3000;
    const base = randomArray(n, 1, 0.02);
    const xs = [2, 3, 4].map((seed) => perturbed(base, seed, 0.5)); // ω not uniform: Σ mean(TV²) ≥ 1e-6
    xs[1][5] = base[5]; // variance ties and zeros
    for (const ft of xs) ft[7] = base[7];
    for (const topk of [1, 0.7, 0.1, 0.0005]) {
      const { values } = await runMethod('sce', [{ values: xs[0] }, { values: base }, { values: xs[1] }, { values: xs[2] }], {
        baseIndex: 1,
        params: { select_topk: topk },
      });
      expectClose(values, sceRef(base, xs, topk), 1e-5, 1e-7);
    }
  });

  it('uses uniform model weights when all task vectors are tiny (Σ mean(TV²) < 1e-6)', async () => {
    const base = randomArray(100, 5, 0.02);
    const xs = [6, 7].map((seed) => perturbed(base, seed, 1e-4));
    const { values } = await runMethod('sce', [{ values: base }, { values: xs[0] }, { values: xs[1] }], { baseIndex: 0, params: { select_topk: 1 } });
    expectClose(values, sceRef(base, xs, 1), 1e-6, 1e-9);
  });

  it('keeps the base where nothing is selected: select_topk 0, or one model (zero variance)', async () => {
    const zero = await runMethod('sce', [{ values: [1, 2] }, { values: [3, 5] }, { values: [0, 1] }], { baseIndex: 0, params: { select_topk: 0 } });
    expectClose(zero.values, [1, 2], 0, 0);
    const one = await runMethod('sce', [{ values: [1, 2] }, { values: [3, 5] }], { baseIndex: 0, params: { select_topk: 0.5 } });
    expectClose(one.values, [1, 2], 0, 0);
    const all = await runMethod('sce', [{ values: [1, 2] }, { values: [3, 5] }], { baseIndex: 0, params: { select_topk: 1 } });
    expectClose(all.values, [3, 5]);
  });

  it('returns the base when only the base has the tensor', async () => {
    const { values } = await runMethod('sce', [{ values: [1, 2] }], { baseIndex: 0, params: { select_topk: 1 } });
    expectClose(values, [1, 2], 0, 0);
  });

  it('keeps the same top-k positions whatever the chunk size (ties in index order)', async () => {
    const n = 6000;
    const base = new Float32Array(n);
    const a = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : i % 5 === 0 ? 2 : 0.5));
    const b = Float32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? -1 : 1));
    const inputs = [{ values: base }, { values: a }, { values: b }];
    const whole = await runMethod('sce', inputs, { baseIndex: 0, params: { select_topk: 0.37 } });
    const chunked = await runMethod('sce', inputs, { baseIndex: 0, params: { select_topk: 0.37 }, budgetBytes: 4096 });
    expect(Buffer.from(chunked.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
    expectClose(whole.values, sceRef(base, [a, b], 0.37), 1e-6, 1e-7);
  });
});
