import { bernoulli } from './bernoulli';
import { dellaMagprune } from './della-magprune';
import { magnitude } from './magnitude';
import { magnitudeOutliers } from './magnitude-outliers';
import type { Sparsifier, SparsifierName } from './types';

export type { Prune, Sparsifier, SparsifierName, SparsifyModel, SparsifyRequest } from './types';
export { keepWithProbability } from './bernoulli';
export { dellaKeepProbabilities } from './della-magprune';
export { outlierBand, type OutlierBand } from './magnitude-outliers';
export { l1RescaleFactors, RESCALE_EPSILON } from './rescale';

/** mergekit's four sparsification methods (docs/methods.md §4), each implemented once. */
export const SPARSIFIERS: Readonly<Record<SparsifierName, Sparsifier>> = {
  magnitude,
  random: bernoulli,
  magnitude_outliers: magnitudeOutliers,
  della_magprune: dellaMagprune,
};
