import { describe, expect, it } from 'vitest';
import { cpuMatrixOps, matrixReference } from '../../src/backend';

/** The CPU reference of the matrix ops (docs/model.md §7), hand-worked. */
describe('CPU matrix ops', () => {
  it('matmul: a[2×2]·b[2×3], row-major', () => {
    // [[1, 2], [3, 4]]·[[5, 6, 7], [8, 9, 10]] = [[21, 24, 27], [47, 54, 61]].
    const out = matrixReference.matmul(Float32Array.from([1, 2, 3, 4]), Float32Array.from([5, 6, 7, 8, 9, 10]), 2, 2, 3);
    expect(Array.from(out)).toEqual([21, 24, 27, 47, 54, 61]);
  });

  it('matmul sums in f64 and rounds once: 2²⁴ + 1 − 2²⁴ is 1 (an f32 running sum gives 0)', () => {
    const out = matrixReference.matmul(Float32Array.from([2 ** 24, 1, -(2 ** 24)]), Float32Array.from([1, 1, 1]), 1, 3, 1);
    expect(out[0]).toBe(1);
  });

  it('matmulTransposed equals matmul with the weight transposed, plus the bias', async () => {
    // w [3×2] = [[1, 0], [0, 1], [2, 3]]; x = [[1, 2]] → [1, 2, 8] + [0.5, 0, -1].
    const y = await cpuMatrixOps.matmulTransposed(Float32Array.from([1, 2]), 1, 2, Float32Array.from([1, 0, 0, 1, 2, 3]), 3, Float32Array.from([0.5, 0, -1]));
    expect(Array.from(y)).toEqual([1.5, 2, 7]);
  });

  it('rope and gatedActivation return new arrays and leave their inputs alone', async () => {
    const x = Float32Array.from([1, 0, 0, 1]);
    // One token at position 1, head dim 4, invFreq [π/2 (rounded to f32), 0]: the first pair turns by ~90°.
    const r = await cpuMatrixOps.rope(x, 1, 1, 4, [1], Float32Array.from([Math.PI / 2, 0]), 1);
    expect(Array.from(x)).toEqual([1, 0, 0, 1]);
    expect(r[0]).toBeCloseTo(0, 6); // a·cos − b·sin with (a, b) = (1, 0)
    expect(r[2]).toBeCloseTo(1, 6); // b·cos + a·sin
    expect(r[1]).toBe(0); // (0, 1) at angle 0
    expect(r[3]).toBe(1);
    const gate = Float32Array.from([0, 2]);
    const g = await cpuMatrixOps.gatedActivation(gate, Float32Array.from([3, 0.5]), 'silu');
    // silu(0)·3 = 0; silu(2)·0.5 = 2/(1 + e⁻²)·0.5 = 0.880797…
    expect(g[0]).toBe(0);
    expect(g[1]).toBeCloseTo(0.8807970779778823, 6);
    expect(Array.from(gate)).toEqual([0, 2]);
  });

  it('attention over a batch: each sequence alone, padding queries zero', async () => {
    // One head, head dim 1, two sequences of 2 cells; sequence 1 starts with padding.
    const q = Float32Array.from([1, 1, 1, 1]);
    const k = Float32Array.from([0, Math.log(3), 5, 0]);
    const v = Float32Array.from([1, 5, 7, 2]);
    const out = await cpuMatrixOps.attention(q, k, v, Uint8Array.from([1, 1, 0, 1]), { batch: 2, tokens: 2, heads: 1, kvHeads: 1, headDim: 1, scale: 1, softcap: null });
    // Sequence 0: query 0 sees v=1; query 1 weights e⁰ : e^{ln 3} = 1 : 3 → (1 + 15)/4 = 4.
    // Sequence 1: query 0 is padding → 0; query 1 sees only itself → 2.
    expect(out[0]).toBe(1);
    expect(out[1]).toBeCloseTo(4, 6);
    expect(out[2]).toBe(0);
    expect(out[3]).toBe(2);
  });
});
