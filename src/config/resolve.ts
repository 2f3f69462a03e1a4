import type { ConditionalSetting, ParameterSetting, Parameters } from './types';

/**
 * Parameter values per tensor (docs/config.md §3–4).
 *
 * Precedence lists callers pass to `resolveParameter` (first level with a value wins, then the
 * method's default):
 * - per-model parameters (`scope: 'model'`, e.g. weight, density):
 *   `[source.parameters, slice.parameters, module.parameters, config.parameters]`, evaluated with the
 *   source model's **input** tensor name;
 * - global parameters (`scope: 'global'`, e.g. t, normalize):
 *   `[slice.parameters, module.parameters, config.parameters]`, evaluated with the **output** tensor name.
 * (`module` only with `modules:` syntax; with `models:` syntax a model's parameters are its source's.)
 */

/** t for weights before the first layer (embeddings) and after the last (final norm, lm_head): the first gradient value. */
export const PRE_POST_LAYER_T = 0;

/**
 * t of layer `indexInSlice` of an output slice with `sliceLayers` layers: idx/(L−1), and 1 when the
 * slice has a single layer (it gets the *last* gradient value). Every slice has its own 0→1 ramp.
 */
export function layerT(indexInSlice: number, sliceLayers: number): number {
  return sliceLayers <= 1 ? 1 : indexInSlice / (sliceLayers - 1);
}

/** Piecewise-linear interpolation of evenly spread control points at t ∈ [0, 1]. */
export function evaluateGradient(values: readonly number[], t: number): number {
  if (values.length === 1) return values[0];
  const s = t * (values.length - 1);
  const i0 = Math.floor(s);
  const i1 = Math.min(values.length - 1, i0 + 1);
  const f = s - i0;
  return (1 - f) * values[i0] + f * values[i1];
}

/** The entry applies when its filter is missing, null, `*`, or a substring of the tensor name (case-sensitive). */
export function filterMatches(filter: string | null | undefined, tensorName: string): boolean {
  return filter === undefined || filter === null || filter === '*' || tensorName.includes(filter);
}

/**
 * mergekit's `evaluate_setting`: a scalar as is; a gradient interpolated at t; a filtered list → the
 * first matching entry's value (evaluated the same way), undefined when none matches.
 */
export function evaluateSetting(setting: ParameterSetting, tensorName: string, t: number): number | string | undefined {
  if (typeof setting === 'number' || typeof setting === 'string') return setting;
  if (!Array.isArray(setting)) throw new Error(`Unexpected setting value: ${JSON.stringify(setting)}`);
  if (setting.length === 0) return undefined;
  if (typeof setting[0] === 'number') return evaluateGradient(setting as number[], t);
  for (const entry of setting as ConditionalSetting[]) {
    if (filterMatches(entry.filter, tensorName)) return evaluateSetting(entry.value, tensorName, t);
  }
  return undefined;
}

/**
 * The value of parameter `name` for one tensor: the first level (in precedence order, see above)
 * whose setting yields a value. Undefined when no level does; the caller then applies the method's
 * default or reports a missing required parameter.
 */
export function resolveParameter(
  name: string,
  levels: readonly (Parameters | undefined)[],
  tensorName: string,
  t: number,
): number | undefined {
  for (const level of levels) {
    const setting = level?.[name];
    if (setting === undefined) continue;
    const value = evaluateSetting(setting, tensorName, t);
    if (value === undefined) continue;
    if (typeof value === 'string') {
      throw new Error(`parameter '${name}' has the string value '${value}'; parameter values must be numbers`);
    }
    return value;
  }
  return undefined;
}
