import type { ChunkOps, Reduction, Vec } from '../backend/types';
import type { MagnitudeCut } from './magnitude-select';
import { countsBefore, radixCut, upperDigit } from './radix-select';
import type { TensorMerge } from './types';

/**
 * Exact order statistics of |v| over the whole tensor: for each k (1 ≤ k ≤ numel), the k-th
 * largest magnitude, all found in two statistics passes (radix select on the f32 bit patterns of
 * |v|: a histogram of the upper 16 bits, then one of the lower 16 bits per distinct upper bin).
 * Deterministic and independent of chunking: only the values are needed, never which element.
 */
export async function largestMagnitudes(t: TensorMerge, vector: (c: ChunkOps) => Vec, ks: readonly number[]): Promise<number[]> {
  for (const k of ks) {
    if (!Number.isInteger(k) || k < 1 || k > t.numel) throw new Error(`internal: order statistic ${k} of ${t.name} (${t.numel} elements)`);
  }
  if (ks.length === 0) return [];
  const [upper] = await t.reduce((c) => [c.magnitudeHistogram(vector(c), null)]);
  const firsts = ks.map((k) => upperDigit(upper, k));
  const highs = [...new Set(firsts.map((f) => f.bin))];
  const lower = await t.reduce((c) => {
    const v = vector(c);
    return highs.map((high) => c.magnitudeHistogram(v, high));
  });
  return ks.map((k, i) => radixCut(firsts[i], lower[highs.indexOf(firsts[i].bin)], k).threshold);
}

/**
 * Exact top-k by magnitude (as `selectLargestMagnitudes`: equal magnitudes at the threshold kept
 * in index order, so the result does not depend on chunking) for one vector whose k is only known
 * from sums taken over the same data: `sums` are reduced in the pass that builds the first
 * histogram, then `kOf(sums)` gives k. Returns the cut (null when k = 0) and the sums.
 */
export async function selectTopMagnitudesBy(
  t: TensorMerge,
  vector: (c: ChunkOps) => Vec,
  sums: (c: ChunkOps, v: Vec) => Reduction<number>[],
  kOf: (sums: readonly number[]) => number,
): Promise<{ cut: MagnitudeCut | null; sums: number[] }> {
  const [upper, ...totals] = await t.reduce((c) => {
    const v = vector(c);
    return [c.magnitudeHistogram(v, null), ...sums(c, v)];
  });
  const resolved = totals as number[];
  const k = kOf(resolved);
  if (!Number.isInteger(k) || k < 0 || k > t.numel) throw new Error(`internal: top-${k} of ${t.name} (${t.numel} elements)`);
  if (k === 0) return { cut: null, sums: resolved };
  const first = upperDigit(upper as Float64Array, k);
  const [lower] = await t.reduce((c) => [c.magnitudeHistogram(vector(c), first.bin)]);
  const { threshold, tiesAllowed, equal } = radixCut(first, lower, k);
  if (tiesAllowed >= equal) return { cut: { threshold, tiesAllowed: Infinity, tiesBefore: null }, sums: resolved };
  // Only some of the elements equal to the threshold fit: count them per chunk (index order).
  const [counts] = await t.reduce((c) => [c.chunkSums(c.eq(c.abs(vector(c)), threshold))]);
  return { cut: { threshold, tiesAllowed, tiesBefore: countsBefore(counts) }, sums: resolved };
}
