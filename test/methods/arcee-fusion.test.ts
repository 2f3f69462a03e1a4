import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { arceeFusionRef } from '../helpers/method-references';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

/** The mask must match the reference except where the importance is within rounding of the threshold. */
function expectFusion(values: Float32Array, base: Float32Array, x: Float32Array, shape: number[]): number {
  const ref = arceeFusionRef(base, x, shape);
  let taken = 0;
  for (let i = 0; i < values.length; i++) {
    const nearThreshold = Math.abs(ref.importance[i] - ref.threshold) <= 1e-4 * Math.abs(ref.threshold);
    const close = (v: number): boolean => Math.abs(values[i] - v) <= 1e-6 * Math.abs(v) + 1e-12;
    if (!nearThreshold) expect(close(ref.values[i]), `element ${i}: got ${values[i]}, expected ${ref.values[i]}`).toBe(true);
    else expect(close(base[i]) || close(x[i]), `element ${i}`).toBe(true);
    if (values[i] !== base[i]) taken++;
  }
  return taken;
}

describe('arcee_fusion (docs/methods.md §11)', () => {
  it('keeps the base when no importance reaches median + 1.5·IQR (docs/methods.md §20)', async () => {
    const { values } = await runMethod('arcee_fusion', [{ values: [0, 0, 0, 0] }, { values: [1, 2, 3, 4] }], {
      baseIndex: 0,
      shape: [1, 4],
    });
    expectClose(values, [0, 0, 0, 0], 0, 0);
  });

  it('takes the other model exactly where the importance is an outlier (exact quantiles)', async () => {
    const shape = [40, 64];
    const base = randomArray(40 * 64, 1, 0.5);
    const x = perturbed(base, 2, 0.05);
    for (let i = 0; i < x.length; i += 97) x[i] += 1; // outlier changes
    for (let j = 0; j < 64; j++) x[3 * 64 + j] = base[3 * 64 + j]; // an unchanged row: KL 0
    const { values } = await runMethod('arcee_fusion', [{ values: x }, { values: base }], { baseIndex: 1, shape });
    const taken = expectFusion(values, base, x, shape);
    expect(taken).toBeGreaterThan(10);
    expect(taken).toBeLessThan(x.length / 4);
  });

  it('treats a 1-D tensor as one row, also when it is split into chunks', async () => {
    const n = 5000;
    const base = randomArray(n, 3, 0.1);
    const x = perturbed(base, 4, 0.01);
    for (let i = 0; i < n; i += 50) x[i] += 0.3;
    const whole = await runMethod('arcee_fusion', [{ values: base }, { values: x }], { baseIndex: 0 });
    expectFusion(whole.values, base, x, [n]);
    const chunked = await runMethod('arcee_fusion', [{ values: base }, { values: x }], { baseIndex: 0, budgetBytes: 4096 });
    expect(Buffer.from(chunked.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
  });

  it('keeps the planned output dtype (mergekit always writes float32)', async () => {
    const base = randomArray(256, 5);
    const x = perturbed(base, 6, 0.1);
    x[17] += 5;
    const { values, bytes } = await runMethod('arcee_fusion', [{ values: base, dtype: 'F32' }, { values: x, dtype: 'F32' }], {
      baseIndex: 0,
      shape: [4, 64],
      dtype: 'BF16',
    });
    expect(bytes.length).toBe(256 * 2);
    const ref = arceeFusionRef(base, x, [4, 64]);
    expect(ref.values[17]).toBeCloseTo(x[17], 5); // the outlier is taken
    expectClose(values, ref.values, 2 ** -8, 0); // rounded once to bf16
  });

  it('returns a lone tensor unchanged', async () => {
    const { values } = await runMethod('arcee_fusion', [{ values: [1, 2] }], { baseIndex: 0 });
    expectClose(values, [1, 2], 0, 0);
  });

  it('cuts mismatched embeddings to the common top-left block (docs/methods.md §1)', async () => {
    const base = randomArray(6 * 8, 7);
    const x = perturbed(randomArray(5 * 10, 7), 8, 0.05);
    x[12] += 3;
    const cut = (v: Float32Array, cols: number): Float32Array => Float32Array.from({ length: 40 }, (_, i) => v[Math.floor(i / 8) * cols + (i % 8)]);
    const { values } = await runMethod('arcee_fusion', [{ values: base, shape: [6, 8] }, { values: x, shape: [5, 10] }], {
      baseIndex: 0,
      shape: [5, 8],
      isEmbed: true,
      name: 'model.embed_tokens.weight',
    });
    expectFusion(values, cut(base, 8), cut(x, 10), [5, 8]);
  });
});
