import { keepLargestMagnitudes, selectLargestMagnitudes } from '../magnitude-select';
import { densityOf, type Sparsifier } from './types';

/**
 * TIES pruning (docs/methods.md §4.1): keep the k = floor(density·N) largest |delta|
 * of the whole tensor. mergekit asserts k > 0. Equal magnitudes at the cut: the first in index
 * order are kept (mergekit's argsort is unstable, so it picks arbitrarily).
 */
export const magnitude: Sparsifier = {
  name: 'magnitude',
  params: [],
  wholeRows: false,
  random: false,
  densityCheck: 'positive',
  async prepare({ method, tensor: t, deltas, models }) {
    const ks = models.map((m) => {
      const density = densityOf(m);
      if (density >= 1) return 0;
      const k = Math.floor(density * t.numel);
      if (k <= 0) {
        throw new Error(
          `${method}: density ${density} of model ${m.model} keeps no element of tensor ${t.name} ` +
            `(${t.numel} elements). mergekit refuses this too; use a larger density.`,
        );
      }
      return k;
    });
    if (ks.every((k) => k === 0)) return models.map(() => null);
    const cuts = await selectLargestMagnitudes(t, deltas, ks);
    return cuts.map((cut, j) => (ks[j] > 0 ? (c, delta) => keepLargestMagnitudes(c, delta, cut) : null));
  },
};
