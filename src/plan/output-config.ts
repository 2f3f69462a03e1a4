import type { MergeConfig } from '../config/types';
import type { ArchitectureDefinition } from './architectures';

/** A value of a config.json by dotted key (`text_config.vocab_size`); undefined when absent. */
export function configValue(config: Readonly<Record<string, unknown>>, key: string): unknown {
  let value: unknown = config;
  for (const part of key.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Sets a dotted key of a config.json, creating the objects on the way. */
function setConfigValue(config: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let obj: Record<string, unknown> = config;
  for (const part of parts.slice(0, -1)) {
    if (typeof obj[part] !== 'object' || obj[part] === null) obj[part] = {};
    obj = obj[part] as Record<string, unknown>;
  }
  obj[parts[parts.length - 1]] = value;
}

/** The config key of an architecture's vocabulary size (docs/tokenizers.md §4). */
export function vocabSizeKey(arch: ArchitectureDefinition): string {
  return arch.vocab_size_config_key ?? 'vocab_size';
}

/**
 * The output config.json (docs/output.md §5): the donor's config with `torch_dtype` set to
 * `out_dtype` or `dtype`, and — for `slices:` merges only — the layer count rewritten to the
 * number of output layers. When a tokenizer is built, the vocabulary size is set to the output
 * embedding rows (docs/tokenizers.md §4). Nothing else changes (`tie_word_embeddings` is kept as is).
 */
export function outputModelConfig(
  donorConfig: Readonly<Record<string, unknown>>,
  config: MergeConfig,
  arch: ArchitectureDefinition,
  outputLayers: number | undefined,
  vocabSize?: number,
): Record<string, unknown> {
  const out = structuredClone(donorConfig) as Record<string, unknown>;
  const dtype = config.out_dtype ?? config.dtype;
  if (dtype) out.torch_dtype = dtype;
  if (outputLayers !== undefined && arch.num_layers_config_key) setConfigValue(out, arch.num_layers_config_key, outputLayers);
  if (vocabSize !== undefined) setConfigValue(out, vocabSizeKey(arch), vocabSize);
  return out;
}
