import { gramMatrix } from './gram';
import type { MergeMethod } from './types';

/**
 * Karcher mean on the unit sphere (docs/methods.md §10), times the mean norm.
 *
 * The iterate u only ever combines u and the unit inputs û_i, so it stays in their span:
 * u = Σ a_i û_i, and every quantity the iteration needs (⟨u, û_i⟩, ‖T‖, ‖u‖) follows from the
 * Gram matrix of the û_i. One statistics pass gives that matrix, the iteration runs on the
 * coefficients a (n numbers, f64), and one apply pass writes s·Σ a_i û_i. mergekit runs the same
 * iteration on whole tensors; the results differ only by rounding.
 */
export const karcher: MergeMethod = {
  name: 'karcher',
  prettyName: 'Karcher Mean',
  paperUrl: 'https://en.wikipedia.org/wiki/Karcher_mean',
  description:
    'The geometric mean of the models on a sphere: finds, by a few refinement steps, the direction closest (along the sphere) to all the models\' directions, and gives it the models\' average length. Every model counts equally; there are no weights.',
  whenToUse:
    'Averaging several models of one architecture without choosing weights, when a plain average would shrink weights that point in different directions. A base_model, if given, is averaged like the others.',
  params: [
    {
      name: 'max_iter',
      scope: 'global',
      type: 'integer',
      required: false,
      default: 10,
      min: 1,
      description: 'Maximum number of refinement steps.',
    },
    {
      name: 'tol',
      scope: 'global',
      type: 'number',
      required: false,
      default: 1e-5,
      min: 0,
      description:
        'Convergence tolerance: stop when a step is smaller than this; also the smallest norm a model needs to take part.',
    },
  ],
  base: 'member',
  shapes: 'rectify',
  minInputs: 1,
  sliceInputs: { models: { min: 1 }, loneSource: 'copied', baseInSources: false },
  async merge(t) {
    const n = t.inputs.length;
    if (n === 1) return t.copyInput(0);
    const gram = await gramMatrix(t, (c) => t.inputs.map((_, i) => c.input(i)), n);
    const coefficients = karcherCoefficients(gram, t.params.max_iter ?? 10, t.params.tol ?? 1e-5);
    await t.apply((c) =>
      c.weightedSum(
        t.inputs.map((_, i) => c.input(i)),
        coefficients,
      ),
    );
  },
};

/**
 * Coefficients k with karcher(x_1..x_n) = Σ k_i x_i, from the Gram matrix G of the x_i, following
 * mergekit's iteration step for step (equal weights 1/n; models with norm ≤ tol left out of the
 * iteration but counted, with their norm, in the mean norm).
 */
export function karcherCoefficients(gram: readonly (readonly number[])[], maxIter: number, tol: number): number[] {
  const n = gram.length;
  const norms = gram.map((row, i) => Math.sqrt(Math.max(row[i], 0)));
  const valid = norms.flatMap((norm, i) => (norm > tol ? [i] : []));
  if (valid.length === 0) return new Array<number>(n).fill(0);
  // Gram matrix of the unit vectors û_i.
  const g = gram.map((row, i) => row.map((v, j) => (norms[i] > 0 && norms[j] > 0 ? v / (norms[i] * norms[j]) : 0)));
  const norm = (a: readonly number[]): number => {
    let s = 0;
    for (const i of valid) for (const j of valid) s += a[i] * a[j] * g[i][j];
    return Math.sqrt(Math.max(s, 0));
  };
  const alpha = 1 / valid.length;

  let a = new Array<number>(n).fill(0);
  for (const i of valid) a[i] = alpha;
  const initial = norm(a);
  if (initial < tol) {
    a.fill(0);
    a[valid[0]] = 1;
  } else {
    a = a.map((v) => v / initial);
  }

  for (let iter = 0; iter < maxIter; iter++) {
    const tangent = new Array<number>(n).fill(0);
    for (const i of valid) {
      let cos = 0;
      for (const j of valid) cos += g[i][j] * a[j];
      cos = Math.min(1, Math.max(-1, cos));
      const theta = Math.acos(cos);
      if (theta < tol) continue;
      const f = (alpha * theta) / Math.sin(theta);
      tangent[i] += f;
      for (const j of valid) tangent[j] -= f * cos * a[j];
    }
    const step = norm(tangent);
    if (step < tol) break;
    a = a.map((v, i) => Math.cos(step) * v + (Math.sin(step) * tangent[i]) / step);
    const length = norm(a);
    if (length > tol) a = a.map((v) => v / length);
  }

  const meanNorm = norms.reduce((s, v) => s + v, 0) / n;
  return a.map((v, i) => (valid.includes(i) ? (meanNorm * v) / norms[i] : 0));
}
