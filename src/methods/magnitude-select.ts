import type { ChunkOps, Vec } from '../backend/types';
import type { TensorMerge } from './types';

/** Where the k largest magnitudes of a vector end (see `selectLargestMagnitudes`). */
export interface MagnitudeCut {
  /** |x| of the k-th largest element (the smallest kept magnitude); -1 when k = 0. */
  readonly threshold: number;
  /** How many elements equal `threshold` are kept (the others are dropped). */
  readonly tiesAllowed: number;
  /** Per chunk: how many elements equal to `threshold` come before it (index order). */
  readonly tiesBefore: Float64Array | null;
}

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);
function floatFromBits(pattern: number): number {
  bits[0] = pattern;
  return asFloat[0];
}

/** Scans a 65536-bin histogram from the top; returns the bin holding the `need`-th largest. */
function findBin(hist: Float64Array, need: number): { bin: number; above: number } {
  let above = 0;
  for (let bin = hist.length - 1; bin >= 0; bin--) {
    if (above + hist[bin] >= need) return { bin, above };
    above += hist[bin];
  }
  throw new Error('internal: histogram holds fewer elements than requested');
}

/**
 * Exact top-k by magnitude for several vectors at once, in O(n) per pass: two radix-select
 * passes over the f32 bit patterns of |x| (upper then lower 16 bits), plus one counting pass when
 * elements tie at the threshold and only some of them fit in k (they are then kept in index order,
 * so the result does not depend on chunking or backend).
 */
export async function selectLargestMagnitudes(
  t: TensorMerge,
  vectors: (c: ChunkOps) => Vec[],
  ks: readonly number[],
): Promise<MagnitudeCut[]> {
  const upper = await t.reduce((c) => vectors(c).map((v) => c.magnitudeHistogram(v, null)));
  const firstCut = ks.map((k, i) => (k > 0 ? findBin(upper[i], k) : null));
  const lower = await t.reduce((c) =>
    vectors(c).map((v, i) => c.magnitudeHistogram(v, firstCut[i] ? firstCut[i].bin : 0)),
  );
  const cuts = ks.map((k, i) => {
    const first = firstCut[i];
    if (!first) return { threshold: -1, tiesAllowed: 0, equal: 0 };
    const second = findBin(lower[i], k - first.above);
    const pattern = ((first.bin << 16) | second.bin) >>> 0;
    return {
      threshold: floatFromBits(pattern),
      tiesAllowed: k - first.above - second.above,
      equal: lower[i][second.bin],
    };
  });
  const needsTieCounts = cuts.map((cut) => cut.tiesAllowed < cut.equal);
  let counts: Float64Array[] = [];
  if (needsTieCounts.some(Boolean)) {
    counts = await t.reduce((c) =>
      vectors(c).map((v, i) => c.chunkSums(c.eq(c.abs(v), cuts[i].threshold))),
    );
  }
  return cuts.map((cut, i) => {
    if (!needsTieCounts[i]) return { threshold: cut.threshold, tiesAllowed: Infinity, tiesBefore: null };
    const before = new Float64Array(counts[i].length);
    for (let j = 1; j < before.length; j++) before[j] = before[j - 1] + counts[i][j - 1];
    return { threshold: cut.threshold, tiesAllowed: cut.tiesAllowed, tiesBefore: before };
  });
}

/** One chunk of `v` with only the elements selected by `selectLargestMagnitudes` kept. */
export function keepLargestMagnitudes(c: ChunkOps, v: Vec, cut: MagnitudeCut): Vec {
  if (cut.threshold < 0) return c.mul(c.gt(c.abs(v), Infinity), 0); // k = 0: nothing is kept
  return c.keepTopMagnitude(v, cut.threshold, cut.tiesBefore ? cut.tiesBefore[c.chunkIndex] : 0, cut.tiesAllowed);
}
