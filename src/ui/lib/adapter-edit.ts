import { formatModelReference, parseModelReference } from '../../config';
import type { MergeConfig, ModelReference, OutputSliceDefinition } from '../../config';

/**
 * A model row's LoRA adapter in the YAML (docs/lora.md §1): `model+adapter`. Keys are the model
 * reference strings the form and the worker's bindings use.
 */

export interface AdapterRef {
  readonly path: string;
  readonly revision?: string;
}

/** The model part and the adapter part of a key (`org/base+org/lora@rev`). */
export function splitAdapterKey(key: string): { readonly model: string; readonly adapter?: AdapterRef; readonly adapterName?: string } {
  let ref: ModelReference;
  try {
    ref = parseModelReference(key);
  } catch {
    return { model: key };
  }
  const model = formatModelReference({ path: ref.path, ...(ref.revision !== undefined ? { revision: ref.revision } : {}) });
  if (!ref.lora) return { model };
  return { model, adapter: ref.lora, adapterName: adapterName(ref.lora) };
}

/** The adapter as written after `+`. */
export function adapterName(lora: AdapterRef): string {
  return lora.revision !== undefined ? `${lora.path}@${lora.revision}` : lora.path;
}

/** The key of `model` with `adapter` (or without any, when undefined). */
export function withAdapter(key: string, adapter: AdapterRef | undefined): string {
  const { model } = splitAdapterKey(key);
  return adapter ? `${model}+${adapterName(adapter)}` : model;
}

/**
 * Gives every reference to `key` the adapter `adapter` (or removes it): models entries, slice
 * sources and bases, modules, base_model, a tokenizer source. Returns the new key.
 */
export function setModelAdapter(config: MergeConfig, key: string, adapter: AdapterRef | undefined): string {
  const visit = (ref: ModelReference | undefined): void => {
    if (!ref || formatModelReference(ref) !== key) return;
    if (adapter) ref.lora = { path: adapter.path, ...(adapter.revision !== undefined ? { revision: adapter.revision } : {}) };
    else delete ref.lora;
  };
  const slices = (list: readonly OutputSliceDefinition[] | undefined): void =>
    list?.forEach((s) => {
      s.sources.forEach((src) => visit(src.model));
      visit(s.base_model);
    });
  config.models?.forEach((m) => visit(m.model));
  slices(config.slices);
  for (const module of Object.values(config.modules ?? {})) {
    module.models?.forEach((m) => visit(m.model));
    slices(module.slices);
  }
  visit(config.base_model);
  const tokenizerSource = config.tokenizer?.source ?? config.tokenizer_source;
  if (tokenizerSource && typeof tokenizerSource !== 'string') visit(tokenizerSource);
  return withAdapter(key, adapter);
}
