/**
 * The steps of a radix select on the f32 bit patterns of |x| (non-negative floats order like their
 * bit patterns read as unsigned integers): a histogram of the upper 16 bits finds the bin of the
 * k-th largest magnitude, a histogram of the lower 16 bits within that bin finds the value. The
 * passes over the data (`t.reduce` with `c.magnitudeHistogram`) are the callers'; these are the
 * steps between them, shared by magnitude-select.ts and order-statistics.ts.
 */

/** The upper 16 bits of the k-th largest: its bin, and how many elements lie in higher bins. */
export interface UpperDigit {
  readonly bin: number;
  readonly above: number;
}

/** Where the k-th largest magnitude is, once both digits are known. */
export interface RadixCut {
  /** The k-th largest |x|. */
  readonly threshold: number;
  /** How many elements equal to `threshold` are among the k largest. */
  readonly tiesAllowed: number;
  /** How many elements equal `threshold`. */
  readonly equal: number;
  /** The lower 16 bits of `threshold` (its bin in the lower histogram). */
  readonly lowBin: number;
}

/** Scans a 65536-bin histogram from the top; returns the bin holding the `k`-th largest. */
export function upperDigit(hist: Float64Array, k: number): UpperDigit {
  let above = 0;
  for (let bin = hist.length - 1; bin >= 0; bin--) {
    if (above + hist[bin] >= k) return { bin, above };
    above += hist[bin];
  }
  throw new Error('internal: histogram holds fewer elements than requested');
}

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);

/** The k-th largest from its upper digit and the lower histogram of that digit's bin. */
export function radixCut(first: UpperDigit, lower: Float64Array, k: number): RadixCut {
  const second = upperDigit(lower, k - first.above);
  bits[0] = ((first.bin << 16) | second.bin) >>> 0;
  return {
    threshold: asFloat[0],
    tiesAllowed: k - first.above - second.above,
    equal: lower[second.bin],
    lowBin: second.bin,
  };
}

/** Per chunk, how many counted elements come in earlier chunks (exclusive prefix sums). */
export function countsBefore(counts: ArrayLike<number>): Float64Array {
  const before = new Float64Array(counts.length);
  for (let j = 1; j < before.length; j++) before[j] = before[j - 1] + counts[j - 1];
  return before;
}
