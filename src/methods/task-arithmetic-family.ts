import type { ChunkOps, Vec } from '../backend/types';
import { keepLargestMagnitudes, selectLargestMagnitudes, type MagnitudeCut } from './magnitude-select';
import { densityParam, flag, isTrue, weightParam } from './params';
import type { MergeMethod, ParamDecl, TensorMerge } from './types';

/**
 * mergekit's generalized task arithmetic (MERGEKIT_SPEC.md §1.5): every method of the family is
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
  readonly sparsifier: 'none' | 'magnitude';
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
];

function paramsOf(row: FamilyRow): ParamDecl[] {
  return [
    flag('normalize', row.normalize, 'Divide the summed changes by the sum of the weights of the models that contributed.'),
    flag('rescale', row.rescale, "After pruning, rescale each model's changes so that their L1 norm is unchanged."),
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
    ...(row.sparsifier === 'none' ? [] : [densityParam]),
  ];
}

const L1_EPSILON = 1e-7;

async function mergeFamily(row: FamilyRow, t: TensorMerge): Promise<void> {
  const base = t.baseIndex;
  const others = t.inputs.map((_, i) => i).filter((i) => i !== base);
  if (others.length === 0) return t.copyInput(base);

  const weights = others.map((i) => t.inputs[i].params.weight);
  const densities = others.map((i) => t.inputs[i].params.density ?? 1);
  const deltas = (c: ChunkOps): Vec[] => others.map((i) => c.sub(c.input(i), c.input(base)));

  // Sparsification: each delta on its own, before weighting (§1.4).
  const pruned = row.sparsifier === 'magnitude' ? densities.map((d) => d < 1) : densities.map(() => false);
  let cuts: (MagnitudeCut | null)[] = others.map(() => null);
  if (pruned.some(Boolean)) {
    const ks = densities.map((d, j) => (pruned[j] ? Math.floor(d * t.numel) : t.numel));
    ks.forEach((k, j) => {
      if (pruned[j] && k <= 0) {
        throw new Error(
          `${row.name}: density ${densities[j]} of model ${t.inputs[others[j]].model} keeps no element of tensor ${t.name} ` +
            `(${t.numel} elements). mergekit refuses this too; use a larger density.`,
        );
      }
    });
    const found = await selectLargestMagnitudes(t, deltas, ks);
    cuts = found.map((cut, j) => (pruned[j] ? cut : null));
  }
  const sparse = (c: ChunkOps, d: Vec[]): Vec[] =>
    d.map((delta, j) => {
      const cut = cuts[j];
      return cut ? keepLargestMagnitudes(c, delta, cut) : delta;
    });

  // L1 rescale of each pruned delta, so that Σ|kept| = Σ|delta| (mergekit ≥ 0.1.0).
  const factors = others.map(() => 1);
  if (isTrue(t.params.rescale) && pruned.some(Boolean)) {
    const norms = await t.reduce((c) => {
      const d = deltas(c);
      const kept = sparse(c, d);
      return d.flatMap((delta, j) => [c.sum(c.abs(delta)), c.sum(c.abs(kept[j]))]);
    });
    others.forEach((_, j) => {
      const before = norms[2 * j];
      const after = norms[2 * j + 1];
      if (pruned[j] && before >= L1_EPSILON && after >= L1_EPSILON) factors[j] = before / after;
    });
  }

  const normalize = isTrue(t.params.normalize);
  const lambda = t.params.lambda ?? 1;
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const scalarDivisor = Math.abs(weightSum) < 1e-8 ? 1 : weightSum;

  await t.apply((c) => {
    const kept = sparse(c, deltas(c));
    const scales = weights.map((w, j) => w * factors[j]);
    let mixed: Vec;
    if (row.consensus) {
      // Sign election on the weighted deltas; exact zeros never vote with the majority (§1.3).
      mixed = c.signConsensus(kept, scales, normalize ? weights : null);
    } else {
      mixed = c.weightedSum(kept, scales);
      if (normalize) mixed = c.div(mixed, scalarDivisor);
    }
    if (lambda !== 1) mixed = c.mul(mixed, lambda);
    return c.add(c.input(base), mixed);
  });
}

export const taskArithmeticFamily: readonly MergeMethod[] = ROWS.map((row) => ({
  name: row.name,
  prettyName: row.prettyName,
  paperUrl: row.paperUrl,
  description: row.description,
  whenToUse: row.whenToUse,
  params: paramsOf(row),
  base: 'required',
  shapes: 'taskVectors',
  minInputs: 1,
  merge: (t: TensorMerge) => mergeFamily(row, t),
}));
