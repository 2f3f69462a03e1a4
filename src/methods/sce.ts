import type { ChunkOps, Vec } from '../backend/types';
import { keepLargestMagnitudes } from './magnitude-select';
import { selectTopMagnitudesBy } from './order-statistics';
import { flag } from './params';
import type { MergeMethod } from './types';

/**
 * SCE (docs/methods.md §14): Select the positions where the task vectors vary most across
 * models, Calculate one weight per model from its mean squared task vector, Erase the entries
 * whose sign disagrees with the (unweighted) majority, and average what is left.
 */
export const sce: MergeMethod = {
  name: 'sce',
  prettyName: 'SCE',
  paperUrl: 'https://arxiv.org/abs/2408.07990',
  description:
    'Merges fine-tunes of one base in three steps: keeps only the parameters where the models\' changes differ the most from each other (select_topk), weights each model by the strength of its changes, and at every parameter drops the changes whose sign disagrees with the majority before averaging the rest into the base. No per-model weights are needed.',
  whenToUse:
    'Several fine-tunes of the same base (often of different sizes of training) that you want to fuse without tuning weights; lower select_topk to keep only the most contested parameters.',
  params: [
    flag('int8_mask', false, 'Store sign masks as int8 to save memory (no effect on the numbers).', { laxBoolean: true }),
    {
      name: 'select_topk',
      scope: 'global',
      type: 'number',
      required: false,
      default: 1,
      min: 0,
      max: 1,
      description:
        'Fraction of the parameters (among those where the models differ) that is merged, chosen by the largest variance across models; the others keep the base. 1 merges all.',
    },
  ],
  base: 'required',
  shapes: 'strict',
  minInputs: 1,
  sliceInputs: { loneSource: 'base', baseInSources: true },
  async merge(t) {
    const base = t.baseIndex;
    const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
    if (others.length === 0) return t.copyInput(base);
    const n = others.length;
    const computed = new WeakMap<ChunkOps, Vec[]>(); // one chunk's task vectors, computed once
    const raw = (c: ChunkOps): Vec[] => {
      let tv = computed.get(c);
      if (!tv) computed.set(c, (tv = others.map((i) => c.sub(c.input(i), c.input(base)))));
      return tv;
    };

    // Select: the k positions of largest variance across models, k a fraction of the non-zero ones.
    // The same pass bounds Σ_i mean(TV_i²) before selection (see Calculate).
    const topk = t.params.select_topk ?? 1;
    let select: ((c: ChunkOps, tv: Vec[]) => Vec[]) | null = null;
    let bound: number | null = null;
    if (topk < 1) {
      const selection = await selectTopMagnitudesBy(
        t,
        (c) => variance(c, raw(c)),
        (c, v) => [c.sum(c.gt(v, 0)), ...raw(c).map((tv) => c.dot(tv, tv))],
        ([nonzero]) => (topk <= 0 ? 0 : Math.floor(nonzero * topk)),
      );
      const cut = selection.cut;
      bound = selection.sums.slice(1).reduce((a, b) => a + b, 0);
      select = (c, tv) => {
        // Kept variances are > 0 (k ≤ the non-zero count), so "kept" is "non-zero after the cut".
        const keep = cut ? c.gt(keepLargestMagnitudes(c, variance(c, tv), cut), 0) : c.gt(tv[0], Infinity);
        return tv.map((v) => c.mul(v, keep));
      };
    }
    const tvs = (c: ChunkOps): Vec[] => {
      const tv = raw(c);
      return select ? select(c, tv) : tv;
    };

    // Calculate: ω_i ∝ mean(TV_i²) of the selected task vectors, uniform when Σ mean(TV²) < 1e-6.
    // Selection only removes squares, so when the bound from the count pass is already below that
    // (typical for real fine-tunes, whose changes are ~1e-4), the pass is skipped.
    let omega = others.map(() => 1 / n);
    if (!(bound !== null && bound / t.numel < 1e-6)) {
      const squares = await t.reduce((c) => tvs(c).map((v) => c.dot(v, v)));
      const means = squares.map((s) => s / t.numel);
      const total = means.reduce((a, b) => a + b, 0);
      if (Math.abs(total) >= 1e-6) omega = means.map((s) => s / total);
    }

    // Erase the entries against the majority sign of Σ TV_i (exact zeros never agree), then
    // merged = Σ TV_i·E_i / max(Σ E_i, 1e-6) with E_i = ω_i·[agrees].
    await t.apply((c) => {
      const tv = tvs(c);
      const sign = c.where(c.ge(c.weightedSum(tv, tv.map(() => 1)), 0), 1, -1);
      const e = tv.map((v, i) => c.mul(c.gt(c.mul(v, sign), 0), omega[i]));
      const divisor = c.max(c.weightedSum(e, e.map(() => 1)), 1e-6);
      return c.add(c.input(base), c.div(c.weightedSum(tv, e), divisor));
    });
  },
};

/** Population variance (÷ n) across the models at each position, computed as torch.var does: Σ(x − mean)² / n. */
function variance(c: ChunkOps, tv: Vec[]): Vec {
  const n = tv.length;
  const mean = c.div(c.weightedSum(tv, tv.map(() => 1)), n);
  const deviations = tv.map((v) => c.sub(v, mean));
  return c.div(c.weightedSum(deviations, deviations), n);
}

