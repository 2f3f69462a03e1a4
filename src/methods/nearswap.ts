import type { MergeMethod } from './types';

/**
 * NearSwap (docs/methods.md §13): per element, w = clamp(t / max(|a − b|, 1e-6), 0, 1) and
 * result = w·b + (1 − w)·a, with a the base and b the other model.
 */
export const nearswap: MergeMethod = {
  name: 'nearswap',
  prettyName: 'NearSwap',
  paperUrl: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
  description:
    'Takes the other model\'s value wherever it is already close to the base model\'s (within t), and elsewhere moves from the base toward it by a step that shrinks as the two values get further apart. The result is the base model with only its small differences from the other model adopted.',
  whenToUse:
    'Adopting a second model\'s small adjustments while keeping the base where the two differ a lot; t sets what counts as close (tiny values such as 0.0001 are typical).',
  params: [
    {
      name: 't',
      scope: 'global',
      type: 'number',
      required: true,
      min: 0,
      description: 'Distance below which the other model\'s value is taken as is; further apart, the step toward it is t / distance.',
    },
  ],
  base: 'required',
  shapes: 'strict',
  minInputs: 1,
  maxInputs: 2,
  sliceInputs: { others: { min: 1, max: 1 }, loneSource: 'base', baseInSources: true },
  async merge(t) {
    const base = t.baseIndex;
    if (t.inputs.length === 1) return t.copyInput(0);
    const other = 1 - base;
    const tt = t.params.t;
    await t.apply((c) => {
      const a = c.input(base);
      const b = c.input(other);
      const distance = c.max(c.abs(c.sub(a, b)), 1e-6);
      const w = c.min(c.max(c.div(tt, distance), 0), 1);
      return c.weightedSum([b, a], [w, c.sub(1, w)]);
    });
  },
};
