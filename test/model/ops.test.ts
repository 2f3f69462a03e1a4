import { describe, expect, it } from 'vitest';
import { ops, ropeFrequencies, ropeSpecFromConfig } from '../../src/model';
import { expectClose } from '../helpers/expect-close';

/** Hand-worked values for the reference ops (the numbers are worked out in the comments). */
describe('forward-pass ops, hand-worked', () => {
  it('matmulTransposed: x·Wᵀ + b, odd output count, written into a column slice', () => {
    // x = [[1, 2], [3, -1]], W = [[1, 0], [0, 1], [2, 3]] (3 outputs), b = [0.5, 0, -1].
    const x = Float32Array.from([1, 2, 3, -1]);
    const w = Float32Array.from([1, 0, 0, 1, 2, 3]);
    const y = new Float32Array(2 * 5).fill(9);
    ops.matmulTransposed(x, 2, 2, w, 3, y, 5, 1, Float32Array.from([0.5, 0, -1]));
    // row 0: [1+0.5, 2, 2+6-1] = [1.5, 2, 7]; row 1: [3.5, -1, 6-3-1 = 2]; columns 0 and 4 untouched.
    expect(Array.from(y)).toEqual([9, 1.5, 2, 7, 9, 9, 3.5, -1, 2, 9]);
  });

  it('matmulTransposed: five outputs use the unrolled and the remainder loop', () => {
    const x = Float32Array.from([1, 1, 1]);
    const w = Float32Array.from({ length: 15 }, (_, i) => i);
    const y = new Float32Array(5);
    ops.matmulTransposed(x, 1, 3, w, 5, y);
    // row o sums 3o, 3o+1, 3o+2 = 9o + 3.
    expect(Array.from(y)).toEqual([3, 12, 21, 30, 39]);
  });

  it('matmulTransposed: every tiling path (2-row and 1-row, 4-column and leftover) equals the plain triple loop', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    for (const [rows, inDim, outDim] of [[5, 9, 11], [4, 3, 8], [1, 1, 1], [3, 16, 6]]) {
      const x = Float32Array.from({ length: rows * inDim }, rand);
      const w = Float32Array.from({ length: outDim * inDim }, rand);
      const bias = Float32Array.from({ length: outDim }, rand);
      const stride = outDim + 3;
      const y = new Float32Array(rows * stride);
      ops.matmulTransposed(x, rows, inDim, w, outDim, y, stride, 2, bias);
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outDim; o++) {
          let sum = 0;
          for (let i = 0; i < inDim; i++) sum += x[r * inDim + i] * w[o * inDim + i];
          expect(y[r * stride + 2 + o], `${rows}×${inDim}×${outDim} at ${r},${o}`).toBe(Math.fround(sum + bias[o]));
        }
      }
    }
  });

  it('rmsNorm: x / sqrt(mean x² + eps) · (offset + w)', () => {
    // x = [3, 4]: mean x² = 12.5, with eps 0.5 → sqrt(13) ; w = [1, 2].
    const out = ops.rmsNorm(Float32Array.from([3, 4]), 1, 2, Float32Array.from([1, 2]), 0.5, 0);
    expectClose(out, [3 / Math.sqrt(13), 8 / Math.sqrt(13)], 1e-6, 0);
    // Gemma's offset: weights stored as w − 1, so w = [0, 1] means factors [1, 2].
    const gemma = ops.rmsNorm(Float32Array.from([3, 4]), 1, 2, Float32Array.from([0, 1]), 0.5, 1);
    expectClose(gemma, out, 1e-7, 0);
  });

  it('softmax: shifted, -Inf masked, all-masked row is zeros', () => {
    const row = Float32Array.from([Math.log(1), Math.log(3), -Infinity, 1000 + Math.log(4)]);
    ops.softmaxInPlace(row, 0, 3);
    expectClose(row.subarray(0, 3), [0.25, 0.75, 0], 1e-6, 0);
    const big = Float32Array.from([1000, 1000]);
    ops.softmaxInPlace(big, 0, 2);
    expect(Array.from(big)).toEqual([0.5, 0.5]);
    const masked = Float32Array.from([-Infinity, -Infinity]);
    ops.softmaxInPlace(masked, 0, 2);
    expect(Array.from(masked)).toEqual([0, 0]);
  });

  it('rope: rotate-half pairs (k, k + d/2) by position × inv_freq; the rest of the head is left alone', () => {
    // One head of dimension 6, rotary dimension 4 (inv_freq [1, 0.5]), position 2.
    const x = Float32Array.from([1, 0, 0, 1, 7, 8]);
    ops.applyRope(x, 1, 1, 6, [2], Float32Array.from([1, 0.5]));
    // Pair (x0, x2) = (1, 0) rotated by 2 rad: (cos 2, sin 2). Pair (x1, x3) = (0, 1) by 1 rad: (−sin 1, cos 1).
    expectClose(x, [Math.cos(2), -Math.sin(1), Math.sin(2), Math.cos(1), 7, 8], 1e-6, 1e-7);
  });

  it('attention: one token returns its value; two tokens weigh values by softmax of scaled scores; GQA shares kv heads', () => {
    // 2 query heads sharing 1 kv head, head dim 1. q = [[1, 2], [1, 2]] per token, k = [0, ln 3], v = [10, 20].
    const q = Float32Array.from([1, 2, 1, 2]);
    const k = Float32Array.from([0, Math.log(3)]);
    const v = Float32Array.from([10, 20]);
    const out = ops.causalAttention(q, k, v, 2, 2, 1, 1, [true, true], 1, null);
    // token 0 sees only itself: 10. Token 1, head 0: scores [0, ln 3] → weights [1/4, 3/4] → 17.5.
    // head 1: scores [0, 2 ln 3] → weights [1/10, 9/10] → 19.
    expectClose(out, [10, 10, 17.5, 19], 1e-6, 0);
    // Token 0 as padding: token 1 only sees itself; the padding query gets zeros.
    const padded = ops.causalAttention(q, k, v, 2, 2, 1, 1, [false, true], 1, null);
    expectClose(padded, [0, 0, 20, 20], 0, 0);
  });

  it('activations and soft capping', () => {
    expectClose([ops.silu(0), ops.silu(2)], [0, 2 / (1 + Math.exp(-2))], 1e-12, 0);
    // gelu_tanh(1) = 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.841191990...
    expectClose([ops.geluTanh(1), ops.geluExact(1)], [0.8411919906082768, 0.8413447460685429], 2e-7, 0);
    const x = Float32Array.from([0, 30, -1e6]);
    ops.softcap(x, 0, 3, 30);
    expectClose(x, [0, 30 * Math.tanh(1), -30], 1e-6, 0);
  });
});

