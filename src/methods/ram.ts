import type { ChunkOps, Vec } from '../backend/types';
import type { MergeMethod, ParamDecl, SliceInputRule, TensorMerge } from './types';

/**
 * Reinforced Agent Merging (docs/methods.md §15), both variants: per position, a task-vector
 * entry is active when |TV_i| > epsilon; an entry active in only one model is taken as is, entries
 * active in several models are averaged over those models. ramplus_tl additionally scales each
 * model's unique entries by λ_i = 1 + r·clamp(shared_i / max(unique_i, epsilon), 0, alpha), from
 * counts over the whole tensor.
 */

const epsilonParam: ParamDecl = {
  name: 'epsilon',
  scope: 'global',
  type: 'number',
  required: false,
  default: 1e-5,
  min: 0,
  description: 'A change from the base counts as present when its magnitude exceeds this.',
};

const PAPER = 'https://arxiv.org/abs/2601.13572';

/** The base and any number of others; a slice of the base alone returns the base. */
const sliceInputs: SliceInputRule = { loneSource: 'base', baseInSources: true };

export const ram: MergeMethod = {
  name: 'ram',
  prettyName: 'Reinforced Agent Merging',
  paperUrl: PAPER,
  description:
    'Adds the fine-tunes\' changes to the base model without diluting them: a parameter changed by only one model takes that model\'s change in full, and a parameter changed by several models takes the average of their changes (models that left it unchanged do not count).',
  whenToUse:
    'Fine-tunes of one base that each changed different, mostly separate parts of the model (e.g. agents trained with RL on different tasks), where plain averaging would halve every change.',
  params: [epsilonParam],
  base: 'required',
  shapes: 'strict',
  minInputs: 1,
  sliceInputs,
  merge: (t) => mergeRam(t, false),
};

export const ramplusTl: MergeMethod = {
  name: 'ramplus_tl',
  prettyName: 'Reinforced Agent Merging Plus (Tensor-Local)',
  paperUrl: PAPER,
  description:
    'Reinforced Agent Merging with a per-tensor boost: as ram, changes made by one model are kept in full and shared changes are averaged, and in addition each model\'s unique changes are scaled up slightly (by at most r·alpha) according to how much of its change in that tensor it shares with other models.',
  whenToUse:
    'As ram, when the models\' changes overlap enough that averaging the shared parts would otherwise weaken models that share a lot.',
  params: [
    {
      name: 'r',
      scope: 'global',
      type: 'number',
      required: false,
      default: 0.1,
      min: 0,
      description: 'Strength of the boost of unique changes.',
    },
    {
      name: 'alpha',
      scope: 'global',
      type: 'number',
      required: false,
      default: 0.2,
      min: 0,
      description: 'Cap on the shared-to-unique ratio that drives the boost (the boost is at most r·alpha).',
    },
    epsilonParam,
  ],
  base: 'required',
  shapes: 'strict',
  minInputs: 1,
  sliceInputs,
  merge: (t) => mergeRam(t, true),
};

async function mergeRam(t: TensorMerge, plus: boolean): Promise<void> {
  const base = t.baseIndex;
  const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
  if (others.length === 0) return t.copyInput(base);
  const epsilon = t.params.epsilon ?? 1e-5;
  const ones = others.map(() => 1);
  const state = (c: ChunkOps): { tv: Vec[]; active: Vec[]; count: Vec } => {
    const tv = others.map((i) => c.sub(c.input(i), c.input(base)));
    const active = tv.map((v) => c.gt(c.abs(v), epsilon));
    return { tv, active, count: c.weightedSum(active, ones) };
  };

  if (!plus) {
    await t.apply((c) => {
      const { tv, active, count } = state(c);
      return c.add(c.input(base), c.div(c.weightedSum(tv, active), c.max(count, 1)));
    });
    return;
  }

  // Per model: how many of its active entries are shared with another model, and how many unique.
  const counts = await t.reduce((c) => {
    const { active, count } = state(c);
    const unique = c.eq(count, 1);
    const shared = c.gt(count, 1);
    return active.flatMap((a) => [c.dot(a, shared), c.dot(a, unique)]);
  });
  const r = t.params.r ?? 0.1;
  const alpha = t.params.alpha ?? 0.2;
  const lambdas = others.map((_, i) => {
    const ratio = counts[2 * i] / Math.max(counts[2 * i + 1], epsilon);
    return 1 + r * Math.min(alpha, Math.max(0, ratio));
  });
  await t.apply((c) => {
    const { tv, active, count } = state(c);
    const unique = c.eq(count, 1);
    const sharedShare = c.div(c.gt(count, 1), c.max(count, 1)); // 1/count where shared, else 0
    const coefficients = active.map((a, i) => c.mul(a, c.add(c.mul(unique, lambdas[i]), sharedShare)));
    return c.add(c.input(base), c.weightedSum(tv, coefficients));
  });
}
