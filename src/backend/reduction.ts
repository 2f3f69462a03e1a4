/**
 * How per-chunk partial results of each reduction kind are combined over a whole tensor (in f64,
 * on the host). Backends produce partials; the engine combines them with these rules.
 */
export type ReductionKind = 'sum' | 'rowSums' | 'chunkSums' | 'histogram' | 'periodicSums';

/** What a backend's reduction token carries: its kind plus a backend-specific partial. */
export interface ReductionToken {
  readonly kind: ReductionKind;
  readonly partial: unknown;
}

export interface ChunkPlace {
  readonly chunkIndex: number;
  readonly chunkCount: number;
  readonly rowStart: number;
  readonly totalRows: number;
}

/** Bins of a magnitude histogram: the upper or the lower 16 bits of |x|'s f32 pattern. */
export const HISTOGRAM_BINS = 65536;

/**
 * The zero total of a reduction. `histogram` gives the dense bins of a histogram total (zeroed):
 * where a merge reuses them (HistogramTotals), rather than a new 512 KiB array per reduction.
 */
export function emptyTotal(kind: ReductionKind, place: ChunkPlace, histogram?: () => Float64Array): number | Float64Array {
  switch (kind) {
    case 'sum':
      return 0;
    case 'rowSums':
      return new Float64Array(place.totalRows);
    case 'chunkSums':
      return new Float64Array(place.chunkCount);
    case 'histogram':
      return histogram?.() ?? new Float64Array(HISTOGRAM_BINS);
    case 'periodicSums':
      return new Float64Array(0); // sized by the first partial (its period)
  }
}

/**
 * The dense histogram totals of one merge: a tensor job takes those its passes need and gives
 * them back when it ends. Allocating them anew (several 512 KiB arrays per tensor) had V8 run a
 * full garbage collection on the engine's thread every tenth of a second in a TIES or
 * breadcrumbs merge, for the external memory alone.
 */
export class HistogramTotals {
  private readonly free: Float64Array[] = [];

  constructor(private readonly most = 16) {}

  /** A zeroed histogram total. */
  take(): Float64Array {
    return this.free.pop()?.fill(0) ?? new Float64Array(HISTOGRAM_BINS);
  }

  /** Totals no one reads any more, for later jobs. */
  give(totals: readonly Float64Array[]): void {
    for (const total of totals) if (this.free.length < this.most) this.free.push(total);
  }
}

/**
 * A chunk's magnitude histogram as its non-empty bins only, in ascending bin order: one chunk's
 * magnitudes fill a few thousand of the 65536 bins, so this is what crosses threads and what the
 * engine adds up (the dense bins would cost the engine's thread a 65536-step loop per chunk).
 */
export interface SparseHistogram {
  readonly bins: Uint16Array;
  readonly counts: Uint32Array;
}

/** What a backend reports per chunk for one reduction: a number, per-row/per-period values, or a histogram. */
export type Partial = number | ArrayLike<number> | SparseHistogram;

/** The non-empty bins of a dense 65536-bin histogram. */
export function sparseHistogram(dense: ArrayLike<number>): SparseHistogram {
  let n = 0;
  for (let b = 0; b < dense.length; b++) n += +(dense[b] !== 0);
  const bins = new Uint16Array(n);
  const counts = new Uint32Array(n);
  for (let b = 0, j = 0; j < n; b++) {
    if (dense[b] === 0) continue;
    bins[j] = b;
    counts[j++] = dense[b];
  }
  return { bins, counts };
}

export function isSparseHistogram(partial: Partial): partial is SparseHistogram {
  return typeof partial === 'object' && 'bins' in partial;
}

/** Adds one chunk's partial (a number, or per-row / per-bin values) into the running total. */
export function combinePartial(
  kind: ReductionKind,
  total: number | Float64Array,
  partial: Partial,
  place: ChunkPlace,
): number | Float64Array {
  switch (kind) {
    case 'sum':
      return (total as number) + (partial as number);
    case 'chunkSums':
      (total as Float64Array)[place.chunkIndex] = partial as number;
      return total;
    case 'rowSums': {
      const values = partial as ArrayLike<number>;
      const out = total as Float64Array;
      for (let r = 0; r < values.length; r++) out[place.rowStart + r] += values[r];
      return out;
    }
    case 'histogram': {
      const { bins, counts } = partial as SparseHistogram;
      const out = total as Float64Array;
      for (let j = 0; j < bins.length; j++) out[bins[j]] += counts[j];
      return out;
    }
    case 'periodicSums': {
      const values = partial as ArrayLike<number>;
      const out = (total as Float64Array).length === values.length ? (total as Float64Array) : new Float64Array(values.length);
      for (let j = 0; j < values.length; j++) out[j] += values[j];
      return out;
    }
  }
}
