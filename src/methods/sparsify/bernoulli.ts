import type { ChunkOps, Operand, Vec } from '../../backend/types';
import { densityOf, type Sparsifier } from './types';

/**
 * x where a uniform draw u ∈ [0,1) of the model's random stream is below p, else 0: an
 * independent Bernoulli(p) mask per element. The draws are a pure function of (seed, tensor,
 * stream, element index), so the mask is the same for every chunking and backend — but not
 * torch's numbers (mergekit uses torch's global RNG), only the same distribution.
 */
export function keepWithProbability(c: ChunkOps, x: Vec, p: Operand, stream: number): Vec {
  return c.mul(x, c.gt(p, c.random(stream)));
}

/**
 * DARE pruning (docs/methods.md §4.2, `random` / bernoulli): keep each element of the delta with
 * probability `density`. density ≥ 1 leaves it unchanged; density 0 drops everything (mergekit's
 * rescale then sees a zero norm and leaves the zeros).
 */
export const bernoulli: Sparsifier = {
  name: 'random',
  params: [],
  wholeRows: false,
  random: true,
  async prepare({ method, tensor: t, models }) {
    return models.map((m) => {
      const density = densityOf(m);
      if (density >= 1) return null;
      if (!(density >= 0)) {
        throw new Error(
          `${method}: density ${density} of model ${m.model} for tensor ${t.name} is not a probability ` +
            `(mergekit's Bernoulli draw fails on it too); use a density from 0 to 1.`,
        );
      }
      return (c, delta) => keepWithProbability(c, delta, density, m.stream);
    });
  },
};
