import type { HubClient } from '../hub';
import { extractLora, ExtractCancelledError, planExtraction, type ExtractOptions, type ExtractPlan } from '../lora/extract';
import { LoraAdapterError } from '../lora';
import { dtypeSize } from '../storage';
import { outputNameProblem, type OpfsOutputStore, type OpfsShardCache } from '../storage/browser';
import type { ByteSource, ModelTensors } from '../storage/types';
import type { DownloadProgress, ExtractPlanSummary, ExtractProgress, ExtractRequest, MergeResult, VerifiedFile } from './api';
import { cacheHubFiles, type HubFile } from './cache-hub-files';
import { hubFileSpec, modelErrorMessage, sourceKey, type ModelResolver, type ResolvedModel } from './model-sources';
import { sourceKeyOf } from './run-inputs';

/**
 * "Extract a LoRA" in the worker (docs/lora.md §2): the same extraction as `alloy extract-lora`
 * (src/lora's planExtraction and extractLora), on models from the Hub (downloaded through the
 * verified cache: the randomized SVD reads each ΔW several times), local folders or the demo
 * models, written as a PEFT adapter folder into the outputs, where Result downloads and pushes it.
 */
export interface ExtractDeps {
  readonly resolver: ModelResolver;
  readonly client: () => HubClient;
  readonly cache: () => Promise<OpfsShardCache>;
  readonly outputs: () => Promise<OpfsOutputStore>;
}

const DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024;

interface Prepared {
  readonly ft: ResolvedModel;
  readonly base: ResolvedModel;
  readonly plan: ExtractPlan;
}

/** The options of a request with mergekit-extract-lora's defaults filled in. */
export function extractOptions(request: ExtractRequest): ExtractOptions {
  const o = request.options;
  return {
    maxRank: o.maxRank ?? 128,
    distributeScale: o.distributeScale ?? true,
    embedLora: o.embedLora ?? false,
    modulesToSave: o.modulesToSave ?? [],
    excludeRegexes: o.excludeRegexes ?? [],
    includeRegexes: o.includeRegexes ?? [],
    svEpsilon: o.svEpsilon ?? 0,
    skipUndecomposable: o.skipUndecomposable ?? false,
  };
}

function optionProblems(request: ExtractRequest): string[] {
  const o = request.options;
  const problems: string[] = [];
  if (o.maxRank !== undefined && (!Number.isInteger(o.maxRank) || o.maxRank < 1)) problems.push(`the rank must be a whole number ≥ 1, not ${o.maxRank}`);
  if (o.svEpsilon !== undefined && (!Number.isFinite(o.svEpsilon) || o.svEpsilon < 0)) problems.push(`the singular value threshold must be a number ≥ 0, not ${o.svEpsilon}`);
  if (o.randomSeed !== undefined && (!Number.isInteger(o.randomSeed) || o.randomSeed < 0)) problems.push(`the random seed must be a whole number ≥ 0, not ${o.randomSeed}`);
  const name = outputNameProblem(request.outputName);
  if (name) problems.push(name);
  return problems;
}

async function prepare(deps: ExtractDeps, request: ExtractRequest, errors: string[], signal?: AbortSignal): Promise<Prepared | null> {
  errors.push(...optionProblems(request));
  const open = async (source: ExtractRequest['fineTuned'], what: string): Promise<{ model: ResolvedModel; tensors: ModelTensors } | null> => {
    const key = sourceKey(source);
    try {
      const model = await deps.resolver.resolve(key, source, signal);
      return { model, tensors: (await model.metadata()).tensors };
    } catch (error) {
      errors.push(`${what}: ${modelErrorMessage(key, error)}`);
      return null;
    }
  };
  const [ft, base] = await Promise.all([open(request.fineTuned, 'Fine-tuned model'), open(request.base, 'Base model')]);
  if (!ft || !base || errors.length > 0) return null;
  try {
    return { ft: ft.model, base: base.model, plan: planExtraction(base.tensors, ft.tensors, extractOptions(request)) };
  } catch (error) {
    if (error instanceof LoraAdapterError) {
      errors.push(`${sourceKey(request.fineTuned)} − ${sourceKey(request.base)}: ${error.message}`);
      return null;
    }
    throw error;
  }
}

