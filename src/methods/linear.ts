import { flag, weightParam, isTrue } from './params';
import type { MergeMethod } from './types';

/** Weighted average of the models (docs/methods.md §6). */
export const linear: MergeMethod = {
  name: 'linear',
  prettyName: 'Linear',
  paperUrl: 'https://arxiv.org/abs/2203.05482',
  description:
    'Averages the weights of the models, each scaled by its weight ("model soup"). With normalize on, the weights are divided by their sum, so only their ratios matter.',
  whenToUse:
    'Several fine-tunes of the same base model whose strengths you want to blend evenly; the simplest and most predictable merge.',
  params: [
    flag('normalize', true, 'Divide by the sum of the weights, so that weights 2 and 1 mean two thirds and one third.'),
    weightParam,
  ],
  base: 'member',
  shapes: 'rectify',
  minInputs: 1,
  sliceInputs: { models: { min: 1 }, loneSource: 'copied', baseInSources: false },
  async merge(t) {
    const weights = t.inputs.map((input) => input.params.weight);
    let scale = 1;
    if (isTrue(t.params.normalize)) {
      const total = weights.reduce((a, b) => a + b, 0);
      // mergekit divides by zero here and writes inf/NaN weights; we refuse instead (docs/compatibility.md).
      if (total === 0) {
        throw new Error(
          `linear: the weights of tensor ${t.name} sum to 0, so normalizing would divide by zero. ` +
            'Change the weights or set `normalize: false`.',
        );
      }
      scale = 1 / total;
    }
    await t.apply((c) =>
      c.weightedSum(
        t.inputs.map((_, i) => c.input(i)),
        weights.map((w) => w * scale),
      ),
    );
  },
};