describe('RoPE frequencies, hand-worked', () => {
  const spec = (config: Record<string, unknown>, headDim = 4) => ropeSpecFromConfig({ rope_theta: 100, max_position_embeddings: 16, ...config }, headDim, 'm');

  it('default: theta^(−2k/d)', () => {
    expectClose(ropeFrequencies(spec({}), 4, 'm').invFreq, [1, 0.1], 1e-7, 0);
  });

  it('linear divides by the factor; dynamic changes the base only past max_position_embeddings', () => {
    expectClose(ropeFrequencies(spec({ rope_scaling: { type: 'linear', factor: 4 } }), 4, 'm').invFreq, [0.25, 0.025], 1e-7, 0);
    const dynamic = spec({ rope_scaling: { type: 'dynamic', factor: 2 } });
    expectClose(ropeFrequencies(dynamic, 16, 'm').invFreq, [1, 0.1], 1e-7, 0);
    // seq 32: base 100 · (2·32/16 − 1)^(4/2) = 900 → [1, 1/30].
    expectClose(ropeFrequencies(dynamic, 32, 'm').invFreq, [1, 1 / 30], 1e-6, 0);
  });

  it('llama3: high frequencies kept, low divided, medium interpolated', () => {
    // theta 10000, d 6: inv [1, 0.0464, 0.00215]; wavelens 6.28, 135, 2917. Old context 256,
    // low factor 1, high 4: high wavelen 64 (keep 1), low wavelen 256 (2917 → /8), 135 medium:
    // smooth = (256/135.3 − 1)/3 = 0.2973 → inv·(1 − 0.2973)/8 + inv·0.2973.
    const s = spec({ rope_theta: 10000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 256 } }, 6);
    const inv1 = 10000 ** (-2 / 6);
    const smooth = (256 / ((2 * Math.PI) / inv1) - 1) / 3;
    expectClose(ropeFrequencies(s, 4, 'm').invFreq, [1, inv1 * ((1 - smooth) / 8 + smooth), 10000 ** (-4 / 6) / 8], 1e-6, 0);
  });

  it('yarn: attention factor 0.1·ln(factor) + 1', () => {
    const f = ropeFrequencies(spec({ rope_scaling: { rope_type: 'yarn', factor: 4 } }), 4, 'm');
    expect(f.attentionScaling).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
  });

  it('refuses scaling types it does not implement, and bad factors', () => {
    expect(() => spec({ rope_scaling: { rope_type: 'mrope', factor: 2 } })).toThrow(/rope_scaling type "mrope" is not supported.*default, linear, dynamic, llama3, yarn, longrope/);
    expect(() => ropeFrequencies(spec({ rope_scaling: { type: 'linear' } }), 4, 'm')).toThrow(/needs a positive "factor"/);
    expect(() => ropeFrequencies(spec({ rope_scaling: { type: 'longrope', short_factor: [1] , long_factor: [1] } }), 4, 'm')).toThrow(/lists of 2 numbers/);
  });
});