/** The Hub files an extraction reads, one spec per (model, file). */
function hubFiles(prepared: Prepared): HubFile[] {
  const out = new Map<string, HubFile>();
  const add = (model: ResolvedModel, file: string): void => {
    const hub = model.hub;
    const info = hub?.file(file);
    if (!hub || !info) return;
    const id = `${hub.snapshot.repo}@${hub.snapshot.commit}/${file}`;
    if (out.has(id)) return;
    out.set(id, { model, spec: hubFileSpec(model.key, hub, info) });
  };
  for (const action of prepared.plan.actions) {
    add(prepared.ft, action.ft.file);
    if (action.kind === 'lora') add(prepared.base, action.base.file);
  }
  return [...out.values()];
}

export async function planExtractionRequest(deps: ExtractDeps, request: ExtractRequest): Promise<ExtractPlanSummary> {
  const errors: string[] = [];
  const prepared = await prepare(deps, request, errors);
  if (!prepared) return { ok: false, errors, warnings: [], modules: [], savedTensors: [], downloadBytes: 0, outputBytes: 0 };
  const { plan } = prepared;
  if (await (await deps.outputs()).exists(request.outputName)) errors.push(`an output named "${request.outputName}" already exists: delete it first, or choose another name`);
  const cache = await deps.cache();
  let downloadBytes = 0;
  for (const { spec } of hubFiles(prepared)) downloadBytes += spec.size - (await cache.bytesCached(spec));
  let outputBytes = 0;
  const modules: ExtractPlanSummary['modules'][number][] = [];
  const savedTensors: string[] = [];
  for (const action of plan.actions) {
    if (action.kind === 'save') {
      savedTensors.push(action.ft.name);
      outputBytes += action.ft.byteLength;
      continue;
    }
    const [m, n] = action.ft.shape;
    modules.push({ module: action.module, shape: [m, n], maxRank: action.maxRank, embedding: action.embedding });
    outputBytes += action.maxRank * (m + n) * dtypeSize(action.ft.dtype);
  }
  if (modules.length === 0 && savedTensors.length === 0) errors.push('nothing to extract: no module of the fine-tune is planned (check the include/exclude patterns)');
  return { ok: errors.length === 0, errors, warnings: plan.warnings, modules, savedTensors, downloadBytes, outputBytes };
}

