/**
 * The layer-range rules of one slice (docs/config.md §5), as typed findings: the config
 * validator turns them into YAML issues, the app's slice editor into notes on its layer map.
 */

/** One source's `layer_range` [start, end), and its model's layer count where known. */
export interface SourceRange {
  readonly start: number;
  readonly end: number;
  /** The model's number of layers; undefined when not known (the validator never knows it). */
  readonly layers?: number;
}

export type LayerRangeProblem =
  /** Not a range [start, end) of integers with 0 ≤ start ≤ end. */
  | { readonly kind: 'invalid'; readonly source: number }
  /** Covers `count` layers where the slice's first valid source covers `firstCount`. */
  | { readonly kind: 'length'; readonly source: number; readonly first: number; readonly count: number; readonly firstCount: number }
  /** Ends after the model's last layer. */
  | { readonly kind: 'past-end'; readonly source: number; readonly layers: number };

/**
 * The problems of one slice's sources, in source order: invalid ranges, then ranges whose length
 * differs from the first valid one's, then ranges past their model's last layer. Unreadable
 * ranges (NaN, a YAML error reported elsewhere) are skipped.
 */
export function layerRangeProblems(sources: readonly SourceRange[]): LayerRangeProblem[] {
  const problems: LayerRangeProblem[] = [];
  const valid: number[] = [];
  sources.forEach(({ start, end }, source) => {
    if (Number.isNaN(start) || Number.isNaN(end)) return;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) problems.push({ kind: 'invalid', source });
    else valid.push(source);
  });
  const count = (source: number) => sources[source].end - sources[source].start;
  const first = valid[0];
  for (const source of valid.slice(1)) {
    if (count(source) !== count(first)) problems.push({ kind: 'length', source, first, count: count(source), firstCount: count(first) });
  }
  for (const source of valid) {
    const layers = sources[source].layers;
    if (layers !== undefined && sources[source].end > layers) problems.push({ kind: 'past-end', source, layers });
  }
  return problems;
}
