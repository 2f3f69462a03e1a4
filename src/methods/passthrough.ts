import { isSet } from './params';
import type { MergeMethod } from './types';

/** Copies the one input tensor, optionally scaled (docs/methods.md §16): the frankenmerge method. */
export const passthrough: MergeMethod = {
  name: 'passthrough',
  prettyName: 'Passthrough',
  description:
    'Copies tensors unchanged from a single source per slice. Combined with slices it stacks layers of one or more models into a deeper model ("frankenmerge"); `scale` can damp repeated layers.',
  whenToUse:
    'Building a model from layer ranges of other models (layer stacking, depth up-scaling), or copying a model while rescaling some tensors.',
  params: [
    {
      name: 'scale',
      scope: 'model',
      type: 'number',
      required: false,
      description: 'Multiply the copied tensor by this factor (e.g. 0 or 0.5 on o_proj/down_proj of repeated layers).',
    },
  ],
  base: 'member',
  shapes: 'strict',
  minInputs: 1,
  maxInputs: 1,
  // One source per slice: stacking layers of several models takes one slice each.
  sliceInputs: { models: { min: 1, max: 1 }, loneSource: 'copied', baseInSources: false },
  async merge(t) {
    const scale = t.inputs[0].params.scale;
    if (!isSet(scale)) return t.copyInput(0);
    await t.apply((c) => c.mul(c.input(0), scale));
  },
};
