import type { ChunkOps, Vec } from '../backend/types';
import { densityParam, flag, isTrue, weightParam } from './params';
import { l1RescaleFactors, SPARSIFIERS, type Prune, type SparsifierName } from './sparsify';
import type { MergeMethod, ParamDecl, TensorMerge } from './types';

/**
 * mergekit's generalized task arithmetic (docs/methods.md §5): every method of the family is
 * the same algorithm (task vectors → sparsify each → weight → optional sign consensus → normalize
 * → lambda → add to base), configured by one row of this table.
 */
interface FamilyRow {
  readonly name: string;
  readonly prettyName: string;
  readonly paperUrl: string;
  readonly description: string;
  readonly whenToUse: string;
  readonly consensus: boolean;
  readonly sparsifier: 'none' | SparsifierName;
  readonly normalize: boolean;
  readonly rescale: boolean;
}

const ROWS: readonly FamilyRow[] = [
  {
    name: 'task_arithmetic',
    prettyName: 'Task Arithmetic',
    paperUrl: 'https://arxiv.org/abs/2212.04089',
    description:
      'Takes each model\'s difference from the base model (its "task vector"), scales it by the model\'s weight, adds them up and adds the sum to the base.',
    whenToUse:
      'Fine-tunes of one base whose skills should be added together; negative weights subtract a behaviour.',
    consensus: false,
    sparsifier: 'none',
    normalize: false,
    rescale: false,
  },
  {
    name: 'ties',
    prettyName: 'TIES',
    paperUrl: 'https://arxiv.org/abs/2306.01708',
    description:
      "Keeps only each model's largest changes from the base (density), elects a sign per parameter from the weighted changes, and averages only the changes that agree with it. Reduces the interference that plain averaging causes.",
    whenToUse:
      'Two or more fine-tunes of the same base that should keep their distinct skills; the usual choice for merging several task models.',
    consensus: true,
    sparsifier: 'magnitude',
    normalize: true,
    rescale: false,
  },
  {
    name: 'dare_ties',
    prettyName: 'DARE TIES',
    paperUrl: 'https://arxiv.org/abs/2311.03099',
    description:
      "Randomly drops each model's changes from the base, keeping each with probability density, rescales the survivors so their total size is unchanged, then elects a sign per parameter and adds only the changes that agree with it, as TIES does.",
    whenToUse:
      'Several fine-tunes of one base with large, redundant changes; a common choice for merging many chat or task models.',
    consensus: true,
    sparsifier: 'random',
    normalize: false,
    rescale: true,
  },
  {
    name: 'dare_linear',
    prettyName: 'Linear DARE',
    paperUrl: 'https://arxiv.org/abs/2311.03099',
    description:
      "Randomly drops each model's changes from the base, keeping each with probability density, rescales the survivors so their total size is unchanged, and adds the weighted changes to the base (no sign election).",
    whenToUse: 'Like task arithmetic, with less interference between models whose changes overlap.',
    consensus: false,
    sparsifier: 'random',
    normalize: false,
    rescale: true,
  },
  {
    name: 'breadcrumbs',
    prettyName: 'Model Breadcrumbs',
    paperUrl: 'https://arxiv.org/abs/2312.06795',
    description:
      "Drops both the smallest of each model's changes from the base and its few largest outliers (gamma), keeping a middle band of magnitudes (density), then adds the weighted changes to the base.",
    whenToUse: 'Fine-tunes of one base whose extreme changes should not dominate the merge.',
    consensus: false,
    sparsifier: 'magnitude_outliers',
    normalize: false,
    rescale: false,
  },
  {
    name: 'breadcrumbs_ties',
    prettyName: 'Model Breadcrumbs with TIES',
    paperUrl: 'https://arxiv.org/abs/2312.06795',
    description:
      "Keeps a middle band of each model's changes from the base (drops the smallest and the largest outliers), then elects a sign per parameter and adds only the changes that agree with it, as TIES does.",
    whenToUse: 'Several fine-tunes of one base, combining TIES sign election with outlier removal.',
    consensus: true,
    sparsifier: 'magnitude_outliers',
    normalize: false,
    rescale: false,
  },
  {
    name: 'della',
    prettyName: 'DELLA',
    paperUrl: 'https://arxiv.org/abs/2406.11617',
    description:
      "Randomly drops each model's changes from the base with a probability set by their magnitude rank within each row (larger changes are kept more often: density ± epsilon), rescales the survivors so their total size is unchanged, then elects a sign per parameter and averages the changes that agree with it.",
    whenToUse: 'Like DARE TIES, when the largest changes of each model should be the most likely to survive.',
    consensus: true,
    sparsifier: 'della_magprune',
    normalize: true,
    rescale: true,
  },
  {
    name: 'della_linear',
    prettyName: 'Linear DELLA',
    paperUrl: 'https://arxiv.org/abs/2406.11617',
    description:
      "Randomly drops each model's changes from the base with a probability set by their magnitude rank within each row (density ± epsilon), rescales the survivors so their total size is unchanged, and adds the weighted changes to the base (no sign election).",
    whenToUse: 'Like linear DARE, when the largest changes of each model should be the most likely to survive.',
    consensus: false,
    sparsifier: 'della_magprune',
    normalize: false,
    rescale: true,
  },
];

