import { formatModelReference, modelPathKind, type ModelReference } from '../config';
import type { MergeConfig } from '../config/types';
import { baseModelsFromCard, HubError, isHubRepoId, type HubClient, type HubFile } from '../hub';
import { adapterSourceKey, loadModelMetadata, loadTokenizerFiles, referencedModels, yamlPathOf, type ModelMetadata } from '../plan';
import { DemoModelFolder, HubModelFolder, LocalFilesModelFolder, loadDemoIndex, type DemoIndex, type ShardSpec } from '../storage/browser';
import { untrustedText } from '../storage';
import type { ModelFolder, SafetensorsDtype } from '../storage/types';
import type { ModelBinding, ModelSourceSpec, ModelSummary } from './api';

/**
 * The adapter of a `model+lora` reference (docs/lora.md §1): read from `source` (a Hub repo at a
 * revision or a picked folder) and opened by the engine under `key` (`adapterSourceKey`).
 */
export interface AdapterBinding {
  /** The model reference it applies to (`model+lora`, the key of the model's metadata). */
  readonly modelKey: string;
  /** `lora:<name>`: the key the page binds it by and the engine opens its files by. */
  readonly key: string;
  /** The part after `+`, as the YAML writes it. */
  readonly name: string;
  readonly source: ModelSourceSpec;
  /** Where the YAML names it (`models[0].model`), for messages. */
  readonly yamlPath?: string;
}

/**
 * The cache spec of Hub file `info` of model `modelKey`, served by `hub`: pinned to the snapshot's
 * commit and checked against the file's sha256 (LFS files) or git blob id. A file the Hub lists
 * with neither cannot be verified, so it is refused.
 */
export function hubFileSpec(modelKey: string, hub: HubModelFolder, info: HubFile): ShardSpec {
  if (!info.sha256 && !info.oid) {
    throw new Error(`Model ${modelKey}: the Hub listed no hash for ${info.path} of ${hub.snapshot.repo}, so its download cannot be verified`);
  }
  return { repo: hub.snapshot.repo, commit: hub.snapshot.commit, path: info.path, size: info.size, ...(info.sha256 ? { sha256: info.sha256 } : { gitOid: info.oid! }) };
}

export interface ResolvedModel {
  readonly key: string;
  readonly source: ModelSourceSpec;
  readonly folder: ModelFolder;
  /** Set for Hub models: the repo pinned to a commit. */
  readonly hub?: HubModelFolder;
  /** Size of a file of the model, when known without reading it. */
  fileSize(path: string): number | undefined;
  /** config.json and safetensors headers; with `tokenizer`, the tokenizer files' texts too. */
  metadata(options?: { readonly tokenizer?: boolean }): Promise<ModelMetadata>;
}

/**
 * Turns the page's model bindings into model folders (Hub repo at a commit, local Files, demo
 * models) and reads their metadata once; the worker keeps them for the next plan or merge.
 */
export class ModelResolver {
  private readonly models = new Map<string, Promise<ResolvedModel>>();
  private demoIndex: Promise<DemoIndex> | null = null;

  constructor(
    private readonly hub: () => HubClient,
    private readonly demoBaseUrl: () => string,
    private readonly fetchImpl: typeof fetch,
  ) {}

  /** Forgets everything (a new hub or token, a deleted cache). */
  clear(): void {
    this.models.clear();
    this.demoIndex = null;
  }

  demos(): Promise<DemoIndex> {
    if (!this.demoIndex) {
      this.demoIndex = loadDemoIndex(this.demoBaseUrl(), this.fetchImpl);
      this.demoIndex.catch(() => (this.demoIndex = null));
    }
    return this.demoIndex;
  }

  async resolve(key: string, source: ModelSourceSpec, signal?: AbortSignal): Promise<ResolvedModel> {
    const identity = `${key}\u0000${sourceIdentity(source)}`;
    let pending = this.models.get(identity);
    if (!pending) {
      pending = this.open(key, source, signal);
      pending.catch(() => this.models.delete(identity));
      this.models.set(identity, pending);
    }
    return pending;
  }

