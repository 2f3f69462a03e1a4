/**
 * Independent, deliberately naive implementations of docs/methods.md §4–5 for the sparse
 * GTA methods (sort-based ranks, f64 sums), used as expected values of end-to-end tests. The
 * random methods use Alloy's documented random numbers (src/backend/random.ts): the mask is
 * specified as "keep where uniform(seed, tensor, stream = model index among non-base, element) < p".
 */
import { randomUniform, streamKey } from '../../src/backend';

/** The task vector as mergekit computes it in f32: x − base, rounded. */
export function deltaF32(x: Float32Array, base: Float32Array): Float32Array {
  return x.map((v, i) => Math.fround(v - base[i]));
}

/** Ascending |x| order; equal magnitudes: the earlier element counts as the larger. */
function ascendingOrder(x: ArrayLike<number>, from: number, to: number): number[] {
  const idx: number[] = [];
  for (let i = from; i < to; i++) idx.push(i);
  return idx.sort((a, b) => Math.abs(x[a]) - Math.abs(x[b]) || b - a);
}

/** magnitude_outliers with the n_top = 0 fix: keep ascending ranks [n_bot, N − n_top). */
export function breadcrumbsPruneRef(x: Float32Array, density: number, gamma: number): Float64Array {
  const out = new Float64Array(x.length);
  if (density >= 1) return Float64Array.from(x);
  const n = x.length;
  const target = Math.floor(density * n);
  let nTop = Math.floor(gamma * n);
  let nBot = n - target - nTop;
  if (nBot < 0) {
    nTop += nBot;
    nBot = 0;
  }
  for (const i of ascendingOrder(x, 0, n).slice(nBot, n - nTop)) out[i] = x[i];
  return out;
}

/** bernoulli: keep where the stream's uniform is below density (compared in f32 like the backend). */
export function darePruneRef(x: Float32Array, density: number, seed: number, tensor: string, stream: number): Float64Array {
  if (density >= 1) return Float64Array.from(x);
  const key = streamKey(seed, tensor, stream);
  const p = Math.fround(density);
  return Float64Array.from(x, (v, i) => (randomUniform(key, i) < p ? v : 0));
}

/** della_magprune along rows of `cols`: p = (d−ε) + (rank−1)/(n−1)·2ε in the backend's f32 steps. */
export function dellaPruneRef(
  x: Float32Array,
  cols: number,
  density: number,
  epsilon: number,
  seed: number,
  tensor: string,
  stream: number,
): Float64Array {
  if (density >= 1) return Float64Array.from(x);
  const out = new Float64Array(x.length);
  if (density <= 0) return out;
  const key = streamKey(seed, tensor, stream);
  const slope = Math.fround(cols > 1 ? (2 * epsilon) / (cols - 1) : 0);
  const low = Math.fround(cols > 1 ? density - epsilon : density);
  for (let start = 0; start < x.length; start += cols) {
    ascendingOrder(x, start, start + cols).forEach((i, rank0) => {
      const p = Math.fround(Math.fround(rank0 * slope) + low);
      if (randomUniform(key, i) < p) out[i] = x[i];
    });
  }
  return out;
}

/** L1 rescale of mergekit ≥ 0.1.0: kept · Σ|x|/Σ|kept|, unless either sum is below 1e-7. */
export function l1RescaleRef(x: ArrayLike<number>, kept: Float64Array): Float64Array {
  let before = 0, after = 0;
  for (let i = 0; i < kept.length; i++) {
    before += Math.abs(x[i]);
    after += Math.abs(kept[i]);
  }
  if (before < 1e-7 || after < 1e-7) return kept;
  return kept.map((v) => (v * before) / after);
}

/** Steps 3–7 of docs/methods.md §5 on already sparsified (and rescaled) deltas. */
export function gtaMixRef(
  base: Float32Array,
  deltas: Float64Array[],
  weights: number[],
  options: { consensus: boolean; normalize: boolean; lambda?: number },
): Float64Array {
  const wsum = weights.reduce((a, b) => a + b, 0);
  return Float64Array.from(base, (b, i) => {
    const wd = deltas.map((d, j) => d[i] * weights[j]);
    let mixed = 0;
    let divisor = 0;
    if (options.consensus) {
      const majority = wd.reduce((a, c) => a + c, 0) >= 0 ? 1 : -1;
      wd.forEach((v, j) => {
        if (Math.sign(v) === majority) {
          mixed += v;
          divisor += weights[j];
        }
      });
      if (divisor === 0) divisor = 1;
    } else {
      mixed = wd.reduce((a, c) => a + c, 0);
      divisor = Math.abs(wsum) < 1e-8 ? 1 : wsum;
    }
    if (options.normalize) mixed /= divisor;
    return b + mixed * (options.lambda ?? 1);
  });
}
