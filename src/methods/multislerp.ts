import type { ChunkOps, Vec } from '../backend/types';
import { gramMatrix } from './gram';
import { flag, isTrue, weightParam } from './params';
import type { MergeMethod } from './types';

/**
 * Multi-SLERP (docs/methods.md §9): the direction of the weighted mean of the unit (task)
 * vectors, scaled by the weighted mean of their norms.
 *
 * mergekit also computes the tangent T = Σ w_i (u_i − (u_i·m) m), which is exactly 0 (its sum is
 * M − (M·m) m), so τ = ‖T‖ + eps = eps and r = m·cos(eps)·Σ w_i‖x_i‖: this closed form is what we
 * evaluate, from the Gram matrix of the inputs (one statistics pass) and one weighted sum. It
 * differs from mergekit's literal steps only by the rounding noise those steps carry in T.
 */
export const multislerp: MergeMethod = {
  name: 'multislerp',
  prettyName: 'Multi-SLERP',
  paperUrl: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  description:
    'A spherical average of any number of models: the result points in the direction of the weighted average of the models\' directions and has their weighted average length, so it does not shrink the way a plain average of differing models does. With a base model it works on the task vectors (differences from the base) and adds the result to the base.',
  whenToUse:
    'Three or more fine-tunes that you would slerp if slerp took more than two models; give base_model when they share one. Models whose changes point in exactly opposite directions cannot be averaged this way.',
  params: [
    flag('normalize_weights', true, 'Divide the weights by their sum, so that only their ratios matter.', { laxBoolean: true }),
    {
      name: 'eps',
      scope: 'global',
      type: 'number',
      required: false,
      default: 1e-8,
      min: 0,
      description: 'Small constant added to norms to avoid dividing by zero (mergekit default 1e-8).',
    },
    weightParam,
  ],
  base: 'optional',
  shapes: 'strict',
  minInputs: 1,
  sliceInputs: { others: { min: 1 }, loneSource: 'copied', baseInSources: false },
  async merge(t) {
    const base = t.baseIndex;
    const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
    // mergekit fails to stack zero tensors when only the base has this one; the base is the answer.
    if (others.length === 0) return t.copyInput(base);
    // One model: returned unchanged, even with a base (as mergekit).
    if (others.length === 1) return t.copyInput(others[0]);

    const eps = t.params.eps ?? 1e-8;
    let weights = others.map((i) => t.inputs[i].params.weight);
    if (isTrue(t.params.normalize_weights)) {
      const total = weights.reduce((a, b) => a + b, 0);
      if (total === 0) {
        throw new Error(
          `multislerp: the weights of tensor ${t.name} sum to 0, so normalizing them would divide by zero. ` +
            'Change the weights or set `normalize_weights: false`.',
        );
      }
      weights = weights.map((w) => w / total);
    }
    const vectors = (c: ChunkOps): Vec[] =>
      others.map((i) => (base >= 0 ? c.sub(c.input(i), c.input(base)) : c.input(i)));
    const finish = (c: ChunkOps, mixed: Vec): Vec => (base >= 0 ? c.add(c.input(base), mixed) : mixed);

    const gram = await gramMatrix(t, vectors, others.length);
    const norms = gram.map((row, i) => Math.sqrt(row[i]));
    if (norms.every((n) => n === 0)) {
      // All task vectors are zero: the result is the base (mergekit raises for 3+ models here).
      return base >= 0 ? t.copyInput(base) : t.copyInput(others[0]);
    }
    const unit = weights.map((w, i) => w / (norms[i] + eps)); // M = Σ unit_i·x_i
    let squared = 0;
    for (let i = 0; i < unit.length; i++) for (let j = 0; j < unit.length; j++) squared += unit[i] * unit[j] * gram[i][j];
    const meanNorm = Math.sqrt(Math.max(squared, 0));
    if (meanNorm < eps) {
      if (others.length === 2) {
        // Antipodal pair: mergekit falls back to the weighted sum.
        await t.apply((c) => finish(c, c.weightedSum(vectors(c), weights)));
        return;
      }
      throw new Error(
        `multislerp: the models' directions cancel out in tensor ${t.name} (their weighted mean direction has norm ${meanNorm}), ` +
          'so the spherical average is undefined (mergekit stops here too). Change the weights or leave one of the opposing models out.',
      );
    }
    const scale = (weights.reduce((s, w, i) => s + w * norms[i], 0) * Math.cos(eps)) / meanNorm;
    const coefficients = unit.map((u) => u * scale);
    await t.apply((c) => finish(c, c.weightedSum(vectors(c), coefficients)));
  },
};
