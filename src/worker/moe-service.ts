import { ConfigError, formatModelReference, parseMoeConfig, type ConfigIssue, type ModelReference, type MoeConfig } from '../config';
import type { HubClient } from '../hub';
import { MoeCancelledError, MoeConfigError, runMoeMerge, type MoeProgress } from '../moe';
import { ShardCacheError, DirectoryOutputFolder, outputNameProblem, type OpfsOutputStore, type OpfsShardCache, type ShardSpec } from '../storage/browser';
import type { ModelFolder, OutputFolder } from '../storage/types';
import type { DownloadProgress, MergeRequest, MergeResult, RunProgress } from './api';
import { cacheFirstFolder } from './evaluate-folders';
import { cacheHubFiles } from './cache-hub-files';
import { hubFileSpec, modelErrorMessage, type ModelResolver, type ResolvedModel } from './model-sources';
import { sourceKeyOf } from './run-inputs';

/**
 * "Build a mixture of experts" in the worker (docs/moe.md §1): the same build as `alloy moe`
 * (src/moe's runMoeMerge) on models from the Hub (downloaded whole into the verified cache first,
 * as a merge in cache mode does), local folders or the demo models, into the outputs (or the
 * picked folder), where Result downloads and pushes it like a merge's output.
 */
export interface MoeDeps {
  readonly resolver: ModelResolver;
  readonly client: () => HubClient;
  readonly cache: () => Promise<OpfsShardCache>;
  readonly outputs: () => Promise<OpfsOutputStore>;
}

const PROGRESS_INTERVAL_MS = 100;

/** Every model reference of the config with the YAML path that first names it. */
function moeReferences(config: MoeConfig): { ref: ModelReference; path: string }[] {
  const out = new Map<string, { ref: ModelReference; path: string }>();
  const add = (ref: ModelReference, path: string): void => {
    const key = formatModelReference(ref);
    if (!out.has(key)) out.set(key, { ref, path });
  };
  add(config.base_model, 'base_model');
  config.experts.forEach((e, i) => add(e.source_model, `experts[${i}].source_model`));
  (config.shared_experts ?? []).forEach((e, i) => add(e.source_model, `shared_experts[${i}].source_model`));
  return [...out.values()];
}

