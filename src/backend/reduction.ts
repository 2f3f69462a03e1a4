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

export function emptyTotal(kind: ReductionKind, place: ChunkPlace): number | Float64Array {
  switch (kind) {
    case 'sum':
      return 0;
    case 'rowSums':
      return new Float64Array(place.totalRows);
    case 'chunkSums':
      return new Float64Array(place.chunkCount);
    case 'histogram':
      return new Float64Array(65536);
    case 'periodicSums':
      return new Float64Array(0); // sized by the first partial (its period)
  }
}

/** Adds one chunk's partial (a number, or per-row / per-bin values) into the running total. */
export function combinePartial(
  kind: ReductionKind,
  total: number | Float64Array,
  partial: number | ArrayLike<number>,
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
      const values = partial as ArrayLike<number>;
      const out = total as Float64Array;
      for (let b = 0; b < values.length; b++) out[b] += values[b];
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
