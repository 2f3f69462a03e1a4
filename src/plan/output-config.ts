import type { MergeConfig } from '../config/types';
import type { ArchitectureDefinition } from './architectures';

/**
 * The output config.json (MERGEKIT_SPEC.md §3.3): the donor's config with `torch_dtype` set to
 * `out_dtype` or `dtype`, and — for `slices:` merges only — the layer count rewritten to the
 * number of output layers. Nothing else changes (`tie_word_embeddings` is kept as is).
 */
export function outputModelConfig(
  donorConfig: Readonly<Record<string, unknown>>,
  config: MergeConfig,
  arch: ArchitectureDefinition,
  outputLayers: number | undefined,
): Record<string, unknown> {
  const out = structuredClone(donorConfig) as Record<string, unknown>;
  const dtype = config.out_dtype ?? config.dtype;
  if (dtype) out.torch_dtype = dtype;
  if (outputLayers !== undefined && arch.num_layers_config_key) {
    const parts = arch.num_layers_config_key.split('.');
    let obj: Record<string, unknown> = out;
    for (const part of parts.slice(0, -1)) {
      if (typeof obj[part] !== 'object' || obj[part] === null) obj[part] = {};
      obj = obj[part] as Record<string, unknown>;
    }
    obj[parts[parts.length - 1]] = outputLayers;
  }
  return out;
}