/** Runs an extraction into the outputs; throws a message naming what failed. */
export async function runExtraction(
  deps: ExtractDeps,
  request: ExtractRequest,
  onProgress: (progress: ExtractProgress) => void,
  signal: AbortSignal,
): Promise<MergeResult> {
  const started = Date.now();
  const downloads = new Map<string, DownloadProgress>();
  const modules: ExtractProgress['modules'][number][] = [];
  let phase: ExtractProgress['phase'] = 'preparing';
  let total = 0;
  let lastEmit = 0;
  const emit = (force = false): void => {
    const now = Date.now();
    if (!force && now - lastEmit < 100) return;
    lastEmit = now;
    try {
      void Promise.resolve(onProgress({ phase, downloads: [...downloads.values()], modulesDone: modules.length, modulesTotal: total, modules: [...modules] })).catch(() => undefined);
    } catch {
      // a page that went away must not fail the extraction
    }
  };
  emit(true);
  const errors: string[] = [];
  const prepared = await prepare(deps, request, errors, signal);
  if (!prepared) throw new Error(errors.join('\n'));
  total = prepared.plan.actions.filter((a) => a.kind === 'lora').length;
  const outputs = await deps.outputs();
  await outputs.removeUnfinished();
  const output = await outputs.begin(request.outputName);
  let verified: VerifiedFile[] = [];
  try {
    // 1. Hub files through the verified cache (the SVD reads each ΔW more than once).
    const cache = await deps.cache();
    const files = hubFiles(prepared);
    phase = 'downloading';
    for (const { model, spec } of files) {
      downloads.set(sourceKeyOf(model.key, spec.path), { model: model.key, file: spec.path, bytesDone: await cache.bytesCached(spec), bytesTotal: spec.size, state: 'downloading' });
    }
    emit(true);
    verified = await cacheHubFiles(files, cache, deps.client, signal, downloads, emit);
    const opener = (model: ResolvedModel): ((file: string) => Promise<ByteSource>) => {
      const opened = new Map<string, Promise<ByteSource>>();
      return (file) => {
        let source = opened.get(file);
        if (!source) {
          const spec = files.find((f) => f.model === model && f.spec.path === file)?.spec;
          source = spec ? cache.openFile(spec) : model.folder.open(file).then((s) => s ?? Promise.reject(new Error(`Model ${model.key}: file ${file} is missing`)));
          opened.set(file, source);
        }
        return source;
      };
    };
    // 2. The extraction itself.
    phase = 'extracting';
    emit(true);
    const options = extractOptions(request);
    const seed = request.options.randomSeed ?? 0;
    await extractLora(prepared.plan, { base: opener(prepared.base), ft: opener(prepared.ft) }, output, {
      ...options,
      seed,
      oversample: 10,
      powerIterations: 2,
      memoryBytes: request.memoryBytes ?? DEFAULT_MEMORY_BYTES,
      baseModelName: prepared.base.key,
      fineTuneName: prepared.ft.key,
      invocation: extractInvocation(request, prepared, seed),
      signal,
      onModule: (report) => {
        modules.push({ module: report.module, shape: report.shape, rank: report.rank, relativeError: report.relativeError });
        emit(modules.length === total);
      },
    });
  } catch (error) {
    await output.abort().catch(() => undefined);
    if (signal.aborted || error instanceof ExtractCancelledError) throw new Error('The extraction was cancelled; nothing was written.', { cause: error });
    throw error instanceof Error ? new Error(error.message, { cause: error }) : new Error(String(error));
  }
  const worst = modules.reduce((w, m) => Math.max(w, m.relativeError), 0);
  const warnings = [...prepared.plan.warnings, `${modules.length} LoRA modules extracted; worst relative error ‖ΔW − B·A‖/‖ΔW‖ = ${worst.toExponential(3)}.`];
  const manifest = { name: request.outputName, files: output.files, createdAt: new Date().toISOString(), warnings, elapsedMs: Date.now() - started, verified };
  await outputs.writeManifest(manifest);
  phase = 'done';
  emit(true);
  return { outputName: manifest.name, files: manifest.files, warnings, elapsedMs: manifest.elapsedMs, verified };
}

/** The `alloy extract-lora` command line that writes the same adapter from local copies (README.md). */
function extractInvocation(request: ExtractRequest, prepared: Prepared, seed: number): string {
  const o = extractOptions(request);
  const args = ['alloy extract-lora', `--model ${prepared.ft.key}`, `--base-model ${prepared.base.key}`, `--out-path ${request.outputName}`, `--max-rank ${o.maxRank}`];
  if (!o.distributeScale) args.push('--no-distribute-scale');
  if (o.embedLora) args.push('--embed-lora');
  if (o.skipUndecomposable) args.push('--skip-undecomposable');
  if (o.svEpsilon !== 0) args.push(`--sv-epsilon ${o.svEpsilon}`);
  for (const m of o.modulesToSave) args.push(`--save-module ${m}`);
  for (const r of o.includeRegexes) args.push(`--include-regex '${r}'`);
  for (const r of o.excludeRegexes) args.push(`--exclude-regex '${r}'`);
  if (seed !== 0) args.push(`--random-seed ${seed}`);
  return args.join(' ');
}
