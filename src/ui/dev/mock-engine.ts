/**
 * A stand-in for the engine worker, for developing and screenshotting the UI without a Hub, a GPU
 * or model weights. It implements the EngineApi contract with a small fake catalogue of Hub
 * models, plans computed from the YAML (sizes are estimates), and merges, downloads and pushes
 * that only advance progress counters on timers. Only the dev/test entry (mock.html,
 * ./mock-main.ts) loads it; the production app never does.
 */
import { ConfigError, formatModelReference, parseMergeConfig, toOutputSlices } from '../../config';
import type { MergeConfig, ModelReference } from '../../config';
import { findMethod } from '../../methods';
import { renderModelCard } from '../../plan';
import type {
  CacheEntry,
  DemoModelInfo,
  DownloadProgress,
  EngineApi,
  MergeRequest,
  MergeResult,
  ModelSearchHit,
  ModelSourceSpec,
  ModelSummary,
  PlanSummary,
  PushProgress,
  PushRequest,
  RunProgress,
  TokenCheck,
} from '../../worker/api';

export interface MockOptions {
  /** Multiplies every simulated duration (screenshots freeze a run with a large value). */
  readonly slowdown?: number;
  /** Report that WebGPU is unavailable and the CPU backend is used. */
  readonly cpuFallback?: boolean;
  /** Fail the merge with a storage quota error once downloads pass half way. */
  readonly quotaError?: boolean;
  /** Latency of metadata calls in ms. */
  readonly latencyMs?: number;
}

interface CatalogueModel {
  readonly id: string;
  readonly architecture: string;
  readonly modelType: string;
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly parameterCount: number;
  readonly dtype: string;
  readonly downloads: number;
  readonly likes: number;
  readonly tied?: boolean;
  readonly baseModels?: readonly string[];
  readonly mergekitConfig?: string;
}

const mistral = { architecture: 'MistralForCausalLM', modelType: 'mistral', numLayers: 32, hiddenSize: 4096, vocabSize: 32000, parameterCount: 7_241_732_096, dtype: 'BF16' };
const llama3 = { architecture: 'LlamaForCausalLM', modelType: 'llama', numLayers: 32, hiddenSize: 4096, vocabSize: 128256, parameterCount: 8_030_261_248, dtype: 'BF16' };
const qwen05 = { architecture: 'Qwen2ForCausalLM', modelType: 'qwen2', numLayers: 24, hiddenSize: 896, vocabSize: 151936, parameterCount: 494_032_768, dtype: 'BF16', tied: true };

const BEAGLE_RECIPE = `slices:
  - sources:
      - model: mlabonne/NeuralBeagle14-7B
        layer_range: [0, 32]
      - model: HuggingFaceH4/zephyr-7b-beta
        layer_range: [0, 32]
merge_method: slerp
base_model: mlabonne/NeuralBeagle14-7B
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
dtype: bfloat16
`;

