import { keepLargestMagnitudes, selectMagnitudeCuts } from '../magnitude-select';
import type { ParamDecl } from '../types';
import { densityOf, zerosLike, type Sparsifier } from './types';

export const gammaParam: ParamDecl = {
  name: 'gamma',
  scope: 'model',
  type: 'number',
  required: false,
  default: 0.01,
  min: 0,
  max: 1,
  description: "Fraction of this model's largest changes (outliers) that is dropped before density keeps the rest.",
};

/** Which magnitude ranks breadcrumbs keeps: ascending ranks [bottom, N − top). */
export interface OutlierBand {
  /** The smallest magnitudes dropped. */
  readonly bottom: number;
  /** The largest magnitudes dropped. */
  readonly top: number;
}

/**
 * docs/methods.md §4.3 (`magnitude_outliers`): target = ⌊density·N⌋, top = ⌊gamma·N⌋,
 * bottom = N − target − top; a negative bottom is taken from top.
 */
export function outlierBand(numel: number, density: number, gamma: number): OutlierBand {
  const target = Math.floor(density * numel);
  let top = Math.floor(gamma * numel);
  let bottom = numel - target - top;
  if (bottom < 0) {
    top += bottom;
    bottom = 0;
  }
  return { bottom, top };
}

/**
 * Model Breadcrumbs pruning: sort |delta| ascending and keep the ranks [bottom, N − top), i.e.
 * the N − bottom largest minus the top largest. Equal magnitudes at a cut follow index order
 * (the earlier element counts as the larger), as in TIES, so any chunking gives the same mask.
 *
 * Fixes mergekit's bug: it slices `[bottom : −top]`, which is empty when top = 0 (any tensor with
 * fewer than 1/gamma elements, gamma = 0, or the correction above driving top to 0), zeroing the
 * whole delta; here top = 0 drops no outlier and keeps ranks [bottom, N).
 */
export const magnitudeOutliers: Sparsifier = {
  name: 'magnitude_outliers',
  params: [gammaParam],
  wholeRows: false,
  random: false,
  async prepare({ method, tensor: t, deltas, models }) {
    const bands = models.map((m) => {
      const density = densityOf(m);
      if (density >= 1) return null;
      const gamma = m.params.gamma ?? gammaParam.default!;
      if (!(gamma >= 0)) {
        throw new Error(`${method}: gamma ${gamma} of model ${m.model} for tensor ${t.name} is negative; use a gamma from 0 to 1.`);
      }
      return outlierBand(t.numel, density, gamma);
    });
    // The kept band as two top-k cuts: the `keep` largest, minus the `top` largest (none when empty).
    const cutKs = bands.map((b) => {
      if (!b) return [];
      const keep = t.numel - b.bottom;
      return keep > b.top ? [keep, b.top] : [];
    });
    const cuts = await selectMagnitudeCuts(t, deltas, cutKs);
    return bands.map((band, j) => {
      if (!band) return null;
      if (cutKs[j].length === 0) return (c, delta) => zerosLike(c, delta);
      const [keep, top] = cuts[j];
      if (band.top === 0) return (c, delta) => keepLargestMagnitudes(c, delta, keep);
      return (c, delta) => c.sub(keepLargestMagnitudes(c, delta, keep), keepLargestMagnitudes(c, delta, top));
    });
  },
};
