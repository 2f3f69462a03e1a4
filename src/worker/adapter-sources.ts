import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, loadLoraAdapter, type LoraAdapter } from '../lora';
import type { ModelMetadata } from '../plan';
import type { TensorInput } from '../plan/types';
import type { AdapterSummary } from './api';
import type { AdapterBinding, ModelResolver, ResolvedModel } from './model-sources';

/**
 * The adapters of `model+lora` references in the worker (docs/lora.md §1): each is opened like a
 * model (a Hub repo pinned to a commit, read through the same client, cache and verification, or
 * a picked folder), its adapter_config.json and safetensors header are read, and the adapter is
 * attached to its model's metadata, where the plan matches it to the model's tensors.
 */

const loaded = new WeakMap<ResolvedModel, Map<string, Promise<LoraAdapter>>>();

/** Reads the adapter of a resolved folder once per name (the resolver keeps the folder between plans). */
export function adapterOf(folder: ResolvedModel, name: string): Promise<LoraAdapter> {
  const byName = loaded.get(folder) ?? new Map<string, Promise<LoraAdapter>>();
  loaded.set(folder, byName);
  let pending = byName.get(name);
  if (!pending) {
    pending = loadLoraAdapter(folder.folder, name);
    pending.catch(() => byName.delete(name));
    byName.set(name, pending);
  }
  return pending;
}

/**
 * Opens every adapter and sets it on its model's metadata; the adapters' folders join `models`
 * under their `lora:` keys, so that downloads, streaming and the engine's opener find them.
 * Problems go to `errors`, each naming the YAML path and the adapter.
 */
export async function attachAdapters(
  resolver: ModelResolver,
  adapters: readonly AdapterBinding[],
  metadata: Map<string, ModelMetadata>,
  models: Map<string, ResolvedModel>,
  errors: string[],
  signal?: AbortSignal,
): Promise<void> {
  await Promise.all(
    adapters.map(async (binding) => {
      try {
        // Opened by its own name (messages name the repo or folder); the engine reads it by `binding.key`.
        const resolved = await resolver.resolve(binding.name, binding.source, signal);
        const adapter = await adapterOf(resolved, binding.name);
        models.set(binding.key, resolved);
        const meta = metadata.get(binding.modelKey);
        if (meta) metadata.set(binding.modelKey, { ...meta, adapter });
      } catch (error) {
        errors.push(adapterErrorMessage(binding, error));
      }
    }),
  );
}

function adapterErrorMessage(binding: AdapterBinding, error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  if (!message.startsWith('LoRA adapter ')) message = `LoRA adapter ${binding.name}: ${message}`;
  if (binding.source.kind === 'local' && binding.source.files.length === 0) {
    message = `LoRA adapter ${binding.name}: no files were picked; pick the adapter's folder (${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE})`;
  }
  return binding.yamlPath ? `${binding.yamlPath}: ${message}` : message;
}

/** The files an input's bytes are read from: its own tensor, or the adapter's copy, plus a LoRA's factors. */
export function inputReads(input: TensorInput): { readonly model: string; readonly file: string; readonly offset: number; readonly length: number }[] {
  const t = input.tensor;
  const adapter = input.adapter;
  if (adapter?.kind === 'replace') return [{ model: adapter.source, file: t.file, offset: t.offset, length: t.byteLength }];
  const own = { model: input.model, file: t.file, offset: t.offset, length: t.byteLength };
  if (adapter?.kind !== 'lora') return [own];
  return [own, ...[adapter.a, adapter.b].map((f) => ({ model: adapter.source, file: f.file, offset: f.offset, length: f.byteLength }))];
}

/** What the page shows of an adapter before it is used (the adapter picker). */
export async function summarizeAdapter(folder: ResolvedModel, name: string): Promise<AdapterSummary> {
  const adapter = await adapterOf(folder, name);
  const c = adapter.config;
  const ranks = new Set<number>();
  for (const m of adapter.modules.values()) ranks.add(m.a.shape[0]);
  const targets = c.targetModules === null ? null : typeof c.targetModules === 'string' ? c.targetModules : c.targetModules.join(', ');
  return {
    key: name,
    rank: c.r,
    alpha: c.loraAlpha,
    rslora: c.useRslora,
    ranks: [...ranks].sort((a, b) => a - b),
    modules: adapter.modules.size,
    savedModules: adapter.replacements.size,
    ...(targets !== null ? { targetModules: targets } : {}),
    ...(c.baseModel !== undefined ? { baseModel: c.baseModel } : {}),
    bytes: folder.fileSize(ADAPTER_WEIGHTS_FILE) ?? 0,
  };
}
