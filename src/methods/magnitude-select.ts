import type { Partial, SparseHistogram } from '../backend/reduction';
import type { ChunkOps, Vec } from '../backend/types';
import { countsBefore, radixCut, upperDigit } from './radix-select';
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

/**
 * Exact top-k by magnitude for several vectors at once, in O(n) per pass: two radix-select
 * passes over the f32 bit patterns of |x| (upper then lower 16 bits). When elements tie at the
 * threshold and only some of them fit in k, the first ones in index order are kept, so the result
 * does not depend on chunking or backend; how many ties precede each chunk comes from each
 * chunk's own lower histogram (kept sparse while the second pass runs), or — if those would take
 * too much memory — from one more counting pass.
 */
export async function selectLargestMagnitudes(
  t: TensorMerge,
  vectors: (c: ChunkOps) => Vec[],
  ks: readonly number[],
): Promise<MagnitudeCut[]> {
  const cuts = await selectMagnitudeCuts(t, vectors, ks.map((k) => [k]));
  return cuts.map(([cut]) => cut);
}

/**
 * As `selectLargestMagnitudes`, for any number of k per vector (`ks[i]` lists vector i's; an
 * empty list skips the vector), all found in the same passes. The cuts of one vector are nested:
 * with the order "larger |x| first, equal |x| in index order", the k largest are always the first
 * k of that one order, so the elements between two cuts are `keep(k2) − keep(k1)` exactly.
 */
export async function selectMagnitudeCuts(
  t: TensorMerge,
  vectors: (c: ChunkOps) => Vec[],
  ks: readonly (readonly number[])[],
  options: { readonly maxPerChunkEntries?: number } = {},
): Promise<MagnitudeCut[][]> {
  for (const list of ks) {
    for (const k of list) {
      if (!Number.isInteger(k) || k < 0 || k > t.numel) throw new Error(`internal: top-${k} of ${t.name} (${t.numel} elements)`);
    }
  }
  const used = ks.flatMap((list, i) => (list.some((k) => k > 0) ? [i] : []));
  if (used.length === 0) return ks.map((list) => list.map(() => ({ threshold: -1, tiesAllowed: Infinity, tiesBefore: null })));
  const upperHists = await t.reduce((c) => {
    const v = vectors(c);
    return used.map((i) => c.magnitudeHistogram(v[i], null));
  });
  const upper = new Map(used.map((i, n) => [i, upperHists[n]]));
  const firsts = ks.map((list, i) => list.map((k) => (k > 0 ? upperDigit(upper.get(i)!, k) : null)));

  // The lower 16 bits, once per distinct upper bin of a vector.
  const lowerRequests = ks.flatMap((_, i) =>
    [...new Set(firsts[i].flatMap((f) => (f ? [f.bin] : [])))].map((bin) => ({ vector: i, bin })),
  );
  const perChunk = new PerChunkHistograms(lowerRequests.length, options.maxPerChunkEntries ?? 1 << 22);
  const lowerHists = await t.reduce(
    (c) => {
      const v = vectors(c);
      return lowerRequests.map((r) => c.magnitudeHistogram(v[r.vector], r.bin));
    },
    (chunkIndex, partials) => perChunk.add(chunkIndex, partials),
  );
  const requestOf = (i: number, bin: number): number => lowerRequests.findIndex((r) => r.vector === i && r.bin === bin);
  const lower = (i: number, bin: number): Float64Array => lowerHists[requestOf(i, bin)];

  const found = ks.map((list, i) =>
    list.map((k, m) => {
      const first = firsts[i][m];
      if (!first) return { threshold: -1, tiesAllowed: 0, equal: 0, request: -1, lowBin: 0 };
      return { ...radixCut(first, lower(i, first.bin), k), request: requestOf(i, first.bin) };
    }),
  );

  // Where only some of the elements equal to a threshold fit, count them per chunk (index order):
  // from the per-chunk histograms, or else in one more pass.
  const tieRequests = perChunk.complete ? [] : found.flatMap((list, i) =>
    [...new Set(list.filter((cut) => cut.tiesAllowed < cut.equal).map((cut) => cut.threshold))].map((threshold) => ({
      vector: i,
      threshold,
    })),
  );
  let tieCounts: Float64Array[] = [];
  if (tieRequests.length > 0) {
    tieCounts = await t.reduce((c) => {
      const v = vectors(c);
      const magnitudes = new Map<number, Vec>();
      return tieRequests.map((r) => {
        let m = magnitudes.get(r.vector);
        if (!m) magnitudes.set(r.vector, (m = c.abs(v[r.vector])));
        return c.chunkSums(c.eq(m, r.threshold));
      });
    });
  }
  return found.map((list, i) =>
    list.map((cut) => {
      if (!(cut.tiesAllowed < cut.equal)) return { threshold: cut.threshold, tiesAllowed: Infinity, tiesBefore: null };
      const counts = perChunk.complete
        ? perChunk.counts(cut.request, cut.lowBin)
        : tieCounts[tieRequests.findIndex((r) => r.vector === i && r.threshold === cut.threshold)];
      return { threshold: cut.threshold, tiesAllowed: cut.tiesAllowed, tiesBefore: countsBefore(counts) };
    }),
  );
}

/** One chunk of `v` with only the elements selected by `selectLargestMagnitudes` kept. */
export function keepLargestMagnitudes(c: ChunkOps, v: Vec, cut: MagnitudeCut): Vec {
  if (cut.threshold < 0) return c.mul(c.gt(c.abs(v), Infinity), 0); // k = 0: nothing is kept
  return c.keepTopMagnitude(v, cut.threshold, cut.tiesBefore ? cut.tiesBefore[c.chunkIndex] : 0, cut.tiesAllowed);
}

/**
 * Every chunk's lower histograms (sparse, as backends report them: one upper bin holds few
 * distinct magnitudes per chunk). Gives up, freeing them, beyond `maxEntries` in all; the caller
 * then counts ties in a pass of its own.
 */
class PerChunkHistograms {
  private readonly chunks: SparseHistogram[][];
  private entries = 0;
  complete = true;

  constructor(
    requests: number,
    private readonly maxEntries: number,
  ) {
    this.chunks = Array.from({ length: requests }, () => []);
  }

  add(chunkIndex: number, partials: readonly Partial[]): void {
    if (!this.complete) return;
    partials.forEach((partial, r) => {
      const hist = partial as SparseHistogram;
      this.chunks[r][chunkIndex] = hist;
      this.entries += hist.bins.length;
    });
    if (this.entries > this.maxEntries) {
      this.complete = false;
      this.chunks.forEach((c) => (c.length = 0));
    }
  }

  /** Per chunk, how many elements of request `r`'s upper bin have the lower bits `bin`. */
  counts(r: number, bin: number): Float64Array {
    const chunks = this.chunks[r];
    const out = new Float64Array(chunks.length);
    chunks.forEach(({ bins: chunkBins, counts }, chunk) => {
      let lo = 0, hi = chunkBins.length; // binary search: bins are ascending
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (chunkBins[mid] < bin) lo = mid + 1;
        else hi = mid;
      }
      if (lo < chunkBins.length && chunkBins[lo] === bin) out[chunk] = counts[lo];
    });
    return out;
  }
}