  /**
   * The binding of every model the config refers to. Models the page did not bind are taken from
   * the Hub when their reference looks like a Hub id, or from the demo models by name.
   */
  async bind(config: MergeConfig, bindings: readonly ModelBinding[]): Promise<{ bound: ModelBinding[]; adapters: AdapterBinding[]; errors: string[] }> {
    const bound: ModelBinding[] = [];
    const adapters: AdapterBinding[] = [];
    const errors: string[] = [];
    for (const ref of referencedModels(config)) {
      const key = formatModelReference(ref);
      if (ref.lora) {
        const adapter = bindAdapter(config, key, ref.lora, bindings);
        if (typeof adapter === 'string') errors.push(adapter);
        else adapters.push(adapter);
      }
      // A model+lora reference reads the model the page bound without its adapter, when it did.
      const plainKey = formatModelReference({ path: ref.path, ...(ref.revision !== undefined ? { revision: ref.revision } : {}) });
      const explicit = bindings.find((b) => b.key === key) ?? (ref.lora ? bindings.find((b) => b.key === plainKey) : undefined);
      if (explicit) {
        bound.push({ key, source: explicit.source });
        continue;
      }
      const implicit = await this.bindReference(ref, []);
      if (typeof implicit === 'string') errors.push(implicit);
      else bound.push(implicit);
    }
    return { bound, adapters, errors };
  }

  /**
   * The binding of one model reference (no adapter): the page's, else a demo model by name, else
   * a Hub repo; a message when it names a local folder the page did not bind.
   */
  async bindReference(ref: ModelReference, bindings: readonly ModelBinding[]): Promise<ModelBinding | string> {
    const key = formatModelReference(ref);
    const explicit = bindings.find((b) => b.key === key);
    if (explicit) return { key, source: explicit.source };
    const demo = await this.demos().then(
      (index) => index.models.find((m) => m.name === ref.path),
      () => undefined,
    );
    if (demo) return { key, source: { kind: 'demo', name: demo.name } };
    if (isHubRepoId(ref.path) && modelPathKind(ref.path) === 'hub') {
      return { key, source: { kind: 'hub', repo: ref.path, ...(ref.revision ? { revision: ref.revision } : {}) } };
    }
    return (
      `Model ${key} of the YAML is not among the chosen models and is not a Hub id (namespace/name), so it names a local folder` +
      ': choose that folder with "Choose folder…" on its row in the Models step, or fix its name in the YAML'
    );
  }

  private async open(key: string, source: ModelSourceSpec, signal?: AbortSignal): Promise<ResolvedModel> {
    let folder: ModelFolder;
    let hub: HubModelFolder | undefined;
    let sizes: Map<string, number>;
    if (source.kind === 'hub') {
      hub = await HubModelFolder.open(this.hub(), source.repo, source.revision, { id: key, signal });
      folder = hub;
      sizes = new Map(hub.snapshot.files.map((f) => [f.path, f.size]));
    } else if (source.kind === 'local') {
      if (source.files.length === 0) throw new Error(`Model ${key}: no files were picked`);
      folder = new LocalFilesModelFolder(source.name, source.files);
      const local = folder as LocalFilesModelFolder;
      sizes = new Map();
      for (const path of await local.listFiles()) sizes.set(path, (await local.open(path))!.size);
    } else {
      const index = await this.demos();
      const entry = index.models.find((m) => m.name === source.name);
      if (!entry) throw new Error(`there is no demo model "${source.name}" (there are: ${index.models.map((m) => m.name).join(', ')})`);
      folder = new DemoModelFolder(this.demoBaseUrl(), entry, this.fetchImpl);
      sizes = new Map(entry.files.map((f) => [f.path, f.size]));
    }
    let metadata: Promise<ModelMetadata> | null = null;
    let withTokenizer: Promise<ModelMetadata> | null = null;
    const base = (): Promise<ModelMetadata> => {
      if (!metadata) {
        metadata = loadModelMetadata(folder, key, source.kind === 'hub' ? source.repo : undefined);
        metadata.catch(() => (metadata = null));
      }
      return metadata;
    };
    return {
      key,
      source,
      folder,
      ...(hub ? { hub } : {}),
      fileSize: (path) => sizes.get(path),
      metadata: (options = {}) => {
        if (!options.tokenizer) return base();
        if (!withTokenizer) {
          withTokenizer = base().then(async (meta) => ({ ...meta, tokenizerFiles: await loadTokenizerFiles(folder, meta.files) }));
          withTokenizer.catch(() => (withTokenizer = null));
        }
        return withTokenizer;
      },
    };
  }
}

