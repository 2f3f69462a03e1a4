import { ConfigError } from './errors';
import { formatModelReference } from './model-reference';
import type { InputSliceDefinition, MergeConfig, ModelReference, OutputSliceDefinition } from './types';

/**
 * The output slices a config describes (docs/pipeline.md §1, docs/config.md §5). `models:` syntax becomes one
 * slice over all layers whose sources are the listed models (with their parameters) plus, when it
 * is not listed, `base_model` without parameters. A model listed twice takes part once, at its first
 * position with its last entry's parameters (mergekit keys models by reference). `slices:` is
 * returned as is. `numLayers` gives a model's number of hidden layers.
 */
export function toOutputSlices(config: MergeConfig, numLayers: (ref: ModelReference) => number): OutputSliceDefinition[] {
  if (config.modules !== undefined) {
    throw new ConfigError([
      {
        path: 'modules',
        message: 'multi-module (modules:) merges are not supported by Alloy yet: use models or slices for a single-module (text) model',
        severity: 'error',
      },
    ]);
  }
  if (config.slices !== undefined) return config.slices;
  if (config.models === undefined || config.models.length === 0) {
    throw new ConfigError([{ path: '', message: 'the config has no models or slices to merge', severity: 'error' }]);
  }

  const byKey = new Map<string, InputSliceDefinition>();
  const layers = new Map<string, number>();
  const add = (model: ModelReference, parameters: InputSliceDefinition['parameters']) => {
    const key = formatModelReference(model);
    if (!layers.has(key)) layers.set(key, numLayers(model));
    const count = layers.get(key)!;
    const source: InputSliceDefinition = { model, layer_range: [0, count] };
    if (parameters) source.parameters = parameters;
    byKey.set(key, source);
  };
  for (const entry of config.models) add(entry.model, entry.parameters);
  const base = config.base_model;
  if (base && !byKey.has(formatModelReference(base))) add(base, undefined);

  const counts = [...layers.entries()];
  if (new Set(counts.map(([, n]) => n)).size > 1) {
    throw new ConfigError([
      {
        path: 'models',
        message:
          `with models: every model must have the same number of layers, but ${counts.map(([key, n]) => `${key} has ${n}`).join(', ')}; ` +
          'use slices: with layer_range to combine models of different depths',
        severity: 'error',
      },
    ]);
  }
  return [{ sources: [...byKey.values()] }];
}
