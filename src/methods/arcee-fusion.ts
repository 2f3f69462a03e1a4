import type { ChunkOps, Vec } from '../backend/types';
import { largestMagnitudes } from './order-statistics';
import type { MergeMethod } from './types';

const SOFTMAX_FLOOR = 1e-8;

/**
 * Arcee Fusion (docs/methods.md §11): importance = |x − b| · KL(softmax(x) ‖ softmax(b)) per
 * row; the elements whose importance reaches median + 1.5·IQR take the other model's value, the
 * rest keep the base.
 *
 * Two deliberate differences (docs/compatibility.md): the quantiles are exact over all elements
 * (radix select, deterministic) where mergekit samples 10⁶ random elements of larger tensors, and
 * the output keeps the planned dtype where mergekit always writes float32.
 */
export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  prettyName: 'Arcee Fusion',
  paperUrl: 'https://arcee.ai',
  description:
    'Keeps the base model and adopts only the other model\'s most important changes: each change is scored by its size times how much the other model\'s row differs in distribution from the base\'s (a KL divergence of their softmaxes), and only the outliers — scores above the median plus 1.5 times the interquartile range — are taken over.',
  whenToUse:
    'Two models, a base and one fine-tune, when you want a conservative merge that keeps the base almost everywhere and imports just the fine-tune\'s most significant changes.',
  params: [],
  base: 'required',
  shapes: 'rectify',
  minInputs: 1,
  maxInputs: 2,
  sliceInputs: { models: { min: 2, max: 2 }, loneSource: 'copied', baseInSources: true },
  wholeRows: true,
  async merge(t) {
    if (t.inputs.length === 1) return t.copyInput(0);
    const base = t.baseIndex;
    const other = 1 - base;

    // KL(p ‖ q) per row, p and q the row softmaxes (+1e-8) of the two models, in one pass: a
    // chunk holds whole rows (wholeRows), so each row's max and sum are taken inside the chunk.
    // KL is ≥ 0 in exact arithmetic; rounding can leave a tiny negative value for rows where the
    // two models (nearly) agree, which we clamp to 0 so that every importance is ≥ 0 and orders
    // like its magnitude (mergekit would keep the tiny negative value).
    const softmax = (c: ChunkOps, v: Vec): Vec => {
      const e = c.exp(c.sub(v, c.rowMaxBroadcast(v)));
      return c.add(c.div(e, c.rowSumBroadcast(e)), SOFTMAX_FLOOR);
    };
    const [divergence] = await t.reduce((c) => {
      const p = softmax(c, c.input(other));
      const q = softmax(c, c.input(base));
      return [c.rowSums(c.mul(p, c.log(c.div(p, q))))] as const;
    });
    const kl = divergence.map((v) => Math.max(v, 0));
    const importance = (c: ChunkOps): Vec => c.mul(c.abs(c.sub(c.input(other), c.input(base))), c.perRow(kl));

    // Q(q) = sorted[floor(q·(n−1))] over all elements, exactly: the (n − index)-th largest.
    const n = t.numel;
    const rank = (q: number): number => n - Math.floor(q * (n - 1));
    const [q25, q50, q75] = await largestMagnitudes(t, importance, [rank(0.25), rank(0.5), rank(0.75)]);
    const threshold = Math.fround(q50 + Math.fround(1.5 * Math.fround(q75 - q25)));

    await t.apply((c) => {
      const b = c.input(base);
      const mask = c.ge(importance(c), threshold);
      return c.add(b, c.mul(c.sub(c.input(other), b), mask));
    });
  },
};
