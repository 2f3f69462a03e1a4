/**
 * A matrix read as blocks of whole rows, front to back, in f32 (ΔW = W_ft − W_base for the
 * extraction). Each pass of the randomized SVD visits every block once; the block handed to
 * `visit` is only valid during the call.
 */
export interface RowBlocks {
  readonly rows: number;
  readonly cols: number;
  forEachBlock(visit: (rowStart: number, rowCount: number, values: Float32Array) => void): Promise<void>;
}

/** Blocks of an in-memory row-major matrix (tests, and tensors small enough to hold). */
export function memoryRowBlocks(values: Float32Array, rows: number, cols: number, blockRows = 64): RowBlocks {
  return {
    rows,
    cols,
    async forEachBlock(visit) {
      for (let r = 0; r < rows; r += blockRows) {
        const n = Math.min(blockRows, rows - r);
        visit(r, n, values.subarray(r * cols, (r + n) * cols));
      }
    },
  };
}