const CATALOGUE: readonly CatalogueModel[] = [
  { id: 'mistralai/Mistral-7B-v0.1', ...mistral, downloads: 412_000, likes: 4100 },
  { id: 'HuggingFaceH4/zephyr-7b-beta', ...mistral, downloads: 221_000, likes: 1700, baseModels: ['mistralai/Mistral-7B-v0.1'] },
  { id: 'teknium/OpenHermes-2.5-Mistral-7B', ...mistral, vocabSize: 32002, downloads: 96_000, likes: 860, baseModels: ['mistralai/Mistral-7B-v0.1'] },
  { id: 'NousResearch/Hermes-2-Pro-Mistral-7B', ...mistral, vocabSize: 32032, downloads: 41_000, likes: 490, baseModels: ['mistralai/Mistral-7B-v0.1'] },
  { id: 'WizardLMTeam/WizardMath-7B-V1.1', ...mistral, dtype: 'F16', downloads: 18_000, likes: 80, baseModels: ['mistralai/Mistral-7B-v0.1'] },
  { id: 'mlabonne/NeuralBeagle14-7B', ...mistral, downloads: 12_400, likes: 150, baseModels: ['mlabonne/Beagle14-7B'], mergekitConfig: BEAGLE_RECIPE },
  { id: 'upstage/SOLAR-10.7B-v1.0', ...mistral, architecture: 'LlamaForCausalLM', modelType: 'llama', numLayers: 48, parameterCount: 10_731_524_096, downloads: 30_000, likes: 290 },
  { id: 'meta-llama/Meta-Llama-3-8B', ...llama3, downloads: 980_000, likes: 6200 },
  { id: 'meta-llama/Meta-Llama-3-8B-Instruct', ...llama3, downloads: 2_100_000, likes: 3900, baseModels: ['meta-llama/Meta-Llama-3-8B'] },
  { id: 'Qwen/Qwen2.5-0.5B', ...qwen05, downloads: 610_000, likes: 280 },
  { id: 'Qwen/Qwen2.5-0.5B-Instruct', ...qwen05, downloads: 1_300_000, likes: 340, baseModels: ['Qwen/Qwen2.5-0.5B'] },
  { id: 'Qwen/Qwen2.5-Coder-0.5B', ...qwen05, downloads: 92_000, likes: 60, baseModels: ['Qwen/Qwen2.5-0.5B'] },
  { id: 'Qwen/Qwen2.5-Math-1.5B', ...qwen05, numLayers: 28, hiddenSize: 1536, parameterCount: 1_543_714_304, downloads: 88_000, likes: 70 },
];

const DEMOS: readonly (DemoModelInfo & { readonly model: CatalogueModel })[] = [
  {
    name: 'tiny-llama-base',
    description: 'A 4-layer Llama-style base model with random weights (a few hundred kB), for trying merges offline.',
    size: 402_112,
    model: { id: 'tiny-llama-base', architecture: 'LlamaForCausalLM', modelType: 'llama', numLayers: 4, hiddenSize: 64, vocabSize: 512, parameterCount: 200_000, dtype: 'BF16', downloads: 0, likes: 0 },
  },
  {
    name: 'tiny-llama-chat',
    description: 'A fine-tune of tiny-llama-base (base plus a random "chat" delta).',
    size: 402_112,
    model: { id: 'tiny-llama-chat', architecture: 'LlamaForCausalLM', modelType: 'llama', numLayers: 4, hiddenSize: 64, vocabSize: 512, parameterCount: 200_000, dtype: 'BF16', downloads: 0, likes: 0, baseModels: ['tiny-llama-base'] },
  },
  {
    name: 'tiny-llama-code',
    description: 'Another fine-tune of tiny-llama-base (a random "code" delta).',
    size: 402_112,
    model: { id: 'tiny-llama-code', architecture: 'LlamaForCausalLM', modelType: 'llama', numLayers: 4, hiddenSize: 64, vocabSize: 512, parameterCount: 200_000, dtype: 'BF16', downloads: 0, likes: 0, baseModels: ['tiny-llama-base'] },
  },
];

