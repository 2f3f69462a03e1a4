import { evaluateSetting, PRE_POST_LAYER_T } from '../../config';
import type { ConditionalSetting, ParameterSetting } from '../../config';
import type { OutputLayer } from './layer-map';

/**
 * Parameter values in the three shapes mergekit accepts (docs/config.md §4) — a value, a
 * gradient over the layers, or a list of filtered entries — converted into each other for the
 * form, and evaluated per layer for the chart with the config's own `evaluateSetting`, so the
 * chart shows exactly what the merge will use.
 */

export type SettingKind = 'value' | 'gradient' | 'filtered';

export function settingKind(setting: ParameterSetting | undefined): SettingKind {
  if (!Array.isArray(setting)) return 'value';
  if (setting.length > 0 && typeof setting[0] === 'object') return 'filtered';
  return 'gradient';
}

/** The catch-all entry of a filtered list (no filter, null or `*`), if any. */
export function catchAll(entries: readonly ConditionalSetting[]): ConditionalSetting | undefined {
  return entries.find((e) => e.filter === undefined || e.filter === null || e.filter === '*');
}

/** A representative plain value of a setting (the first number it can produce). */
export function representativeValue(setting: ParameterSetting | undefined, fallback: number): number {
  if (setting === undefined) return fallback;
  if (typeof setting === 'number') return setting;
  if (typeof setting === 'string') return Number.isFinite(Number(setting)) ? Number(setting) : fallback;
  if (setting.length === 0) return fallback;
  if (typeof setting[0] === 'number') return setting[0] as number;
  const entries = setting as ConditionalSetting[];
  return representativeValue((catchAll(entries) ?? entries[0]).value as ParameterSetting, fallback);
}

/** Common filters: attention vs MLP weights, as in mergekit's gradient-slerp example. */
export const COMMON_FILTERS = ['self_attn', 'mlp'] as const;

/** The same parameter as another kind of setting, keeping what can be kept. */
export function convertSetting(setting: ParameterSetting | undefined, kind: SettingKind, fallback: number): ParameterSetting {
  const current = settingKind(setting);
  if (setting !== undefined && current === kind) return setting;
  const value = representativeValue(setting, fallback);
  if (kind === 'value') return value;
  if (kind === 'gradient') {
    if (current === 'filtered') {
      const entry = catchAll(setting as ConditionalSetting[]) ?? (setting as ConditionalSetting[])[0];
      if (Array.isArray(entry?.value)) return [...entry.value];
    }
    return [value, value];
  }
  const inner: number | number[] = current === 'gradient' ? [...(setting as number[])] : value;
  return [
    ...COMMON_FILTERS.map((filter) => ({ filter, value: Array.isArray(inner) ? [...inner] : inner })),
    { value: Array.isArray(inner) ? [...inner] : inner },
  ];
}

/** One line of the chart: the value a kind of tensor gets at each output layer. */
export interface Series {
  readonly label: string;
  /** The filter of the entry this line shows (`null` for the catch-all; undefined for a plain gradient). */
  readonly filter?: string | null;
  readonly values: readonly number[];
  /** Value for embeddings / lm_head (t = 0), when this line applies to them. */
  readonly prePost?: number;
  /** An earlier entry already matches every tensor this one would: it never applies. */
  readonly shadowed?: boolean;
}

/** A tensor name for layer `layer` that contains `fragment`. */
function sampleName(layer: number, fragment: string): string {
  return `model.layers.${layer}.${fragment}`;
}

const OTHER_CANDIDATES = ['input_layernorm.weight', 'post_attention_layernorm.weight', 'norm.weight', 'layer.weight'];

function numeric(value: number | string | undefined): number {
  return typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
}

/**
 * The chart's lines for a setting over the given output layers. A plain value or gradient is one
 * line. A filtered list gives one line per entry, evaluated on a sample tensor name the entry's
 * filter matches, through the real first-match rules (so a shadowed entry shows the value that
 * actually applies, and is flagged).
 */
export function settingSeries(setting: ParameterSetting, layers: readonly OutputLayer[]): Series[] {
  const evaluate = (name: (layer: number) => string) =>
    layers.map((l) => numeric(evaluateSetting(setting, name(l.layer), l.t)));
  if (settingKind(setting) !== 'filtered') {
    return [{ label: 'all tensors', values: evaluate((l) => sampleName(l, 'weight')), prePost: numeric(evaluateSetting(setting, 'model.embed_tokens.weight', PRE_POST_LAYER_T)) }];
  }
  const entries = setting as ConditionalSetting[];
  const series: Series[] = [];
  entries.forEach((entry, index) => {
    const earlier = entries.slice(0, index);
    const isCatchAll = entry.filter === undefined || entry.filter === null || entry.filter === '*';
    if (isCatchAll) {
      const fragment = OTHER_CANDIDATES.find((c) => !earlier.some((e) => typeof e.filter === 'string' && c.includes(e.filter)));
      const shadowed = fragment === undefined || earlier.some((e) => catchAll([e]) !== undefined);
      series.push({
        label: 'everything else',
        filter: null,
        values: evaluate((l) => sampleName(l, fragment ?? OTHER_CANDIDATES[0])),
        prePost: numeric(evaluateSetting(setting, 'model.embed_tokens.weight', PRE_POST_LAYER_T)),
        shadowed,
      });
      return;
    }
    const filter = entry.filter as string;
    const shadowed = earlier.some((e) => catchAll([e]) !== undefined || (typeof e.filter === 'string' && filter.includes(e.filter)));
    series.push({ label: filter, filter, values: evaluate((l) => sampleName(l, filter)), shadowed });
  });
  return series;
}

/** The [min, max] the chart's y axis spans: the declared range, widened to include every value. */
export function valueDomain(series: readonly Series[], declared: { min?: number; max?: number }): [number, number] {
  const values = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  let lo = declared.min ?? Math.min(0, ...values);
  let hi = declared.max ?? Math.max(1, ...values);
  if (values.length > 0) {
    lo = Math.min(lo, ...values);
    hi = Math.max(hi, ...values);
  }
  if (hi - lo < 1e-9) {
    hi = lo + 1;
  }
  return [lo, hi];
}

/** Three to six round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, target = 5): number[] {
  const span = hi - lo;
  const rough = span / target;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => span / s <= target) ?? magnitude * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Where a gradient's control points sit: the output layers (fractional) of each slice where t = k/(n−1). */
export function controlPointLayers(points: number, layers: readonly OutputLayer[]): { index: number; layer: number }[] {
  const out: { index: number; layer: number }[] = [];
  const slices = new Map<number, OutputLayer[]>();
  for (const l of layers) {
    if (!slices.has(l.sliceIndex)) slices.set(l.sliceIndex, []);
    slices.get(l.sliceIndex)!.push(l);
  }
  for (const sliceLayers of slices.values()) {
    const first = sliceLayers[0].layer;
    const span = sliceLayers.length - 1;
    for (let k = 0; k < points; k++) {
      const t = points === 1 ? 1 : k / (points - 1);
      out.push({ index: k, layer: span <= 0 ? first : first + t * span });
    }
  }
  return out;
}