/**
 * Parameters that mergekit declares but that have no effect are left out on purpose, so that the
 * validator warns that they are ignored: `density` without a sparsifier (task_arithmetic).
 */
function paramsOf(row: FamilyRow): ParamDecl[] {
  return [
    flag('normalize', row.normalize, 'Divide the summed changes by the sum of the weights of the models that contributed.'),
    // mergekit only tests rescale for truth; the other flags are pydantic bools.
    flag('rescale', row.rescale, "After pruning, rescale each model's changes so that their L1 norm is unchanged.", { laxBoolean: true }),
    flag('int8_mask', false, 'Store sign masks as int8 to save memory (no effect on the numbers).'),
    {
      name: 'lambda',
      scope: 'global',
      type: 'number',
      required: false,
      default: 1,
      description: 'Multiplies the merged changes before they are added to the base.',
    },
    weightParam,
    ...(row.sparsifier === 'none' ? [] : [densityParam, ...SPARSIFIERS[row.sparsifier].params]),
  ];
}

async function mergeFamily(row: FamilyRow, t: TensorMerge): Promise<void> {
  const base = t.baseIndex;
  const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
  if (others.length === 0) return t.copyInput(base);

  const weights = others.map((i) => t.inputs[i].params.weight);
  const deltas = (c: ChunkOps): Vec[] => others.map((i) => c.sub(c.input(i), c.input(base)));

  // Sparsification: each delta on its own, before weighting (docs/methods.md §4); null keeps a delta whole.
  const prunes: (Prune | null)[] =
    row.sparsifier === 'none'
      ? others.map(() => null)
      : await SPARSIFIERS[row.sparsifier].prepare({
          method: row.name,
          tensor: t,
          deltas,
          models: others.map((i, j) => ({ model: t.inputs[i].model, params: t.inputs[i].params, stream: j })),
        });
  const sparse = (c: ChunkOps, d: Vec[]): Vec[] => d.map((delta, j) => prunes[j]?.(c, delta) ?? delta);

  // L1 rescale of each pruned delta, so that Σ|kept| = Σ|delta| (mergekit ≥ 0.1.0).
  const factors = isTrue(t.params.rescale) ? await l1RescaleFactors(t, deltas, prunes) : others.map(() => 1);

  const normalize = isTrue(t.params.normalize);
  const lambda = t.params.lambda ?? 1;
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const scalarDivisor = Math.abs(weightSum) < 1e-8 ? 1 : weightSum;

  await t.apply((c) => {
    const kept = sparse(c, deltas(c));
    const scales = weights.map((w, j) => w * factors[j]);
    let mixed: Vec;
    if (row.consensus) {
      // Sign election on the weighted deltas; exact zeros never vote with the majority (docs/methods.md §3).
      mixed = c.signConsensus(kept, scales, normalize ? weights : null);
    } else {
      mixed = c.weightedSum(kept, scales);
      if (normalize) mixed = c.div(mixed, scalarDivisor);
    }
    if (lambda !== 1) mixed = c.mul(mixed, lambda);
    return c.add(c.input(base), mixed);
  });
}

export const taskArithmeticFamily: readonly MergeMethod[] = ROWS.map((row) => {
  const sparsifier = row.sparsifier === 'none' ? undefined : SPARSIFIERS[row.sparsifier];
  return {
    name: row.name,
    prettyName: row.prettyName,
    paperUrl: row.paperUrl,
    description: row.description,
    whenToUse: row.whenToUse,
    params: paramsOf(row),
    base: 'required',
    shapes: 'taskVectors',
    minInputs: 1,
    // The base and any number of others; a slice of the base alone returns the base.
    sliceInputs: { loneSource: 'base', baseInSources: true },
    densityCheck: sparsifier?.densityCheck,
    wholeRows: sparsifier?.wholeRows ?? false,
    drawsRandomNumbers: sparsifier?.random ?? false,
    merge: (t: TensorMerge) => mergeFamily(row, t),
  };
});
