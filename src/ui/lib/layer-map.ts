import { layerRangeProblems, layerT } from '../../config';
import type { MergeConfig } from '../../config';
import { modelKey } from './config-edit';

/**
 * Where every output layer comes from (the slice editor's map and the gradient chart's x axis),
 * computed from the config alone plus each model's layer count: docs/config.md §5 (output
 * layers numbered consecutively across slices; output layer k of a slice merges the sources'
 * layers start_j + k).
 */

export interface SliceBlock {
  readonly sliceIndex: number;
  readonly outputStart: number;
  readonly length: number;
  readonly sources: readonly { readonly model: string; readonly start: number; readonly end: number }[];
  /** Why this slice cannot be merged as written (unequal lengths, range past the model's last layer…). */
  readonly problems: readonly string[];
}

export interface LayerLayout {
  readonly blocks: readonly SliceBlock[];
  readonly totalLayers: number;
  /** True when the layout comes from `models:` syntax (one slice over all layers). */
  readonly modelsSyntax: boolean;
}

export function layerLayout(config: MergeConfig, numLayers: (key: string) => number | undefined): LayerLayout {
  if (config.slices) {
    let outputStart = 0;
    const blocks = config.slices.map((slice, sliceIndex): SliceBlock => {
      const sources = slice.sources.map((s) => ({ model: modelKey(s.model), start: s.layer_range[0], end: s.layer_range[1] }));
      const lengths = sources.map((s) => s.end - s.start);
      const length = Math.max(0, lengths[0] ?? 0);
      // The validator's rules (config/layer-ranges.ts), worded for the slice editor.
      const found = layerRangeProblems(sources.map((s) => ({ start: s.start, end: s.end, layers: numLayers(s.model) })));
      const problems: string[] = [];
      if (found.some((p) => p.kind === 'length')) {
        problems.push(`its sources have different lengths (${lengths.join(', ')} layers); every source of a slice must cover the same number of layers`);
      }
      for (const p of found) {
        const s = sources[p.source];
        if (p.kind === 'invalid') {
          problems.push(s.end < s.start
            ? `${s.model}: the range [${s.start}, ${s.end}] ends before it starts`
            : `${s.model}: [${s.start}, ${s.end}] is not a layer range (it needs whole numbers 0 ≤ start ≤ end)`);
        }
        else if (p.kind === 'past-end') problems.push(`${s.model} has ${p.layers} layers (0–${p.layers - 1}); the range [${s.start}, ${s.end}] goes past its last layer`);
      }
      const block: SliceBlock = { sliceIndex, outputStart, length, sources, problems };
      outputStart += length;
      return block;
    });
    return { blocks, totalLayers: outputStart, modelsSyntax: false };
  }
  const keys = (config.models ?? []).map((m) => modelKey(m.model));
  if (config.base_model && !keys.includes(modelKey(config.base_model))) keys.push(modelKey(config.base_model));
  if (keys.length === 0) return { blocks: [], totalLayers: 0, modelsSyntax: true };
  const counts = keys.map((k) => numLayers(k));
  const known = counts.filter((n): n is number => n !== undefined);
  const length = known[0] ?? 0;
  const problems =
    new Set(known).size > 1
      ? [`with models: every model needs the same number of layers, but ${keys.map((k, i) => `${k} has ${counts[i] ?? '?'}`).join(', ')}; use slices`]
      : [];
  const sources = keys.map((model, i) => ({ model, start: 0, end: counts[i] ?? length }));
  return { blocks: [{ sliceIndex: 0, outputStart: 0, length, sources, problems }], totalLayers: length, modelsSyntax: true };
}

/** One output layer with the t its parameters' gradients are evaluated at. */
export interface OutputLayer {
  readonly layer: number;
  readonly sliceIndex: number;
  readonly indexInSlice: number;
  readonly t: number;
}

/** Every output layer in order; each slice has its own 0→1 ramp (`layerT`). */
export function outputLayers(layout: LayerLayout): OutputLayer[] {
  const layers: OutputLayer[] = [];
  for (const block of layout.blocks) {
    for (let i = 0; i < block.length; i++) {
      layers.push({ layer: block.outputStart + i, sliceIndex: block.sliceIndex, indexInSlice: i, t: layerT(i, block.length) });
    }
  }
  return layers;
}

/** A stable colour slot per model (index into the palette), by first appearance. */
export function modelColors(keys: readonly string[], paletteSize: number): Map<string, number> {
  const colors = new Map<string, number>();
  keys.forEach((key) => {
    if (!colors.has(key)) colors.set(key, colors.size % paletteSize);
  });
  return colors;
}

/**
 * The plan's per-layer list (PlanSummary.layers) as blocks: runs of output layers whose sources are
 * the same models at consecutive source layers.
 */
export function layoutFromPlan(
  layers: readonly { readonly outputLayer: number; readonly sources: readonly { readonly model: string; readonly layer: number }[] }[],
): LayerLayout {
  const blocks: SliceBlock[] = [];
  let current: { outputStart: number; length: number; sources: { model: string; start: number; end: number }[] } | undefined;
  const flush = () => {
    if (current) blocks.push({ sliceIndex: blocks.length, outputStart: current.outputStart, length: current.length, sources: current.sources, problems: [] });
    current = undefined;
  };
  for (const layer of layers) {
    const continues =
      current !== undefined &&
      current.outputStart + current.length === layer.outputLayer &&
      current.sources.length === layer.sources.length &&
      current.sources.every((s, i) => s.model === layer.sources[i].model && s.end === layer.sources[i].layer);
    if (continues) {
      current!.length++;
      current!.sources.forEach((s) => s.end++);
    } else {
      flush();
      current = { outputStart: layer.outputLayer, length: 1, sources: layer.sources.map((s) => ({ model: s.model, start: s.layer, end: s.layer + 1 })) };
    }
  }
  flush();
  return { blocks, totalLayers: layers.length, modelsSyntax: false };
}
