import type { ArchitectureDefinition, ArchitectureWeights, WeightInfo } from './types';

// mergekit uses string.Template with idpattern `[_a-z][_a-z0-9]*([+-]1)?`; only the braced form
// appears in its JSON files, so only that is recognised here.
const PLACEHOLDER = /\$\{([_a-z][_a-z0-9]*(?:[+-]1)?)\}/g;

/**
 * Substitutes `${layer_index}`, `${layer_index±1}`, `${num_layers}` and `${num_layers±1}`.
 * `layerIndex` is null outside layer templates (pre/post weights); using a layer placeholder
 * there, or any unknown placeholder, is an error (as in mergekit).
 */
export function expandTemplate(s: string, layerIndex: number | null, numLayers: number): string {
  if (!s.includes('$')) return s;
  return s.replace(PLACEHOLDER, (_match, key: string) => {
    const value = placeholderValue(key, layerIndex, numLayers);
    if (value === undefined) {
      throw new Error(
        `Unknown template placeholder \${${key}} in "${s}"` +
          (key.startsWith('layer_index') && layerIndex === null ? ' (not inside a layer template)' : ''),
      );
    }
    return String(value);
  });
}

function placeholderValue(key: string, layerIndex: number | null, numLayers: number): number | undefined {
  switch (key) {
    case 'num_layers': return numLayers;
    case 'num_layers+1': return numLayers + 1;
    case 'num_layers-1': return numLayers - 1;
  }
  if (layerIndex === null) return undefined;
  switch (key) {
    case 'layer_index': return layerIndex;
    case 'layer_index+1': return layerIndex + 1;
    case 'layer_index-1': return layerIndex - 1;
  }
  return undefined;
}

/** Expands every string field of a weight; the result carries only WeightInfo's own fields. */
export function expandWeight(w: WeightInfo, layerIndex: number | null, numLayers: number): WeightInfo {
  const x = (s: string): string => expandTemplate(s, layerIndex, numLayers);
  const out: {
    name: string; is_embed?: boolean; optional?: boolean;
    aliases?: string[]; tied_names?: string[]; force_dtype?: string;
  } = { name: x(w.name) };
  if (w.is_embed) out.is_embed = true;
  if (w.optional) out.optional = true;
  if (w.aliases && w.aliases.length > 0) out.aliases = w.aliases.map(x);
  if (w.tied_names && w.tied_names.length > 0) out.tied_names = w.tied_names.map(x);
  if (w.force_dtype !== undefined) out.force_dtype = x(w.force_dtype);
  return out;
}

/** All tensors of a model with `numLayers` layers, in mergekit's order (pre, layer 0…n-1, post). */
export function architectureWeights(def: ArchitectureDefinition, numLayers: number): ArchitectureWeights {
  if (!Number.isInteger(numLayers) || numLayers < 0) {
    throw new Error(`Invalid layer count ${numLayers} for architecture "${def.model_type}"`);
  }
  const layers: WeightInfo[][] = [];
  for (let i = 0; i < numLayers; i++) {
    layers.push(def.layer_templates.weights.map((w) => expandWeight(w, i, numLayers)));
  }
  return {
    pre: def.pre_weights.map((w) => expandWeight(w, null, numLayers)),
    layers,
    post: def.post_weights.map((w) => expandWeight(w, null, numLayers)),
  };
}