function issueLine(issue: ConfigIssue): string {
  return `${issue.line !== undefined ? `line ${issue.line}: ` : ''}${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

/**
 * The weight shards of a Hub model (those its index or model.safetensors names, not stray copies
 * such as a repo's consolidated.safetensors), each pinned to its commit with the hash its download
 * is checked against.
 */
async function hubWeightFiles(model: ResolvedModel): Promise<ShardSpec[]> {
  const hub = model.hub;
  if (!hub) return [];
  const shards = (await model.metadata()).tensors.files;
  return shards.map((path) => {
      const info = hub.file(path);
      if (!info) throw new Error(`Model ${model.key}: ${path} is not in the Hub listing of ${hub.snapshot.repo}`);
      return hubFileSpec(model.key, hub, info);
    });
}

/** Builds the mixture of experts of `request.yaml`; throws a message naming what failed (nothing is kept then). */
export async function runMoeBuild(deps: MoeDeps, request: MergeRequest, onProgress: (progress: RunProgress) => void, signal: AbortSignal): Promise<MergeResult> {
  try {
    return await build(deps, request, onProgress, signal);
  } catch (error) {
    if (signal.aborted || error instanceof MoeCancelledError || (error instanceof ShardCacheError && error.kind === 'aborted')) {
      throw new Error('The build was cancelled; nothing was written. Downloaded parts are kept in the cache.', { cause: error });
    }
    if (error instanceof MoeConfigError) throw new Error(`Cannot build this mixture of experts: ${error.message}`, { cause: error });
    throw error instanceof Error ? new Error(error.message, { cause: error }) : new Error(String(error));
  }
}

async function build(deps: MoeDeps, request: MergeRequest, onProgress: (progress: RunProgress) => void, signal: AbortSignal): Promise<MergeResult> {
  const started = Date.now();
  const downloads = new Map<string, DownloadProgress>();
  let phase: RunProgress['phase'] = 'preparing';
  let engine: { done: number; total: number; tensor: string | null; bytesWritten: number } = { done: 0, total: 0, tensor: null, bytesWritten: 0 };
  let lastEmit = 0;
  const emit = (force = false): void => {
    const now = Date.now();
    if (!force && now - lastEmit < PROGRESS_INTERVAL_MS) return;
    lastEmit = now;
    const elapsed = (now - started) / 1000;
    const progress: RunProgress = {
      phase,
      downloads: [...downloads.values()],
      tensorsDone: engine.done,
      tensorsTotal: engine.total,
      currentTensor: engine.tensor,
      inputBytesDone: 0,
      inputBytesTotal: 0,
      bytesWritten: engine.bytesWritten,
      bytesPerSecond: elapsed > 0 ? engine.bytesWritten / elapsed : 0,
      etaMs: null,
      backend: 'cpu',
      backendReason: 'a mixture of experts copies weights and computes its routers on the CPU',
    };
    try {
      // Through comlink this returns a promise; a page that went away must not fail the build.
      void Promise.resolve(onProgress(progress)).catch(() => undefined);
    } catch {
      // ignore
    }
  };
  emit(true);

  let config: MoeConfig;
  let configWarnings: ConfigIssue[];
  try {
    ({ config, warnings: configWarnings } = parseMoeConfig(request.yaml));
  } catch (error) {
    if (error instanceof ConfigError) throw new Error(`Invalid mergekit-moe config:\n${error.issues.filter((i) => i.severity === 'error').map(issueLine).join('\n')}`, { cause: error });
    throw error;
  }
  const nameProblem = outputNameProblem(request.outputName);
  if (nameProblem) throw new Error(nameProblem);

  // 1. Every model the config names, bound and opened (config.json, listing) before any weight is read.
  const errors: string[] = [];
  const models = new Map<string, ResolvedModel>();
  await Promise.all(
    moeReferences(config).map(async ({ ref, path }) => {
      const binding = await deps.resolver.bindReference(ref, request.models);
      if (typeof binding === 'string') {
        errors.push(`${path}: ${binding}`);
        return;
      }
      try {
        models.set(binding.key, await deps.resolver.resolve(binding.key, binding.source, signal));
      } catch (error) {
        errors.push(`${path}: ${modelErrorMessage(binding.key, error)}`);
      }
    }),
  );
  signal.throwIfAborted();
  if (errors.length > 0) throw new Error(errors.join('\n'));

  const outputs = await deps.outputs();
  await outputs.removeUnfinished();
  const target: { folder: OutputFolder & { readonly files: { name: string; size: number }[] }; savedTo?: string } = request.outputDirectory
    ? await DirectoryOutputFolder.begin(request.outputDirectory, request.outputName).then((folder) => ({ folder, savedTo: folder.location }))
    : { folder: await outputs.begin(request.outputName) };
  try {
    // 2. Hub weights through the verified cache: experts' MLPs and the base's other tensors are read once each, in any order.
    const cache = await deps.cache();
    const files = (await Promise.all([...models.values()].map(async (model) => (await hubWeightFiles(model)).map((spec) => ({ model, spec }))))).flat();
    phase = 'downloading';
    for (const { model, spec } of files) {
      const done = await cache.bytesCached(spec);
      downloads.set(sourceKeyOf(model.key, spec.path), { model: model.key, file: spec.path, bytesDone: done, bytesTotal: spec.size, state: done === spec.size ? 'cached' : 'downloading' });
    }
    emit(true);
    const verified = await cacheHubFiles(files, cache, deps.client, signal, downloads, emit);

    // 3. The build itself: runMoeMerge plans, computes the routers, writes and commits.
    phase = 'merging';
    emit(true);
    let moePhase: MoeProgress['phase'] | null = null;
    const folders = new Map<string, ModelFolder>([...models].map(([key, model]) => [key, model.hub ? cacheFirstFolder(model, cache) : model.folder]));
    const report = await runMoeMerge(
      config,
      { folder: (ref) => folders.get(formatModelReference(ref))! },
      target.folder,
      {
        seed: request.randomSeed ?? 0,
        ...(request.outShardSize !== undefined ? { outShardSize: request.outShardSize } : {}),
        configText: request.yaml,
        outputName: request.outputName,
        signal,
      },
      (p: MoeProgress) => {
        // The first report of each stage is always shown: a tiny build may finish within one interval.
        const first = p.phase !== moePhase;
        moePhase = p.phase;
        if (p.phase === 'gates') engine = { ...engine, tensor: `routers: ${p.done}/${p.total} ${config.gate_mode.startsWith('hidden') ? 'prompt batches' : 'experts'}` };
        else if (p.phase === 'weights') engine = { done: p.done, total: p.total, tensor: p.tensor, bytesWritten: p.bytesWritten };
        else engine = { ...engine, done: p.done, total: p.total, tensor: null };
        emit(first || p.phase === 'done');
      },
    );
    const warnings = [...configWarnings.map(issueLine), ...report.warnings];
    const manifest = { name: request.outputName, files: target.folder.files, createdAt: new Date().toISOString(), warnings, elapsedMs: Date.now() - started, verified };
    if (!target.savedTo) await outputs.writeManifest(manifest);
    phase = 'done';
    emit(true);
    return {
      outputName: manifest.name,
      files: manifest.files,
      warnings,
      elapsedMs: manifest.elapsedMs,
      verified,
      ...(target.savedTo !== undefined ? { savedTo: target.savedTo } : {}),
    };
  } catch (error) {
    await target.folder.abort().catch(() => undefined);
    throw error;
  }
}
