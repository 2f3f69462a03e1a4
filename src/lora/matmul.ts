/**
 * `out += scale · L·R` for a block of rows: `out` is rows×cols, `L` rows×rank, `R` rank×cols,
 * all row-major f32. The CPU reference of the LoRA product (B·A per chunk of W's rows). The
 * inner loop runs along a row of R and of `out`, so both are read in order (cache-friendly);
 * each product term is accumulated in f32 in rank order.
 */
export function addScaledProduct(
  out: Float32Array,
  left: Float32Array,
  right: Float32Array,
  rows: number,
  rank: number,
  cols: number,
  scale: number,
): void {
  if (out.length < rows * cols || left.length < rows * rank || right.length < rank * cols) {
    throw new RangeError(`addScaledProduct: buffers too small for ${rows}×${rank}·${rank}×${cols}`);
  }
  const acc = new Float32Array(cols);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    const l = i * rank;
    for (let k = 0; k < rank; k++) {
      const coef = left[l + k];
      const r = k * cols;
      for (let j = 0; j < cols; j++) acc[j] += coef * right[r + j];
    }
    const o = i * cols;
    for (let j = 0; j < cols; j++) out[o + j] += scale * acc[j];
  }
}
