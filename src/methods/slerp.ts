import type { MergeMethod } from './types';

/** Spherical interpolation of two whole tensors (docs/methods.md §7). */
export const slerp: MergeMethod = {
  name: 'slerp',
  prettyName: 'SLERP',
  paperUrl: 'https://en.wikipedia.org/wiki/Slerp',
  description:
    'Interpolates between two models along the arc between their weight vectors instead of the straight line, which keeps the result from shrinking when the models point in different directions. t = 0 gives the base model, t = 1 the other one.',
  whenToUse:
    'Exactly two models of the same architecture (often two fine-tunes of one base); a gradient on t lets attention and MLP layers lean to different parents.',
  params: [
    {
      name: 't',
      scope: 'global',
      type: 'number',
      required: true,
      min: 0,
      max: 1,
      description: 'Position between the base model (0) and the other model (1).',
    },
  ],
  base: 'required',
  shapes: 'rectify',
  minInputs: 1,
  maxInputs: 2,
  sliceInputs: { models: { min: 2, max: 2 }, loneSource: 'copied', baseInSources: true },
  async merge(t) {
    if (t.inputs.length === 1) return t.copyInput(0);
    const b = t.baseIndex;
    const o = 1 - b;
    const tt = t.params.t;
    const stats = await t.reduce((c) => {
      const v0 = c.input(b);
      const v1 = c.input(o);
      return [c.sum(c.mul(v0, v0)), c.sum(c.mul(v1, v1)), c.sum(c.mul(v0, v1))] as const;
    });
    const [s0, s1] = slerpCoefficients(tt, Math.sqrt(stats[0]), Math.sqrt(stats[1]), stats[2]);
    await t.apply((c) => c.weightedSum([c.input(b), c.input(o)], [s0, s1]));
  },
};

/**
 * Coefficients (s0, s1) with result = s0·v0 + s1·v1, from the norms of v0 and v1 and their dot
 * product. Norms at or below 1e-8 are not normalised (a zero tensor stays zero), and nearly
 * parallel or antiparallel inputs (|cos| > 0.9995) fall back to linear interpolation.
 */
export function slerpCoefficients(t: number, norm0: number, norm1: number, dot: number): [number, number] {
  const n0 = norm0 > 1e-8 ? norm0 : 1;
  const n1 = norm1 > 1e-8 ? norm1 : 1;
  const cos = dot / (n0 * n1);
  if (Math.abs(cos) > 0.9995) return [1 - t, t];
  const theta = Math.acos(cos);
  const sinTheta = Math.sin(theta);
  return [Math.sin(theta - t * theta) / sinTheta, Math.sin(t * theta) / sinTheta];
}
