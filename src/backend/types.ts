/**
 * The small vocabulary of tensor operations that merge methods are written against.
 *
 * A method never sees whole tensors: the engine streams a tensor in row-aligned chunks and calls
 * the method's callback once per chunk with a `ChunkOps` for that chunk. Elementwise operations
 * return chunk-sized vectors (`Vec`); reductions return tokens that the engine combines over all
 * chunks (in f64) and resolves after the pass. The CPU backend (reference) and the WebGPU backend
 * implement this interface; methods cannot tell them apart.
 */

declare const vecBrand: unique symbol;
/** A chunk-sized f32 vector living in the backend (a Float32Array on the CPU, a GPU buffer on WebGPU). */
export interface Vec {
  readonly [vecBrand]: true;
}

/** A vector or a scalar broadcast to every element. */
export type Operand = Vec | number;

declare const reductionBrand: unique symbol;
/** A reduction over the whole tensor, resolved after a pass to `T`. */
export interface Reduction<T extends number | Float64Array> {
  readonly [reductionBrand]: T;
}

export interface ChunkOps {
  /** Position of this chunk in the tensor's chunk sequence (0-based, same in every pass). */
  readonly chunkIndex: number;
  /** First element of the chunk, as a flat index into the output tensor. */
  readonly start: number;
  /** Elements in this chunk (= rows × cols, except when a huge 1-D tensor is split). */
  readonly length: number;
  /** First row of the chunk and its row count; `cols` is the row length (last dimension). */
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;

  /** Input `i` of the job (in `TensorMerge.inputs` order), decoded to f32. */
  input(i: number): Vec;

  add(a: Operand, b: Operand): Vec;
  sub(a: Operand, b: Operand): Vec;
  mul(a: Operand, b: Operand): Vec;
  div(a: Operand, b: Operand): Vec;
  min(a: Operand, b: Operand): Vec;
  max(a: Operand, b: Operand): Vec;
  neg(a: Vec): Vec;
  abs(a: Vec): Vec;
  /** -1, 0 or +1 (sign of ±0 is 0). */
  sign(a: Vec): Vec;
  sqrt(a: Vec): Vec;
  /** 1 where a > b, else 0 (and likewise for the others). */
  gt(a: Operand, b: Operand): Vec;
  ge(a: Operand, b: Operand): Vec;
  eq(a: Operand, b: Operand): Vec;
  /** cond ≠ 0 ? a : b */
  where(cond: Vec, a: Operand, b: Operand): Vec;
  /** Σ weights[i]·terms[i], fused. */
  weightedSum(terms: readonly Vec[], weights: readonly Operand[]): Vec;
  /** Uniform [0,1) numbers keyed by (seed, tensor name, element index, stream): independent of chunking. */
  random(stream: number): Vec;
  /** Broadcasts one value per row (indexed by global row) over the chunk. */
  perRow(values: Float64Array): Vec;

  /** Σ a over the tensor (f64). */
  sum(a: Vec): Reduction<number>;
  /** Σ a per row; resolved to a Float64Array with one entry per row of the tensor. */
  rowSums(a: Vec): Reduction<Float64Array>;
  /** Σ a per chunk; resolved to a Float64Array indexed by chunkIndex. */
  chunkSums(a: Vec): Reduction<Float64Array>;
  /**
   * Histogram of the f32 bit patterns of |a| (sign cleared, so the order of patterns is the order
   * of magnitudes). `high === null`: 65536 bins over the upper 16 bits. Otherwise only elements
   * whose upper 16 bits equal `high`, binned by their lower 16 bits.
   */
  magnitudeHistogram(a: Vec, high: number | null): Reduction<Float64Array>;
  /**
   * Exact top-k by magnitude: `a` where |a| > threshold, and for elements with |a| == threshold
   * the first `tiesAllowed - tiesBefore` of them in index order within this chunk; 0 elsewhere.
   */
  keepTopMagnitude(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec;
  /**
   * TIES sign consensus (docs/methods.md §3, §5), fused: with W_j = scales[j]·terms[j], the
   * elected sign is + where Σ_j W_j ≥ 0, else −; the result is Σ of the W_j whose sign equals it
   * (exact zeros never agree), divided — when `weights` is given — by Σ of the agreeing
   * weights[j] (a zero sum divides by 1).
   */
  signConsensus(terms: readonly Vec[], scales: readonly number[], weights: readonly number[] | null): Vec;
  /**
   * Rank of |a| within its row of the chunk (`rows` × `cols`, row-major), as f32: 1 for the
   * smallest magnitude of the row up to `cols` for the largest. Magnitudes compare by the f32 bit
   * pattern of |a| (as magnitudeHistogram: −0 equals +0, NaN ranks above +∞). Equal magnitudes
   * are ordered by index, the **earlier element ranking higher** (the rule top-k uses: of equal
   * magnitudes the first in index order is kept). Exact for rows of up to 2^24 elements.
   * A piece of a split 1-D tensor is ranked as a row of its own, so methods that rank ask the
   * engine for whole rows (`MergeMethod.wholeRows`).
   */
  rowRanks(a: Vec): Vec;

  /** e^a per element, in f32 (overflow gives +∞, NaN stays NaN). */
  exp(a: Vec): Vec;
  /** Natural logarithm per element, in f32: log(+0) = log(−0) = −∞, log(x < 0) = NaN. */
  log(a: Vec): Vec;
  /** Σ a·b over the tensor: exactly `sum(mul(a, b))` (products rounded to f32), fused. */
  dot(a: Vec, b: Vec): Reduction<number>;
  /**
   * The largest element of each row of the chunk, broadcast over that row (NaN when the row holds
   * a NaN; the sign of a zero maximum is unspecified). Rows are the chunk's `rows` × `cols`: whole rows of the tensor, except for the pieces
   * of a split 1-D tensor, so methods that use it set `MergeMethod.wholeRows`.
   */
  rowMaxBroadcast(a: Vec): Vec;
  /**
   * Σ of each row of the chunk (accumulated in f64, rounded once to f32), broadcast over that row;
   * whole rows as for `rowMaxBroadcast`.
   */
  rowSumBroadcast(a: Vec): Vec;
  /**
   * Σ a over the elements whose flat index in the tensor is ≡ j (mod `period`), for j in
   * [0, period); resolved to a Float64Array of length `period` (the same `period` in every chunk).
   * With period = cols these are the column sums of a [rows, cols] matrix; with
   * period = numel / shape[0] the sums along dim 0 of any tensor.
   */
  periodicSums(a: Vec, period: number): Reduction<Float64Array>;
  /** Broadcasts `values` periodically: the element at flat index i gets values[i mod values.length], rounded to f32. */
  periodic(values: Float64Array): Vec;
}

export type ReductionSet = readonly Reduction<number | Float64Array>[] | Readonly<Record<string, Reduction<number | Float64Array>>>;

export type Resolved<T> = { -readonly [K in keyof T]: T[K] extends Reduction<infer R> ? R : never };