/** The binding of a `model+lora` reference's adapter: the page's, or the Hub repo its name is; else a message. */
function bindAdapter(
  config: MergeConfig,
  modelKey: string,
  lora: { readonly path: string; readonly revision?: string },
  bindings: readonly ModelBinding[],
): AdapterBinding | string {
  const key = adapterSourceKey(lora);
  const name = lora.revision !== undefined ? `${lora.path}@${lora.revision}` : lora.path;
  const yamlPath = yamlPathOf(config, modelKey);
  const explicit = bindings.find((b) => b.key === key);
  const base = { modelKey, key, name, ...(yamlPath !== undefined ? { yamlPath } : {}) };
  if (explicit) return { ...base, source: explicit.source };
  if (isHubRepoId(lora.path)) return { ...base, source: { kind: 'hub', repo: lora.path, ...(lora.revision !== undefined ? { revision: lora.revision } : {}) } };
  return (
    `${yamlPath ? `${yamlPath}: ` : ''}LoRA adapter ${untrustedText(name)} of ${untrustedText(modelKey)} is not among the chosen adapters and is not a Hub id (namespace/name): ` +
    "pick its folder (adapter_config.json and adapter_model.safetensors) in the model's row, or fix the part after '+' in the YAML"
  );
}

function sourceIdentity(source: ModelSourceSpec): string {
  switch (source.kind) {
    case 'hub':
      return `hub:${source.repo}@${source.revision ?? 'main'}`;
    case 'demo':
      return `demo:${source.name}`;
    case 'local':
      return `local:${source.name}:${source.files
        .map((f) => `${(f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name}:${f.size}:${f.lastModified}`)
        .join('|')}`;
  }
}

/** The key a source is referred to by in a YAML. */
export function sourceKey(source: ModelSourceSpec): string {
  if (source.kind === 'hub') return source.revision ? `${source.repo}@${source.revision}` : source.repo;
  return source.name;
}

const TOKENIZER_MARKERS = ['tokenizer.json', 'tokenizer.model'];

export async function summarizeModel(model: ResolvedModel): Promise<ModelSummary> {
  const meta = await model.metadata();
  const config = meta.config;
  const num = (...keys: string[]): number | undefined => {
    for (const k of keys) {
      const v = config[k] ?? (config.text_config as Record<string, unknown> | undefined)?.[k];
      if (typeof v === 'number' && Number.isFinite(v)) return v;
    }
    return undefined;
  };
  let parameterCount = 0;
  const bytesByDtype = new Map<SafetensorsDtype, number>();
  for (const t of meta.tensors.tensors.values()) {
    parameterCount += t.shape.reduce((a, b) => a * b, 1);
    bytesByDtype.set(t.dtype, (bytesByDtype.get(t.dtype) ?? 0) + t.byteLength);
  }
  const dtype = [...bytesByDtype].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
  const weightBytes = meta.tensors.files.reduce((sum, f) => sum + (model.fileSize(f) ?? 0), 0);
  const hasLmHead = [...meta.tensors.tensors.keys()].some((n) => n === 'lm_head.weight' || n === 'embed_out.weight');
  const tie = config.tie_word_embeddings;
  const architectures = Array.isArray(config.architectures) ? config.architectures : [];
  const mergekitConfig = meta.files.includes('mergekit_config.yml') ? await model.folder.readText('mergekit_config.yml') : null;
  const readme = meta.files.includes('README.md') ? await model.folder.readText('README.md') : null;
  const baseModels = readme !== null ? baseModelsFromCard(readme) : undefined;
  const hidden = num('hidden_size', 'n_embd', 'd_model');
  const vocab = num('vocab_size', 'padded_vocab_size');
  return {
    key: model.key,
    architecture: String(architectures[0] ?? 'unknown'),
    modelType: String(config.model_type ?? 'unknown'),
    numLayers: num('num_hidden_layers', 'n_layer', 'num_layers', 'n_layers') ?? 0,
    ...(hidden !== undefined ? { hiddenSize: hidden } : {}),
    ...(vocab !== undefined ? { vocabSize: vocab } : {}),
    parameterCount,
    dtype,
    weightBytes,
    files: meta.files.map((name) => ({ name, size: model.fileSize(name) ?? 0 })),
    tiedEmbeddings: tie === true || (tie === undefined && !hasLmHead),
    hasTokenizer: TOKENIZER_MARKERS.some((f) => meta.files.includes(f)),
    ...(mergekitConfig !== null ? { mergekitConfig } : {}),
    ...(baseModels !== undefined ? { baseModels } : {}),
  };
}

/** A message for whatever opening a model threw. */
export function modelErrorMessage(key: string, error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof HubError) return `Model ${key}: ${message}`;
  return message.includes(key) ? message : `Model ${key}: ${message}`;
}
