import type { ChunkOps, Vec } from '../backend/types';
import { flag, isTrue, weightParam } from './params';
import type { MergeMethod } from './types';

/**
 * NuSLERP (docs/methods.md §8): slerp of two models with t from their weights, optionally in
 * task-vector space around a base, over the whole tensor, its rows or its columns.
 */
export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  prettyName: 'NuSLERP',
  description:
    'Spherical interpolation between two models like SLERP, but the position comes from two per-model weights (t = w₂ / (w₁ + w₂)), it can interpolate each row or column of a matrix on its own, and with a base model it interpolates the two task vectors (differences from the base) and adds the result to the base.',
  whenToUse:
    'Two fine-tunes that you want to blend along the arc rather than the line, especially two fine-tunes of one base (give base_model so their changes are interpolated); row- or column-wise when different neurons should blend independently.',
  params: [
    flag(
      'nuslerp_row_wise',
      false,
      'With nuslerp_flatten off: interpolate the vectors along the first dimension (the columns of a matrix) instead of its rows.',
    ),
    flag(
      'nuslerp_flatten',
      true,
      'Treat each tensor as one long vector (default). Off: interpolate row by row, or column by column with nuslerp_row_wise.',
    ),
    weightParam,
  ],
  base: 'optional',
  shapes: 'rectify',
  minInputs: 1,
  maxInputs: 3,
  // Two models, plus the base as a third when one is set.
  sliceInputs: { others: { min: 2, max: 2 }, loneSource: 'copied', baseInSources: true },
  async merge(t) {
    if (t.inputs.length === 1) return t.copyInput(0);
    const base = t.baseIndex;
    const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
    if (others.length !== 2) {
      const models = t.inputs.map((i) => i.model).join(', ');
      throw new Error(
        base >= 0
          ? `nuslerp merges exactly two models plus the base model, but tensor ${t.name} has ${others.length} besides the base (${models})`
          : `nuslerp merges exactly two models (or two plus a base_model), but tensor ${t.name} has ${t.inputs.length} (${models}): ` +
              'set base_model if one of them is the model the others were fine-tuned from',
      );
    }
    const [first, second] = others;
    const w0 = t.inputs[first].params.weight;
    const w1 = t.inputs[second].params.weight;
    const tt = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);

    const vectors = (c: ChunkOps): [Vec, Vec] =>
      base >= 0
        ? [c.sub(c.input(first), c.input(base)), c.sub(c.input(second), c.input(base))]
        : [c.input(first), c.input(second)];
    const finish = (c: ChunkOps, mixed: Vec): Vec => (base >= 0 ? c.add(c.input(base), mixed) : mixed);

    if (isTrue(t.params.nuslerp_flatten)) {
      const [n0, n1, dot] = await t.reduce((c) => {
        const [v0, v1] = vectors(c);
        return [c.dot(v0, v0), c.dot(v1, v1), c.dot(v0, v1)] as const;
      });
      const [s0, s1] = nuslerpCoefficients(tt, n0, n1, dot);
      await t.apply((c) => finish(c, c.weightedSum(vectors(c), [s0, s1])));
      return;
    }
    // The vectors are the rows (last dimension), or with row_wise the slices along dimension 0.
    const rowWise = isTrue(t.params.nuslerp_row_wise);
    const period = rowWise ? t.numel / (t.shape[0] ?? 1) : 0;
    const sums = (c: ChunkOps, v: Vec): ReturnType<ChunkOps['rowSums']> => (rowWise ? c.periodicSums(v, period) : c.rowSums(v));
    const [n0, n1, dot] = await t.reduce((c) => {
      const [v0, v1] = vectors(c);
      return [sums(c, c.mul(v0, v0)), sums(c, c.mul(v1, v1)), sums(c, c.mul(v0, v1))] as const;
    });
    const s0 = new Float64Array(dot.length);
    const s1 = new Float64Array(dot.length);
    for (let k = 0; k < dot.length; k++) [s0[k], s1[k]] = nuslerpCoefficients(tt, n0[k], n1[k], dot[k]);
    const broadcast = (c: ChunkOps, values: Float64Array): Vec => (rowWise ? c.periodic(values) : c.perRow(values));
    await t.apply((c) => finish(c, c.weightedSum(vectors(c), [broadcast(c, s0), broadcast(c, s1)])));
  },
};

/**
 * Coefficients (s0, s1) with nuslerp(t, v0, v1) = s0·v0 + s1·v1, from ‖v0‖², ‖v1‖² and ⟨v0, v1⟩:
 * the vectors are normalised with a norm floor of 1e-7, the cosine clamped to [−1, 1], and
 * vectors with |sin θ| < 1e-8 (parallel or antiparallel) interpolated linearly.
 */
export function nuslerpCoefficients(t: number, squared0: number, squared1: number, dot: number): [number, number] {
  const n0 = Math.sqrt(squared0);
  const n1 = Math.sqrt(squared1);
  // sqrt(‖v0‖²‖v1‖²) rather than ‖v0‖·‖v1‖: exactly (anti)parallel inputs then give cos = ±1 exactly.
  const denominator = n0 >= 1e-7 && n1 >= 1e-7 ? Math.sqrt(squared0 * squared1) : Math.max(n0, 1e-7) * Math.max(n1, 1e-7);
  const cos = Math.min(1, Math.max(-1, dot / denominator));
  const theta = Math.acos(cos);
  const sin = Math.sin(theta);
  if (Math.abs(sin) < 1e-8) return [1 - t, t];
  return [Math.sin((1 - t) * theta) / sin, Math.sin(t * theta) / sin];
}
