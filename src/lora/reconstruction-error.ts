import { addScaledProduct } from './matmul';
import type { RowBlocks } from './row-blocks';

/**
 * ‖ΔW − B·A‖_F / ‖ΔW‖_F over one more pass, with the factors exactly as written (already rounded
 * to their dtype by the caller): the number reported per module. 0 when ΔW is zero.
 */
export async function relativeError(source: RowBlocks, a: Float32Array, b: Float32Array, rank: number): Promise<number> {
  const n = source.cols;
  let err = 0;
  let norm = 0;
  let scratch = new Float32Array(0);
  await source.forEachBlock((r0, count, values) => {
    if (scratch.length < count * n) scratch = new Float32Array(count * n);
    const block = scratch.subarray(0, count * n);
    block.set(values.subarray(0, count * n));
    addScaledProduct(block, b.subarray(r0 * rank, (r0 + count) * rank), a, count, rank, n, -1);
    for (let i = 0; i < count * n; i++) {
      err += block[i] * block[i];
      norm += values[i] * values[i];
    }
  });
  return norm === 0 ? 0 : Math.sqrt(err / norm);
}
