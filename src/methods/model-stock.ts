import type { ChunkOps, Vec } from '../backend/types';
import { gramMatrix, rowGramMatrices } from './gram';
import { flag, isTrue } from './params';
import type { MergeMethod, TensorMerge } from './types';

/**
 * Model Stock (docs/methods.md §12): interpolates between the base and the average of the
 * fine-tunes by t = N·cosθ / (1 + (N−1)·cosθ), cosθ the mean pairwise cosine of their task
 * vectors, over the whole tensor or (filter_wise) per row.
 */
export const modelStock: MergeMethod = {
  name: 'model_stock',
  prettyName: 'Model Stock',
  paperUrl: 'https://arxiv.org/abs/2403.19522',
  description:
    'Averages several fine-tunes of one base model, then pulls the average back toward the base by an amount computed from how much the fine-tunes agree: the more their changes point the same way, the closer the result stays to their average; unrelated changes leave the base.',
  whenToUse:
    'Two or more fine-tunes of the same base trained on similar data (e.g. different seeds or hyperparameters), when you want a weight-free average that stays close to the base where they disagree.',
  params: [
    flag('filter_wise', false, 'Compute the interpolation factor for every row (the last dimension) of a matrix instead of once per tensor.'),
  ],
  base: 'required',
  shapes: 'rectify',
  // The base and at least two fine-tunes (the planner lets a tensor only the base has through).
  minInputs: 3,
  sliceInputs: { others: { min: 2 }, loneSource: 'base', baseInSources: true },
  async merge(t) {
    const base = t.baseIndex;
    const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
    if (others.length === 0) return t.copyInput(base);
    if (others.length < 2) {
      throw new Error(
        `model_stock needs the base model and at least two others for tensor ${t.name}, but it has ${t.inputs.length} (${t.inputs.map((i) => i.model).join(', ')})`,
      );
    }
    const n = others.length;
    const offsets = (c: ChunkOps): Vec[] => others.map((i) => c.sub(c.input(i), c.input(base)));
    const models = (c: ChunkOps): Vec[] => [...others.map((i) => c.input(i)), c.input(base)];

    if (!isTrue(t.params.filter_wise)) {
      const gram = await gramMatrix(t, offsets, n);
      const factor = stockFactor(n, (i, j) => gram[i][j]);
      checkFinite(t, [factor]);
      const weights = [...others.map(() => factor / n), 1 - factor];
      await t.apply((c) => c.weightedSum(models(c), weights));
      return;
    }
    const gram = await rowGramMatrices(t, offsets, n);
    const factors = new Float64Array(t.rows);
    for (let r = 0; r < t.rows; r++) factors[r] = stockFactor(n, (i, j) => gram[i][j][r]);
    checkFinite(t, factors);
    const share = factors.map((f) => f / n);
    const keep = factors.map((f) => 1 - f);
    await t.apply((c) => {
      const s = c.perRow(share);
      return c.weightedSum(models(c), [...others.map(() => s), c.perRow(keep)]);
    });
  },
};

/** t = N·cosθ / (1 + (N−1)·cosθ), with cosθ the mean over pairs i<j of the clamped cosines. */
export function stockFactor(n: number, gram: (i: number, j: number) => number): number {
  let total = 0;
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const norms = Math.sqrt(Math.max(gram(i, i) * gram(j, j), 0)); // exact ±1 for exactly (anti)parallel offsets
      total += Math.min(1, Math.max(-1, gram(i, j) / Math.max(norms, 1e-6)));
      pairs++;
    }
  }
  const cos = total / pairs;
  return (n * cos) / (1 + (n - 1) * cos);
}

function checkFinite(t: TensorMerge, factors: ArrayLike<number>): void {
  if (Array.prototype.every.call(factors, Number.isFinite)) return;
  throw new Error(
    `model_stock: in tensor ${t.name} the task vectors point in opposite directions (mean cosine −1/(N−1)), where the ` +
      'interpolation factor is infinite (mergekit writes inf/NaN weights here). Leave one of the opposing models out.',
  );
}
