import { formatModelReference } from '../config';
import type { MergeConfig, ModelReference } from '../config/types';
import { LoraAdapterError, resolveAdapter, type AdapterTarget } from '../lora';
import type { TensorInfo } from '../storage/types';
import type { ModelMetadata } from './model-metadata';
import type { TensorAdapter } from './types';

/** The key the engine's SourceOpener opens a `model+lora` adapter's files by. */
export function adapterSourceKey(lora: NonNullable<ModelReference['lora']>): string {
  return `lora:${lora.revision !== undefined ? `${lora.path}@${lora.revision}` : lora.path}`;
}

/** Where the config first mentions a model (for messages): `models[1].model`, `base_model`… */
export function yamlPathOf(config: MergeConfig, key: string): string | undefined {
  const same = (ref: ModelReference | undefined): boolean => ref !== undefined && formatModelReference(ref) === key;
  const i = config.models?.findIndex((m) => same(m.model)) ?? -1;
  if (i >= 0) return `models[${i}].model`;
  for (const [s, slice] of (config.slices ?? []).entries()) {
    const j = slice.sources.findIndex((src) => same(src.model));
    if (j >= 0) return `slices[${s}].sources[${j}].model`;
    if (same(slice.base_model)) return `slices[${s}].base_model`;
  }
  return same(config.base_model) ? 'base_model' : undefined;
}

/** Per model key, the adapter's action on each tensor it targets. */
export type AdapterTargets = ReadonlyMap<string, { readonly targets: ReadonlyMap<string, AdapterTarget>; readonly name: string; readonly source: string }>;

/**
 * Matches every `model+lora` adapter to its model before any job is planned, so that an adapter
 * that does not fit fails the plan (with the YAML path) before anything is written.
 */
export function planAdapters(
  config: MergeConfig,
  refs: readonly ModelReference[],
  modelOf: (ref: ModelReference) => ModelMetadata,
  warnings: string[],
  fail: (message: string, yamlPath?: string) => Error,
): AdapterTargets {
  const out = new Map<string, { targets: ReadonlyMap<string, AdapterTarget>; name: string; source: string }>();
  for (const ref of refs) {
    if (!ref.lora) continue;
    const meta = modelOf(ref);
    const path = yamlPathOf(config, meta.key);
    if (!meta.adapter) {
      throw fail(`LoRA adapter ${formatModelReference({ path: ref.lora.path, revision: ref.lora.revision })} was not loaded: this front end cannot apply LoRA adapters yet (the CLI can, from local folders)`, path);
    }
    try {
      const targets = resolveAdapter(meta.adapter, meta.tensors.tensors, meta.key);
      out.set(meta.key, { targets, name: meta.adapter.name, source: adapterSourceKey(ref.lora) });
    } catch (error) {
      if (error instanceof LoraAdapterError) throw fail(error.message, path);
      throw error;
    }
    if (meta.adapter.ignored.length > 0) {
      warnings.push(
        `LoRA adapter ${meta.adapter.name}: ${meta.adapter.ignored.length} lora_B bias tensor(s) (e.g. ${meta.adapter.ignored[0]}) are ignored, as PEFT ignores them without lora_bias: true.`,
      );
    }
  }
  return out;
}

/** What the adapter of `modelKey` does to `tensorName`: a LoRA to apply, or a modules_to_save copy to read instead. */
export function adapterInput(
  adapters: AdapterTargets,
  modelKey: string,
  tensorName: string,
): { adapter?: TensorAdapter; replacement?: TensorInfo } {
  const entry = adapters.get(modelKey);
  const target = entry?.targets.get(tensorName);
  if (!entry || !target) return {};
  if (target.kind === 'replace') return { adapter: { kind: 'replace', adapter: entry.name, source: entry.source }, replacement: target.tensor };
  const { a, b, rank, scale, transposed } = target;
  return { adapter: { kind: 'lora', adapter: entry.name, source: entry.source, a, b, rank, scale, transposed } };
}
