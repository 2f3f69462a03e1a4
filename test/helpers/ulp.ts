import { expect } from 'vitest';

const MANTISSA_BITS = { F32: 23, F16: 10, BF16: 7 } as const;
const MIN_EXPONENT = { F32: -126, F16: -14, BF16: -126 } as const;

/** One unit in the last place of `x` in the given dtype (subnormal spacing below the normal range). */
export function ulp(x: number, dtype: 'F32' | 'F16' | 'BF16'): number {
  const a = Math.abs(x);
  const e = a === 0 ? MIN_EXPONENT[dtype] : Math.max(MIN_EXPONENT[dtype], Math.floor(Math.log2(a)));
  return 2 ** (e - MANTISSA_BITS[dtype]);
}

/** Σ|x| over the inputs of each element: the scale of f32 rounding errors in a weighted sum. */
export function magnitudes(...inputs: ArrayLike<number>[]): Float64Array {
  const out = new Float64Array(inputs[0].length);
  for (const x of inputs) for (let i = 0; i < out.length; i++) out[i] += Math.abs(x[i]);
  return out;
}

const F32_EPSILON = 2 ** -24;

/**
 * Every element within `ulps` units of the output dtype of the expected value (computed in f64),
 * plus — when `scale` is given — the f32 arithmetic error 8·2⁻²⁴·scale[i] that cancellation of
 * large terms legitimately leaves in a small result.
 */
export function expectWithinUlp(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  dtype: 'F32' | 'F16' | 'BF16',
  ulps = 1,
  what = '',
  scale?: ArrayLike<number>,
): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const slack = scale ? 8 * F32_EPSILON * scale[i] : 0;
    const err = Math.max(0, Math.abs(actual[i] - expected[i]) - slack) / ulp(expected[i], dtype);
    if (!(err <= worst)) {
      worst = err;
      worstAt = i;
    }
  }
  expect(worst, `${what} element ${worstAt}: got ${actual[worstAt]}, expected ${expected[worstAt]}`).toBeLessThanOrEqual(ulps);
}