const BYTES_PER: Record<string, number> = { BF16: 2, F16: 2, F32: 4, bfloat16: 2, float16: 2, float32: 4 };
const SHARD_BYTES = 5_000_000_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(Object.assign(new Error('The merge was cancelled.'), { name: 'AbortError' }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function shardNames(total: number, count: number): { name: string; size: number }[] {
  if (count === 1) return [{ name: 'model.safetensors', size: total }];
  const pad = (n: number) => String(n).padStart(5, '0');
  return Array.from({ length: count }, (_, i) => ({
    name: `model-${pad(i + 1)}-of-${pad(count)}.safetensors`,
    size: i < count - 1 ? Math.round(total / count) : total - Math.round(total / count) * (count - 1),
  }));
}

function summaryOf(model: CatalogueModel, key: string): ModelSummary {
  const weightBytes = model.parameterCount * (BYTES_PER[model.dtype] ?? 2);
  const shards = shardNames(weightBytes, Math.max(1, Math.ceil(weightBytes / SHARD_BYTES)));
  return {
    key,
    architecture: model.architecture,
    modelType: model.modelType,
    numLayers: model.numLayers,
    hiddenSize: model.hiddenSize,
    vocabSize: model.vocabSize,
    parameterCount: model.parameterCount,
    dtype: model.dtype,
    weightBytes,
    files: [{ name: 'config.json', size: 571 }, ...shards, { name: 'tokenizer.json', size: 1_795_303 }, { name: 'tokenizer_config.json', size: 1_460 }],
    tiedEmbeddings: model.tied ?? false,
    hasTokenizer: true,
    ...(model.mergekitConfig ? { mergekitConfig: model.mergekitConfig } : {}),
    ...(model.baseModels ? { baseModels: model.baseModels } : {}),
  };
}

async function localSummary(name: string, files: readonly File[]): Promise<ModelSummary> {
  const configFile = files.find((f) => f.name === 'config.json');
  if (!configFile) throw new Error(`${name}: the folder has no config.json`);
  const config = JSON.parse(await configFile.text()) as Record<string, unknown>;
  const weights = files.filter((f) => f.name.endsWith('.safetensors'));
  if (weights.length === 0) throw new Error(`${name}: the folder has no .safetensors files`);
  const weightBytes = weights.reduce((a, f) => a + f.size, 0);
  const dtype = String(config.torch_dtype ?? 'bfloat16');
  const mergekit = files.find((f) => f.name === 'mergekit_config.yml');
  return {
    key: name,
    architecture: String((config.architectures as string[] | undefined)?.[0] ?? 'unknown'),
    modelType: String(config.model_type ?? 'unknown'),
    numLayers: Number(config.num_hidden_layers ?? config.n_layer ?? 0),
    hiddenSize: Number(config.hidden_size ?? config.n_embd ?? 0) || undefined,
    vocabSize: Number(config.vocab_size ?? 0) || undefined,
    parameterCount: Math.round(weightBytes / (BYTES_PER[dtype] ?? 2)),
    dtype: dtype === 'float32' ? 'F32' : dtype === 'float16' ? 'F16' : 'BF16',
    weightBytes,
    files: files.map((f) => ({ name: f.name, size: f.size })),
    tiedEmbeddings: Boolean(config.tie_word_embeddings),
    hasTokenizer: files.some((f) => f.name === 'tokenizer.json'),
    ...(mergekit ? { mergekitConfig: await mergekit.text() } : {}),
  };
}

interface StoredOutput {
  result: MergeResult;
  texts: Map<string, string>;
}

/** What the mock remembers between calls. */
interface MockState {
  readonly options: MockOptions;
  readonly slowdown: number;
  readonly latency: number;
  hubUrl: string;
  abort: AbortController | null;
  readonly summaries: Map<string, ModelSummary>;
  readonly outputs: Map<string, StoredOutput>;
  readonly cache: Map<string, CacheEntry>;
}

export function createMockEngine(options: MockOptions = {}): EngineApi {
  const state: MockState = {
    options,
    slowdown: options.slowdown ?? 1,
    latency: options.latencyMs ?? 250,
    hubUrl: 'https://huggingface.co',
    abort: null,
    summaries: new Map(),
    outputs: new Map(),
    cache: previousSessionCache(),
  };
  return {
    async configure(opts) {
      state.hubUrl = opts.hubUrl;
    },
    async forgetToken() {},
    checkToken: (accessToken) => checkToken(state, accessToken),
    async listDemoModels(): Promise<DemoModelInfo[]> {
      return DEMOS.map(({ name, description, size }) => ({ name, description, size }));
    },
    searchModels: (query, limit = 20) => searchModels(state, query, limit),
    inspectModel: (source) => inspectModel(state, source),
    async inspectAdapter(source) {
      await sleep(state.latency);
      const key = source.kind === 'hub' ? source.repo : source.name;
      return { key, rank: 16, alpha: 32, rslora: false, ranks: [16], modules: 64, savedModules: 0, targetModules: 'q_proj, k_proj, v_proj, o_proj', bytes: 27_262_976 };
    },
    async plan(request) {
      await sleep(state.latency);
      return planOf(state, request).summary;
    },
    merge: (request, onProgress) => simulateMerge(state, request, onProgress),
    async planExtraction() {
      await sleep(state.latency);
      return { ok: false, errors: ['The mock engine does not simulate LoRA extraction: run the app with the real worker.'], warnings: [], modules: [], savedTensors: [], downloadBytes: 0, outputBytes: 0 };
    },
    async extractLora() {
      throw new Error('The mock engine does not simulate LoRA extraction: run the app with the real worker.');
    },
    async moe() {
      throw new Error('The mock engine does not simulate mixture-of-experts builds: run the app with the real worker.');
    },
    async cancel() {
      state.abort?.abort();
    },
    async listOutputs() {
      return [...state.outputs.values()].map((o) => o.result).reverse();
    },
    async outputFile(outputName, file) {
      const output = state.outputs.get(outputName);
      if (!output) throw new Error(`no output named ${outputName}`);
      const text = output.texts.get(file) ?? `mock engine: placeholder for ${file}\n`;
      return new File([text], file, { type: file.endsWith('.md') ? 'text/markdown' : 'application/octet-stream' });
    },
    async deleteOutput(outputName) {
      state.outputs.delete(outputName);
    },
    // The mock's merges finish in the page: nothing outlives a reload.
    async hasUnfinishedMerge() {
      return false;
    },
    async discardUnfinishedMerge() {},
    async listCache() {
      return [...state.cache.values()];
    },
    async deleteCached(repo, revision) {
      for (const [key, entry] of state.cache) {
        if (entry.repo === repo && (revision === undefined || entry.revision === revision)) state.cache.delete(key);
      }
    },
    push: (request, onProgress) => simulatePush(state, request, onProgress),
    async evaluate() {
      await sleep(state.latency);
      // Placeholder outputs have no weights to run: say so rather than show made-up numbers.
      throw new Error('The simulated engine cannot evaluate models (its outputs are placeholders): open Alloy in a browser where its worker starts.');
    },
  };
}

/** A previous session's downloads, so the cache view has something to show. */
function previousSessionCache(): Map<string, CacheEntry> {
  const cache = new Map<string, CacheEntry>();
  const model = CATALOGUE[0];
  for (const file of summaryOf(model, model.id).files) {
    cache.set(`${model.id}@main/${file.name}`, { repo: model.id, revision: 'main', file: file.name, size: file.size, bytesDone: file.size, complete: true });
  }
  return cache;
}

const findCatalogued = (repo: string): CatalogueModel | undefined => CATALOGUE.find((m) => m.id.toLowerCase() === repo.toLowerCase());
const demoOf = (name: string) => DEMOS.find((d) => d.name === name);
const isCached = (state: MockState, key: string): boolean => [...state.cache.values()].some((e) => e.repo === key.split('@')[0]);

// ---- metadata --------------------------------------------------------------------------------

async function checkToken(state: MockState, accessToken: string): Promise<TokenCheck> {
  await sleep(state.latency);
  if (!accessToken.startsWith('hf_') || accessToken.length < 8) {
    throw Object.assign(new Error('the Hub rejected this token (401): create a token with write access at https://huggingface.co/settings/tokens'), {
      name: 'HubAuthError',
    });
  }
  return { name: 'you', fullname: 'Demo User', orgs: ['alloy-demo'], canWrite: !accessToken.includes('read') };
}

async function searchModels(state: MockState, query: string, limit: number): Promise<ModelSearchHit[]> {
  await sleep(state.latency / 2);
  const q = query.trim().toLowerCase();
  if (q === '') return [];
  return CATALOGUE.filter((m) => m.id.toLowerCase().includes(q))
    .sort((a, b) => b.downloads - a.downloads)
    .slice(0, limit)
    .map((m) => ({ id: m.id, downloads: m.downloads, likes: m.likes, pipelineTag: 'text-generation', lastModified: '2024-05-01T00:00:00Z' }));
}

async function inspectModel(state: MockState, source: ModelSourceSpec): Promise<ModelSummary> {
  await sleep(state.latency);
  let summary: ModelSummary;
  if (source.kind === 'hub') {
    const model = findCatalogued(source.repo);
    if (!model) {
      throw Object.assign(new Error(`${source.repo} was not found on ${state.hubUrl} (404). Check the spelling, or sign in for private and gated models.`), {
        name: 'NotFoundError',
      });
    }
    summary = summaryOf(model, source.revision ? `${source.repo}@${source.revision}` : source.repo);
  } else if (source.kind === 'local') {
    summary = await localSummary(source.name, source.files);
  } else {
    const demo = demoOf(source.name);
    if (!demo) throw new Error(`there is no demo model "${source.name}"`);
    summary = {
      ...summaryOf(demo.model, source.name),
      weightBytes: demo.size,
      files: [{ name: 'config.json', size: 612 }, { name: 'model.safetensors', size: demo.size - 612 }],
    };
  }
  state.summaries.set(summary.key, summary);
  return summary;
}

function summaryFor(state: MockState, ref: ModelReference, request: MergeRequest): ModelSummary {
  const key = formatModelReference(ref);
  const known = state.summaries.get(key);
  if (known) return known;
  const binding = request.models.find((m) => m.key === key);
  if (binding?.source.kind === 'hub') {
    const model = findCatalogued(binding.source.repo);
    if (model) return summaryOf(model, key);
  }
  const demo = demoOf(key);
  if (demo) return summaryOf(demo.model, key);
  throw new Error(`model ${key} has not been inspected (no binding or unknown repo)`);
}

// ---- plans -----------------------------------------------------------------------------------

type OutputSlices = ReturnType<typeof toOutputSlices>;
type PlanLayer = PlanSummary['layers'][number];

const emptyPlan = () => ({ tensorCount: 0, downloadBytes: 0, outputBytes: 0, outputFiles: [], gpuMemoryBytes: 0, layers: [] });

/** The plan of a request: the config's checks, then estimated sizes from the catalogue. */
function planOf(state: MockState, request: MergeRequest): { summary: PlanSummary; config?: MergeConfig } {
  let config: MergeConfig;
  let warnings: string[];
  try {
    const parsed = parseMergeConfig(request.yaml);
    config = parsed.config;
    warnings = parsed.warnings.map((w) => `${w.path ? `${w.path}: ` : ''}${w.message}`);
  } catch (error) {
    if (error instanceof ConfigError) return { summary: { ok: false, issues: error.issues, errors: [], warnings: [], ...emptyPlan() } };
    throw error;
  }
  let slices: OutputSlices;
  try {
    slices = toOutputSlices(config, (ref) => summaryFor(state, ref, request).numLayers);
  } catch (error) {
    return {
      summary: { ok: false, issues: error instanceof ConfigError ? error.issues : [], errors: [(error as Error).message], warnings, ...emptyPlan() },
    };
  }
  const all = modelsOf(state, config, slices, request);
  const errors = request.allowCrimes ? [] : compatibilityErrors(all);
  const vocabulary = vocabularyWarning(config, all);
  if (vocabulary) warnings.push(vocabulary);
  return { config, summary: { ok: errors.length === 0, issues: [], errors, warnings, ...estimates(state, config, slices, all, request) } };
}

/** The summaries of every model the slices and the base model use, in order of first use. */
function modelsOf(state: MockState, config: MergeConfig, slices: OutputSlices, request: MergeRequest): ModelSummary[] {
  const models = new Map<string, ModelSummary>();
  for (const slice of slices) for (const s of slice.sources) models.set(formatModelReference(s.model), summaryFor(state, s.model, request));
  if (config.base_model) models.set(formatModelReference(config.base_model), summaryFor(state, config.base_model, request));
  return [...models.values()];
}

function compatibilityErrors(all: readonly ModelSummary[]): string[] {
  const reference = all[0];
  if (!all.some((m) => m.architecture !== reference.architecture || m.hiddenSize !== reference.hiddenSize)) return [];
  return [
    `the models have different architectures or sizes (${all.map((m) => `${m.key}: ${m.architecture}, hidden ${m.hiddenSize}`).join('; ')}); their tensors cannot be merged`,
  ];
}

function vocabularyWarning(config: MergeConfig, all: readonly ModelSummary[]): string | null {
  const vocab = new Set(all.map((m) => m.vocabSize));
  if (vocab.size <= 1 || config.tokenizer || config.tokenizer_source) return null;
  return `the vocabularies differ (${all.map((m) => `${m.key}: ${m.vocabSize}`).join(', ')}); embeddings are cut to the smallest (${Math.min(...all.map((m) => m.vocabSize ?? 0))} rows). Set tokenizer: {source: union} to keep every token.`;
}

const sliceLength = (slice: OutputSlices[number]): number => (slice.sources[0] ? slice.sources[0].layer_range[1] - slice.sources[0].layer_range[0] : 0);

/** Sizes, files, memory and the layer map of a valid plan, scaled from the first model's size. */
function estimates(
  state: MockState,
  config: MergeConfig,
  slices: OutputSlices,
  all: readonly ModelSummary[],
  request: MergeRequest,
): Omit<PlanSummary, 'ok' | 'issues' | 'errors' | 'warnings'> {
  const reference = all[0];
  const downloadBytes = all.filter((m) => !isCached(state, m.key)).reduce((a, m) => a + m.weightBytes, 0);
  const totalLayers = slices.reduce((a, s) => a + sliceLength(s), 0);
  const perLayer = reference.weightBytes / Math.max(1, reference.numLayers + 2);
  const outDtype = config.out_dtype ?? config.dtype;
  const scale = outDtype ? (BYTES_PER[outDtype] ?? 2) / (BYTES_PER[reference.dtype] ?? 2) : 1;
  const outputBytes = Math.round(perLayer * (totalLayers + 2) * scale);
  const shardSize = request.outShardSize ?? SHARD_BYTES;
  const shards = shardNames(outputBytes, Math.max(1, Math.ceil(outputBytes / shardSize)));
  const inputs = Math.max(1, ...slices.map((s) => s.sources.length + (config.base_model ? 1 : 0)));
  const budget = request.memoryBudgetBytes ?? 512 * 2 ** 20;
  return {
    tensorCount: totalLayers * 9 + 3,
    downloadBytes,
    outputBytes,
    outputFiles: [
      { name: 'config.json', size: 640 },
      ...shards,
      ...(shards.length > 1 ? [{ name: 'model.safetensors.index.json', size: 23_950 }] : []),
      { name: 'tokenizer.json', size: 1_795_303 },
      { name: 'tokenizer_config.json', size: 1_460 },
      { name: 'mergekit_config.yml', size: request.yaml.length },
      { name: 'README.md', size: 1_800 },
    ],
    gpuMemoryBytes: Math.min(budget, perLayer / 4) * (inputs + 2),
    layers: layerMap(slices),
  };
}

function layerMap(slices: OutputSlices): PlanLayer[] {
  const layers: PlanLayer[] = [];
  let out = 0;
  for (const slice of slices) {
    for (let i = 0; i < sliceLength(slice); i++) {
      layers.push({ outputLayer: out++, sources: slice.sources.map((s) => ({ model: formatModelReference(s.model), layer: s.layer_range[0] + i })) });
    }
  }
  return layers;
}

// ---- merges ----------------------------------------------------------------------------------

const MERGE_STEPS = 40;

/** A merge that only advances its counters on timers, then stores an output with real texts. */
async function simulateMerge(state: MockState, request: MergeRequest, onProgress: (progress: RunProgress) => void): Promise<MergeResult> {
  const { summary, config } = planOf(state, request);
  if (!summary.ok || !config) throw new Error(summary.errors[0] ?? 'the config is not valid');
  state.abort = new AbortController();
  const signal = state.abort.signal;
  const start = Date.now();
  const referenced = referencedModels(summary, config);
  const downloads = downloadsOf(state, referenced);
  const report = progressReporter(state.options, request, summary, downloads, onProgress);
  try {
    report('preparing', 0, null);
    await sleep(300 * state.slowdown, signal);
    for (let step = 1; step <= MERGE_STEPS; step++) {
      advanceDownloads(downloads, step);
      if (state.options.quotaError && step === MERGE_STEPS / 2) {
        throw Object.assign(new Error('Failed to write model-00002-of-00002.safetensors: the storage quota of this site is exceeded.'), {
          name: 'QuotaExceededError',
        });
      }
      const tensorsDone = Math.floor((summary.tensorCount * step) / MERGE_STEPS);
      const layer = Math.floor((summary.layers.length * step) / MERGE_STEPS);
      report(step < MERGE_STEPS ? 'merging' : 'writing', tensorsDone, `model.layers.${Math.min(layer, Math.max(0, summary.layers.length - 1))}.mlp.down_proj.weight`);
      await sleep(120 * state.slowdown, signal);
    }
    cacheDownloads(state, downloads);
    report('done', summary.tensorCount, null);
    const texts = outputTexts(state, request, config, referenced);
    const result: MergeResult = {
      outputName: request.outputName,
      files: summary.outputFiles.map((f) => ({ name: f.name, size: texts.get(f.name)?.length ?? f.size })),
      warnings: summary.warnings,
      elapsedMs: Date.now() - start,
    };
    state.outputs.set(request.outputName, { result, texts });
    return result;
  } finally {
    state.abort = null;
  }
}

function referencedModels(summary: PlanSummary, config: MergeConfig): Set<string> {
  const referenced = new Set<string>();
  for (const l of summary.layers) for (const s of l.sources) referenced.add(s.model);
  if (config.base_model) referenced.add(formatModelReference(config.base_model));
  return referenced;
}

function downloadsOf(state: MockState, referenced: ReadonlySet<string>): DownloadProgress[] {
  const downloads: DownloadProgress[] = [];
  for (const key of referenced) {
    const cached = isCached(state, key);
    for (const f of state.summaries.get(key)?.files ?? []) {
      downloads.push({ model: key, file: f.name, bytesDone: cached ? f.size : 0, bytesTotal: f.size, state: cached ? 'cached' : 'downloading' });
    }
  }
  return downloads;
}

/** Moves the downloads on to `step` of MERGE_STEPS, some files faster than others. */
function advanceDownloads(downloads: DownloadProgress[], step: number): void {
  downloads.forEach((d, i) => {
    if (d.state === 'cached') return;
    const done = Math.min(d.bytesTotal, Math.round((d.bytesTotal * step * (1 + (i % 3) * 0.4)) / MERGE_STEPS));
    downloads[i] = { ...d, bytesDone: done, state: done >= d.bytesTotal ? 'done' : 'downloading' };
  });
}

function cacheDownloads(state: MockState, downloads: readonly DownloadProgress[]): void {
  for (const d of downloads) {
    const [repo, revision = 'main'] = d.model.split('@');
    if (demoOf(d.model)) continue;
    state.cache.set(`${repo}@${revision}/${d.file}`, { repo, revision, file: d.file, size: d.bytesTotal, bytesDone: d.bytesTotal, complete: true });
  }
}

/** Reports a merge's progress: the downloads as they are now, and a simulated read rate. */
function progressReporter(
  options: MockOptions,
  request: MergeRequest,
  summary: PlanSummary,
  downloads: readonly DownloadProgress[],
  onProgress: (progress: RunProgress) => void,
): (phase: RunProgress['phase'], tensorsDone: number, current: string | null) => void {
  const webgpu = !options.cpuFallback && request.backend !== 'cpu';
  const backendNotice = options.cpuFallback
    ? 'WebGPU is not available in this browser (no adapter was found), so the merge runs on the CPU backend. It gives the same result, several times slower.'
    : undefined;
  const inputTotal = downloads.reduce((a, d) => a + d.bytesTotal, 0);
  // Plausible numbers for a screenshot, not a measurement: a steady simulated read rate.
  const simulatedRate = webgpu ? 182_000_000 : 46_000_000;
  return (phase, tensorsDone, current) => {
    const inputDone = phase === 'preparing' ? 0 : phase === 'done' ? inputTotal : Math.min(inputTotal, downloads.reduce((a, d) => a + d.bytesDone, 0));
    const rate = phase === 'preparing' || phase === 'done' ? 0 : simulatedRate * (0.95 + 0.1 * Math.random());
    onProgress({
      phase,
      downloads: downloads.map((d) => ({ ...d })),
      tensorsDone,
      tensorsTotal: summary.tensorCount,
      currentTensor: current,
      inputBytesDone: inputDone,
      inputBytesTotal: inputTotal,
      bytesPerSecond: rate,
      etaMs: rate > 0 ? ((inputTotal - inputDone) / rate) * 1000 : null,
      // Like the engine: the backend is chosen once the downloads are done.
      ...(phase === 'merging' || phase === 'writing' || phase === 'done'
        ? { backend: webgpu ? ('webgpu' as const) : ('cpu' as const), ...(backendNotice ? { backendNotice } : {}), ...(webgpu ? {} : { threads: request.threads ?? 8 }) }
        : {}),
      // A plausible split once merging has started: mostly reading (a download-bound merge).
      ...(inputDone > 0 ? { stageTimes: { readMs: (inputDone / simulatedRate) * 620, computeMs: (inputDone / simulatedRate) * 300, writeMs: (inputDone / simulatedRate) * 80 } } : {}),
    });
  };
}

/** The output's real texts: model card, the config as given, and a small config.json. */
function outputTexts(state: MockState, request: MergeRequest, config: MergeConfig, referenced: ReadonlySet<string>): Map<string, string> {
  const method = findMethod(config.merge_method)!;
  const models = [...referenced].map((key) => ({
    key,
    ...(request.models.find((m) => m.key === key)?.source.kind === 'hub' ? { hubRepo: key.split('@')[0] } : {}),
  }));
  const readme = renderModelCard({
    title: request.outputName,
    method,
    ...(config.base_model ? { base: formatModelReference(config.base_model) } : {}),
    models,
    configYaml: request.yaml,
    ...(request.randomSeed !== undefined ? { randomSeed: request.randomSeed } : {}),
  });
  const architecture = state.summaries.get([...referenced][0])?.architecture;
  return new Map<string, string>([
    ['README.md', readme],
    ['mergekit_config.yml', request.yaml],
    ['config.json', JSON.stringify({ architectures: [architecture], torch_dtype: config.out_dtype ?? config.dtype ?? 'bfloat16' }, null, 2)],
  ]);
}

// ---- pushes ----------------------------------------------------------------------------------

async function simulatePush(state: MockState, request: PushRequest, onProgress: (progress: PushProgress) => void): Promise<{ url: string }> {
  if (!request.accessToken.startsWith('hf_')) {
    throw Object.assign(new Error('401 Unauthorized: the access token was refused by the Hub.'), { name: 'HubAuthError' });
  }
  const output = state.outputs.get(request.outputName);
  if (!output) throw new Error(`no output named ${request.outputName}`);
  const files = output.result.files.map((f) => ({ path: f.name, progress: 0 }));
  onProgress({ phase: 'creating', files });
  await sleep(400 * state.slowdown);
  for (let step = 1; step <= 20; step++) {
    files.forEach((f, i) => (f.progress = Math.min(1, (step / 20) * (1 + (i % 4) * 0.3))));
    onProgress({ phase: step < 5 ? 'hashing' : 'uploading', files: files.map((f) => ({ ...f })) });
    await sleep(100 * state.slowdown);
  }
  onProgress({ phase: 'committing', files: files.map((f) => ({ ...f, progress: 1 })) });
  await sleep(300 * state.slowdown);
  onProgress({ phase: 'done', files: files.map((f) => ({ ...f, progress: 1 })) });
  const repo = request.repo.includes('/') ? request.repo : `you/${request.repo}`;
  return { url: `${state.hubUrl}/${repo}` };
}

/** The mock's options from the page's query: `?mock=slow|fast,cpu,quota`. */
export function mockOptionsFrom(search: string): MockOptions {
  const flags = new Set((new URLSearchParams(search).get('mock') ?? '').split(',').filter(Boolean));
  return {
    ...(flags.has('slow') ? { slowdown: 3 } : flags.has('fast') ? { slowdown: 0.05 } : {}),
    ...(flags.has('cpu') ? { cpuFallback: true } : {}),
    ...(flags.has('quota') ? { quotaError: true } : {}),
    ...(flags.has('fast') ? { latencyMs: 20 } : {}),
  };
}
