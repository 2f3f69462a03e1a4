/**
 * `out += scale · L·R` for a block of rows: `out` is rows×cols, `L` rows×rank, `R` rank×cols,
 * all row-major f32. The CPU reference of the LoRA product (B·A per chunk of W's rows). The
 * inner loop runs along rows of R and of the accumulator, read in order (cache-friendly); the
 * rank is taken four terms at a time, each group summed in float64 and added to an f32
 * accumulator in rank order, then `scale·acc` is added to `out` (PEFT scales the product).
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
    let k = 0;
    for (; k + 4 <= rank; k += 4) {
      const c0 = left[l + k];
      const c1 = left[l + k + 1];
      const c2 = left[l + k + 2];
      const c3 = left[l + k + 3];
      const r0 = k * cols;
      const r1 = r0 + cols;
      const r2 = r1 + cols;
      const r3 = r2 + cols;
      for (let j = 0; j < cols; j++) acc[j] += c0 * right[r0 + j] + c1 * right[r1 + j] + c2 * right[r2 + j] + c3 * right[r3 + j];
    }
    for (; k < rank; k++) {
      const coef = left[l + k];
      const r = k * cols;
      for (let j = 0; j < cols; j++) acc[j] += coef * right[r + j];
    }
    const o = i * cols;
    for (let j = 0; j < cols; j++) out[o + j] += scale * acc[j];
  }
}
