import type { ChunkOps, Vec } from '../../backend/types';
import type { ParamDecl } from '../types';
import { keepWithProbability } from './bernoulli';
import { densityOf, zerosLike, type Sparsifier } from './types';

export const epsilonParam: ParamDecl = {
  name: 'epsilon',
  scope: 'model',
  type: 'number',
  required: false,
  default: 0.15,
  min: 0,
  max: 1,
  description:
    "Spread of the keep probabilities: this model's smallest change in a row is kept with probability density − epsilon, its largest with density + epsilon.",
};

/**
 * DELLA's keep probabilities for one chunk of a delta (docs/methods.md §4.4):
 * with r the rank of |delta| within its row (1 = smallest, n = row length; see `rowRanks` for
 * equal magnitudes), p = (density − epsilon) + (r − 1)/(n − 1) · 2·epsilon. A row of a single
 * element (mergekit computes 0/0 = NaN there) gets p = density, the mean of the others.
 */
export function dellaKeepProbabilities(c: ChunkOps, delta: Vec, density: number, epsilon: number): Vec {
  const n = c.cols;
  if (n <= 1) return c.add(zerosLike(c, delta), density);
  return c.add(c.mul(c.sub(c.rowRanks(delta), 1), (2 * epsilon) / (n - 1)), density - epsilon);
}

/**
 * DELLA pruning: keep each element with its `dellaKeepProbabilities` (random stream per model).
 * density ≥ 1 leaves the delta unchanged, density ≤ 0 drops it; otherwise mergekit refuses
 * probabilities that reach 0 or 1 (density ± epsilon). Ranks run along the last dimension (one
 * row of a 2-D matrix; a 1-D tensor is one row). For 3-D tensors mergekit ranks along dimension 1,
 * which is not supported yet.
 */
export const dellaMagprune: Sparsifier = {
  name: 'della_magprune',
  params: [epsilonParam],
  wholeRows: true,
  random: true,
  densityCheck: 'dellaWindow',
  async prepare({ method, tensor: t, models }) {
    return models.map((m) => {
      const density = densityOf(m);
      if (density >= 1) return null;
      if (density <= 0) return (c, delta) => zerosLike(c, delta);
      const epsilon = m.params.epsilon ?? epsilonParam.default!;
      if (density + epsilon >= 1 || density - epsilon <= 0) {
        throw new Error(
          `${method}: model ${m.model}, tensor ${t.name}: density ${density} and epsilon ${epsilon} give keep probabilities ` +
            `from ${density - epsilon} to ${density + epsilon}, outside (0, 1); mergekit stops with a ValueError here. ` +
            'Choose them so that density − epsilon > 0 and density + epsilon < 1.',
        );
      }
      if (t.shape.length > 2) {
        throw new Error(
          `${method}: tensor ${t.name} has ${t.shape.length} dimensions [${t.shape.join(', ')}]; mergekit ranks its magnitudes ` +
            'along dimension 1 there, which Alloy does not support yet. Exclude it from pruning (density: 1 for this tensor).',
        );
      }
      return (c, delta) => {
        if (c.cols !== t.cols) throw new Error(`internal: ${t.name} was split inside a row, but della ranks whole rows`);
        return keepWithProbability(c, delta, dellaKeepProbabilities(c, delta, density, epsilon), m.stream);
      };
    });
  },
};
