import type { ChunkOps, Vec } from '../backend/types';
import type { TensorMerge } from './types';

/**
 * The Gram matrix G[i][j] = ⟨v_i, v_j⟩ of a few tensor-sized vectors, over the whole tensor, from
 * one statistics pass (f64 sums of f32 products). Methods whose result stays in the span of their
 * inputs (slerp variants, karcher, model_stock) need nothing else from the data.
 */
export async function gramMatrix(t: TensorMerge, vectors: (c: ChunkOps) => Vec[], n: number): Promise<number[][]> {
  const sums = await t.reduce((c) => {
    const v = vectors(c);
    const dots = [];
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) dots.push(c.dot(v[i], v[j]));
    return dots;
  });
  return symmetric(n, (k) => sums[k]);
}

/** As `gramMatrix`, one matrix per row of the tensor (rows along the last dimension): G[i][j][row]. */
export async function rowGramMatrices(t: TensorMerge, vectors: (c: ChunkOps) => Vec[], n: number): Promise<Float64Array[][]> {
  const sums = await t.reduce((c) => {
    const v = vectors(c);
    const dots = [];
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) dots.push(c.rowSums(c.mul(v[i], v[j])));
    return dots;
  });
  return symmetric(n, (k) => sums[k]);
}

function symmetric<T>(n: number, entry: (k: number) => T): T[][] {
  const g: T[][] = Array.from({ length: n }, () => new Array<T>(n));
  let k = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      g[i][j] = g[j][i] = entry(k++);
    }
  }
  return g;
}
