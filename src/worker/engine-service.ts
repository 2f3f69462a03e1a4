import { ConfigError, parseMergeConfig, type ConfigIssue } from '../config';
import type { MergeConfig } from '../config/types';
import { DEFAULT_BUDGET_BYTES, describeNonFiniteTensor, MergeCancelledError, NonFiniteError, runMerge, type MergeCheckpoint, type MergeReport, type SourceOpener } from '../engine';
import { HubClient, HubError, hubOrigin, hubUrlProblem, isHubRepoId } from '../hub';
import { buildPlan, needsTokenizerFiles, PlanError, type MergePlan, type PlanOptions } from '../plan';
import { MemoryByteSource } from '../storage';
import {
  DirectoryOutputFolder,
  directoryOutputProblem,
  formatBytes,
  HubModelFolder,
  OpfsOutputFolder,
  OpfsOutputStore,
  StreamingRangeSource,
  OpfsShardCache,
  outputNameProblem,
  ShardCacheError,
  type OpfsFileWriter,
  type ShardCacheOptions,
  type ShardSpec,
} from '../storage/browser';
import type { OutputFolder } from '../storage/types';
import type { ComputeBackend } from '../backend';
import { poolCacheBytes } from '../backend/pool/worker-pool-backend';
import type { AdapterSummary, ExtractPlanSummary, ExtractProgress, ExtractRequest } from './api';
import { planExtractionRequest, runExtraction, type ExtractDeps } from './extract-service';
import { runMoeBuild } from './moe-service';
import type {
  CacheEntry,
  DemoModelInfo,
  DownloadProgress,
  EngineApi,
  EngineOptions,
  EvaluateProgress,
  EvaluateRequest,
  EvaluateResult,
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
  VerifiedFile,
} from './api';
import { selectBackend, startBackend, WebGpuUnavailableError, type GpuModuleLoader } from './backend-select';
import { chooseInputMode, estimateDisk, type InputMode, type StorageEstimate } from './input-mode';
import { verifyBeforeCommit } from './verify-before-commit';
import { discardMergeOutput, openMergeOutput } from './merge-resume';
import { attachAdapters, inputReads, summarizeAdapter } from './adapter-sources';
import { planAdapters } from './plan-adapters';
import { hubFileSpec, ModelResolver, modelErrorMessage, sourceKey, summarizeModel, type ResolvedModel } from './model-sources';
import { recheckPlanningReads, RunInputs, sourceKeyOf } from './run-inputs';
import { RunProgressReporter, type RunBackend } from './run-progress';
import { emptySummary, layerSources, outputFiles, workingMemoryBytes } from './plan-summary';
import { evaluateModels } from './evaluate-models';

/**
 * The engine behind the worker's API (engine-worker.ts exposes it with comlink). Everything that
 * touches the platform comes in through `EngineServiceDeps`, so the same code runs in the worker
 * and in Node tests (against a fake hub and an in-memory OPFS).
 */
export interface EngineServiceDeps {
  /** `navigator.storage.getDirectory()`. */
  readonly storageRoot: () => Promise<FileSystemDirectoryHandle>;
  /** Absolute URL of the folder holding the demo models' index.json. */
  readonly demoBaseUrl: string;
  readonly fetch?: typeof fetch;
  /** `navigator.gpu` (undefined where WebGPU is missing). */
  readonly gpu?: () => GPU | undefined;
  readonly loadGpu?: GpuModuleLoader;
  /** `navigator.storage.estimate()`, for messages about space. */
  readonly estimateStorage?: () => Promise<{ usage?: number; quota?: number }>;
  /** Defaults of `configure`. */
  readonly defaults?: Partial<EngineOptions>;
  /**
   * The CPU backend on several threads (Web Workers), whose cross-pass cache may hold `cacheBytes`;
   * without it the CPU backend runs in this thread.
   */
  readonly cpuPool?: (threads: number, cacheBytes: number) => Promise<ComputeBackend>;
  /** Threads a merge uses when its request does not say (the browser: navigator.hardwareConcurrency). */
  readonly defaultThreads?: () => number;
  /** Where output files are written (the browser: a writer thread); default this thread. */
  readonly opfsWriter?: () => OpfsFileWriter;
}

const PROGRESS_INTERVAL_MS = 100;

export class EngineService implements EngineApi {
  private options: EngineOptions = { hubUrl: 'https://huggingface.co' };
  private client: HubClient;
  private readonly resolver: ModelResolver;
  private cachePromise: Promise<OpfsShardCache> | null = null;
  private outputsPromise: Promise<OpfsOutputStore> | null = null;
  private running: { kind: 'merge' | 'push' | 'evaluate' | 'extraction' | 'moe'; controller: AbortController } | null = null;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly deps: EngineServiceDeps) {
    this.fetchImpl = deps.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
    this.options = { ...this.options, ...deps.defaults };
    this.client = this.newClient();
    this.resolver = new ModelResolver(() => this.client, () => this.options.demoBaseUrl ?? deps.demoBaseUrl, this.fetchImpl);
  }

  async configure(options: EngineOptions): Promise<void> {
    const problem = hubUrlProblem(options.hubUrl);
    if (problem) throw new Error(problem);
    const { accessToken, tokenOrigin, ...rest } = options;
    // The token is replaced, never merged: a configure without one (sign-out, another Hub) must
    // leave none behind. A token entered for another origin is not sent to this one.
    const token = accessToken && (tokenOrigin === undefined || tokenOrigin === hubOrigin(options.hubUrl)) ? accessToken : undefined;
    this.options = { ...this.options, ...rest, accessToken: token, download: { ...this.options.download, ...options.download } };
    this.client = this.newClient();
    this.resolver.clear();
    this.cachePromise = null;
  }

  async forgetToken(): Promise<void> {
    this.options = { ...this.options, accessToken: undefined };
    this.client = this.newClient();
    this.resolver.clear();
  }

  async inspectModel(source: ModelSourceSpec): Promise<ModelSummary> {
    const key = sourceKey(source);
    try {
      return await summarizeModel(await this.resolver.resolve(key, source));
    } catch (error) {
      throw new Error(modelErrorMessage(key, error), { cause: error });
    }
  }

  async inspectAdapter(source: ModelSourceSpec): Promise<AdapterSummary> {
    const key = sourceKey(source);
    try {
      return await summarizeAdapter(await this.resolver.resolve(key, source), key);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(message.includes(key) ? message : `LoRA adapter ${key}: ${message}`, { cause: error });
    }
  }

  async listDemoModels(): Promise<DemoModelInfo[]> {
    const index = await this.resolver.demos();
    return index.models.map((m) => ({
      name: m.name,
      description: m.description,
      size: m.files.reduce((s, f) => s + f.size, 0),
    }));
  }

  async searchModels(query: string, limit = 20): Promise<ModelSearchHit[]> {
    if (query.trim() === '') return [];
    const hits = await this.client.searchModels(query, { limit });
    return hits.map((h) => ({
      id: h.id,
      downloads: h.downloads,
      likes: h.likes,
      ...(h.task ? { pipelineTag: h.task } : {}),
      ...(h.updatedAt ? { lastModified: h.updatedAt } : {}),
      gated: h.gated !== false,
      private: h.private,
    }));
  }

  async checkToken(accessToken: string): Promise<TokenCheck> {
    const identity = await this.client.checkToken(accessToken.trim());
    return {
      name: identity.name,
      ...(identity.fullname ? { fullname: identity.fullname } : {}),
      orgs: identity.orgs,
      canWrite: identity.canWrite,
      ...(identity.tokenRole ? { role: identity.tokenRole } : {}),
    };
  }

  async plan(request: MergeRequest): Promise<PlanSummary> {
    const parsed = parseConfig(request.yaml);
    if (!parsed.config) return emptySummary({ issues: parsed.issues });
    const prepared = await this.prepare(request, parsed.config);
    const issues = [...parsed.issues, ...prepared.issues];
    if (!prepared.plan) return emptySummary({ issues, errors: prepared.errors, warnings: parsed.warningTexts });
    const plan = prepared.plan;
    const downloads = await this.downloadSpecs(plan, prepared.models);
    const verification = {
      verified: verifiedSmallFiles(prepared.models),
      onDownload: downloads.files.map(({ model, spec }) => ({ model, file: spec.path, hash: spec.sha256 ? ('sha256' as const) : ('git-blob' as const) })),
    };
    const cache = await this.cache();
    const downloadBytes = await missingBytes(cache, downloads.files);
    const files = outputFiles(plan, (model, file) => prepared.models.get(model)?.fileSize(file) ?? 0);
    const errors = [...prepared.errors];
    const nameProblem = outputNameProblem(request.outputName);
    if (nameProblem) errors.push(nameProblem);
    else if (request.outputDirectory) {
      const problem = await directoryOutputProblem(request.outputDirectory, request.outputName).catch((error: unknown) => `cannot read the chosen folder: ${(error as Error).message}`);
      if (problem) errors.push(problem);
    } else if (await (await this.outputs()).exists(request.outputName)) {
      errors.push(`an output named "${request.outputName}" already exists: delete it first, or choose another name`);
    }
    const outputBytes = files.reduce((s, f) => s + f.size, 0);
    const disk = estimateDisk(request.inputMode ?? 'auto', {
      missingDownloadBytes: downloadBytes,
      hasHubInputs: downloads.files.length > 0,
      outputBytes,
      output: request.outputDirectory ? 'folder' : 'browser',
      estimate: await this.storageEstimate(),
    });
    return {
      ok: errors.length === 0 && !issues.some((i) => i.severity === 'error'),
      issues,
      errors,
      warnings: [...parsed.warningTexts, ...plan.warnings],
      tensorCount: plan.jobs.length,
      downloadBytes,
      outputBytes,
      outputFiles: files,
      gpuMemoryBytes: workingMemoryBytes(plan, request.memoryBudgetBytes ?? DEFAULT_BUDGET_BYTES),
      layers: layerSources(prepared.config, plan),
      verification,
      disk,
      ...planAdapters(plan),
    };
  }

  async merge(request: MergeRequest, onProgress: (progress: RunProgress) => void): Promise<MergeResult> {
    const controller = this.begin('merge');
    const signal = controller.signal;
    const progress = new RunProgressReporter(onProgress, PROGRESS_INTERVAL_MS);
    // The backend starts (a GPU device, or the CPU pool's workers loading their kernels: ~0.1 s in
    // the app) while the plan is made and the inputs found, not after them.
    const starting = startBackend(this.chooseBackend(request));
    try {
      progress.emit('preparing', true);
      const { plan, models, configWarnings } = await this.planMerge(request, signal);
      progress.plan = plan;
      const target = await this.openTarget(request, plan);
      const inputs = new RunInputs();
      // Streamed files are checked against their sha256 once the merge read them, before the
      // output is committed: a mismatch fails the merge and leaves nothing behind.
      const output = verifyBeforeCommit(target.folder, () => inputs.finishStreams());
      let inputMode: InputMode;
      let backend: ComputeBackend;
      try {
        inputMode = await this.fetchInputs(request, plan, models, target, inputs, progress, signal);
        ({ backend, shown: progress.backend } = await starting.take());
      } catch (error) {
        await output.abort();
        throw error;
      }
      progress.emit('merging', true);
      const report = await this.runEngine(request, plan, inputs.opener(models), backend, output, target, progress, signal);
      return await this.recordResult(request, target, inputs, inputMode, [...configWarnings, ...plan.warnings, ...report.warnings], report, progress);
    } catch (error) {
      throw await this.explainMergeError(error, signal, progress.plan, progress.downloads);
    } finally {
      await starting.disposeUntaken();
      this.end(controller);
    }
  }

  async moe(request: MergeRequest, onProgress: (progress: RunProgress) => void): Promise<MergeResult> {
    const controller = this.begin('moe');
    try {
      return await runMoeBuild(this.extractDeps(), request, onProgress, controller.signal);
    } finally {
      this.end(controller);
    }
  }

  planExtraction(request: ExtractRequest): Promise<ExtractPlanSummary> {
    return planExtractionRequest(this.extractDeps(), request);
  }

  async extractLora(request: ExtractRequest, onProgress: (progress: ExtractProgress) => void): Promise<MergeResult> {
    const controller = this.begin('extraction');
    try {
      return await runExtraction(this.extractDeps(), request, onProgress, controller.signal);
    } finally {
      this.end(controller);
    }
  }

  private extractDeps(): ExtractDeps {
    return { resolver: this.resolver, client: () => this.client, cache: () => this.cache(), outputs: () => this.outputs() };
  }

  async cancel(): Promise<void> {
    this.running?.controller.abort();
  }

  async listOutputs(): Promise<MergeResult[]> {
    const outputs = await this.outputs();
    return (await outputs.list()).map((m) => ({
      outputName: m.name,
      files: m.files,
      warnings: m.warnings,
      elapsedMs: m.elapsedMs,
      nonFinite: m.nonFinite ?? [],
      ...(m.verified ? { verified: m.verified } : {}),
    }));
  }

  async outputFile(outputName: string, file: string): Promise<File> {
    return (await this.outputs()).file(outputName, file);
  }

  async deleteOutput(outputName: string): Promise<void> {
    await (await this.outputs()).delete(outputName);
  }

  async hasUnfinishedMerge(resumeId: string): Promise<boolean> {
    return (await this.outputs()).hasResumable(resumeId);
  }

  async discardUnfinishedMerge(request: Pick<MergeRequest, 'resumeId' | 'outputName' | 'outputDirectory'>): Promise<void> {
    if (this.running?.kind === 'merge') throw new Error('a merge is running: cancel it first');
    await discardMergeOutput(await this.outputs(), request);
  }

  async listCache(): Promise<CacheEntry[]> {
    const cache = await this.cache();
    return (await cache.list()).map((f) => ({
      repo: f.repo,
      revision: f.commit,
      file: f.path,
      size: f.size,
      bytesDone: f.bytesDone,
      complete: f.complete,
    }));
  }

  async deleteCached(repo: string, revision?: string): Promise<void> {
    if (this.running?.kind === 'merge') throw new Error('cannot delete cached models while a merge runs: cancel it first');
    if (this.running?.kind === 'evaluate') throw new Error('cannot delete cached models while an evaluation reads them: cancel it first');
    if (this.running?.kind === 'extraction') throw new Error('cannot delete cached models while an extraction reads them: cancel it first');
    if (this.running?.kind === 'moe') throw new Error('cannot delete cached models while a mixture of experts is built from them: cancel it first');
    await (await this.cache()).delete(repo, revision);
  }

  async push(request: PushRequest, onProgress: (progress: PushProgress) => void): Promise<{ readonly url: string }> {
    const controller = this.begin('push');
    const report = (progress: PushProgress): void => {
      try {
        void Promise.resolve(onProgress(progress)).catch(() => undefined);
      } catch {
        // ignore
      }
    };
    try {
      const client = new HubClient({ ...this.clientOptions(), accessToken: request.accessToken.trim() });
      const outputs = await this.outputs();
      const manifest = await outputs.readManifest(request.outputName);
      if (!manifest) throw new Error(`no output named ${request.outputName}`);
      report({ phase: 'creating', files: manifest.files.map((f) => ({ path: f.name, progress: 0 })) });
      const identity = await client.checkToken();
      if (identity.canWrite === false) {
        throw new HubError(
          `this token can only read (role "${identity.tokenRole}"): create a token with write access at ${client.hubUrl}/settings/tokens`,
          'read-only-token',
        );
      }
      const repo = request.repo.includes('/') ? request.repo : `${identity.name}/${request.repo}`;
      if (!isHubRepoId(repo)) throw new Error(`"${repo}" is not a valid repo name: use letters, digits, '-', '_' and '.'`);
      const created = await client.createRepo(repo, { private: request.private });
      const files = await Promise.all(manifest.files.map(async (f) => ({ path: f.name, content: await outputs.file(request.outputName, f.name) })));
      await client.upload(repo, files, {
        commitTitle: `Upload ${request.outputName} (merged with Alloy)`,
        signal: controller.signal,
        onProgress: (p) => report({ phase: p.phase === 'preparing' ? 'hashing' : p.phase, files: [...p.files].map(([path, progress]) => ({ path, progress })) }),
      });
      report({ phase: 'done', files: manifest.files.map((f) => ({ path: f.name, progress: 1 })) });
      return { url: created.url };
    } catch (error) {
      if (controller.signal.aborted) throw new Error('The upload was cancelled; the commit was not made.');
      throw error instanceof Error ? new Error(error.message, { cause: error }) : error;
    } finally {
      this.end(controller);
    }
  }

  async evaluate(request: EvaluateRequest, onProgress: (progress: EvaluateProgress) => void): Promise<EvaluateResult> {
    const controller = this.begin('evaluate');
    try {
      return await evaluateModels(request, {
        resolve: (binding) => this.resolver.resolve(binding.key, binding.source, controller.signal),
        cache: () => this.cache(),
        outputs: () => this.outputs(),
        signal: controller.signal,
        onProgress: (progress) => {
          try {
            void Promise.resolve(onProgress(progress)).catch(() => undefined);
          } catch {
            // a page that went away must not fail the evaluation
          }
        },
      });
    } finally {
      this.end(controller);
    }
  }

  // -------------------------------------------------------------------------------------------

  private clientOptions(): ConstructorParameters<typeof HubClient>[0] {
    return { hubUrl: this.options.hubUrl, accessToken: this.options.accessToken, fetch: this.fetchImpl, xet: this.options.xet };
  }

  private newClient(): HubClient {
    return new HubClient(this.clientOptions());
  }

  private async storageEstimate(): Promise<StorageEstimate | undefined> {
    try {
      return await this.deps.estimateStorage?.();
    } catch {
      return undefined;
    }
  }

  /** The merge's plan: the config parsed, its models resolved; any problem fails the merge here. */
  private async planMerge(
    request: MergeRequest,
    signal: AbortSignal,
  ): Promise<{ plan: MergePlan; models: Map<string, ResolvedModel>; configWarnings: string[] }> {
    const parsed = parseConfig(request.yaml);
    if (!parsed.config) throw new Error(formatIssues(parsed.issues));
    const prepared = await this.prepare(request, parsed.config, signal);
    if (!prepared.plan) throw new Error([formatIssues(prepared.issues.filter((i) => i.severity === 'error')), ...prepared.errors].filter(Boolean).join('\n'));
    return { plan: prepared.plan, models: prepared.models, configWarnings: parsed.warningTexts };
  }

  /**
   * Where the output goes: the picked folder, or a new output in the browser's storage (what other
   * interrupted merges left there is removed first). A resumable merge (the page gave it an id)
   * keeps its partial output across reloads and continues from its checkpoint of the same plan.
   */
  private async openTarget(request: MergeRequest, plan: MergePlan): Promise<OutputTarget> {
    const outputs = await this.outputs();
    const { folderOutput, opfsOutput, resume, onCheckpoint } = await openMergeOutput(outputs, request, plan);
    const kept = { resume, ...(onCheckpoint ? { onCheckpoint } : {}) };
    return folderOutput ? { kind: 'folder', folder: folderOutput, ...kept } : { kind: 'browser', folder: opfsOutput!, store: outputs, ...kept };
  }

  /**
   * Step 1 of a merge: every file the plan reads becomes a source. Hub shards are downloaded into
   * the cache and verified, or streamed; the small files copied into the output are read into memory.
   */
  private async fetchInputs(
    request: MergeRequest,
    plan: MergePlan,
    models: ReadonlyMap<string, ResolvedModel>,
    target: OutputTarget,
    inputs: RunInputs,
    progress: RunProgressReporter,
    signal: AbortSignal,
  ): Promise<InputMode> {
    const cache = await this.cache();
    const { files: specs, bySource } = await this.downloadSpecs(plan, models);
    const inputMode = chooseInputMode(request.inputMode ?? 'auto', {
      missingDownloadBytes: await missingBytes(cache, specs),
      hasHubInputs: specs.length > 0,
      outputBytes: plan.totalOutputBytes,
      output: target.kind,
      estimate: await this.storageEstimate(),
    }).mode;
    if (inputMode === 'stream') {
      // A resumed merge streams only what the tensors after its checkpoint read.
      const from = target.resume?.tensorsDone ?? 0;
      await this.openStreams(plan, specs, bySource, models, inputs, progress, signal, from, request.verifyStreamedInputs !== false);
      progress.emit('downloading', true);
    } else {
      await this.downloadToCache(specs, models, cache, inputs, progress, signal);
      for (const [key, spec] of bySource) inputs.sources.set(key, () => cache.openFile(spec));
    }
    await this.readCopyFiles(plan, models, inputs, signal);
    inputs.addVerified(verifiedSmallFiles(models));
    signal.throwIfAborted();
    return inputMode;
  }

  /** Cache mode: every Hub shard downloaded into the cache (resuming what is there) and verified before anything is merged. */
  private async downloadToCache(
    specs: readonly { model: string; spec: ShardSpec }[],
    models: ReadonlyMap<string, ResolvedModel>,
    cache: OpfsShardCache,
    inputs: RunInputs,
    progress: RunProgressReporter,
    signal: AbortSignal,
  ): Promise<void> {
    for (const { model, spec } of specs) {
      const done = await cache.bytesCached(spec);
      progress.setDownload({ model, file: spec.path, bytesDone: done, bytesTotal: spec.size, state: done === spec.size ? 'cached' : 'downloading' });
    }
    progress.emit('downloading', true);
    for (const { model, spec } of specs) {
      await this.downloadShard(model, spec, models.get(model)!.hub!, cache, progress, signal);
      inputs.verified.push({ model, file: spec.path, hash: spec.sha256 ? 'sha256' : 'git-blob' });
      await recheckPlanningReads(models, spec, await cache.openFile(spec));
    }
  }

  /** One shard into the cache; a failure is shown on its download before it fails the merge. */
  private async downloadShard(model: string, spec: ShardSpec, hub: HubModelFolder, cache: OpfsShardCache, progress: RunProgressReporter, signal: AbortSignal): Promise<void> {
    const file = hub.file(spec.path)!;
    try {
      await cache.ensure(spec, (start, end, o) => this.client.readRange(hub.snapshot, file, start, end, o), {
        signal,
        onProgress: (p) => {
          progress.setDownload({ model, file: spec.path, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, state: p.state, ...(p.message ? { message: p.message } : {}) });
          progress.emit('downloading', p.state === 'retrying' || p.state === 'done' || p.state === 'verifying');
        },
      });
    } catch (error) {
      if (error instanceof ShardCacheError && error.kind !== 'aborted') {
        progress.setDownload({ ...progress.download(model, spec.path)!, state: 'failed', message: error.message });
        progress.emit('downloading', true);
      }
      throw error;
    }
  }

  /** The small Hub files copied into the output (tokenizer files), read whole, verified and kept in memory. */
  private async readCopyFiles(plan: MergePlan, models: ReadonlyMap<string, ResolvedModel>, inputs: RunInputs, signal: AbortSignal): Promise<void> {
    for (const copy of plan.copyFiles) {
      const hub = models.get(copy.model)!.hub;
      if (!hub) continue;
      const read = await this.client.readVerified(hub.snapshot, copy.file, signal);
      if (read === null) throw new Error(`Model ${copy.model}: ${copy.file} disappeared from the Hub listing`);
      hub.verified.set(copy.file, read.hash);
      const bytes = read.bytes;
      inputs.sources.set(sourceKeyOf(copy.model, copy.file), async () => new MemoryByteSource(`${copy.model}/${copy.file}`, bytes));
    }
  }

  /** Step 2: the backend the request asks for (or the best there is); the CPU on a pool of threads where it has several. */
  private async chooseBackend(request: MergeRequest): Promise<{ backend: ComputeBackend; shown: RunBackend }> {
    const threads = Math.max(1, Math.floor(request.threads ?? this.deps.defaultThreads?.() ?? 1));
    const cpuPool = threads > 1 ? this.deps.cpuPool : undefined;
    const choice = await selectBackend(request.backend ?? 'auto', {
      gpu: this.deps.gpu?.(),
      budgetBytes: request.memoryBudgetBytes,
      loadGpu: this.deps.loadGpu,
      ...(cpuPool ? { cpu: () => cpuPool(threads, poolCacheBytes(request.memoryBudgetBytes ?? DEFAULT_BUDGET_BYTES)) } : {}),
    });
    const shown = { name: choice.name, reason: choice.reason, notice: choice.notice };
    return { backend: choice.backend, shown: choice.name === 'cpu' ? { ...shown, threads: cpuPool ? threads : 1 } : shown };
  }

  /** Step 3: the engine merges every tensor into the output and commits it; the backend is released however it ends. */
  private async runEngine(
    request: MergeRequest,
    plan: MergePlan,
    sources: SourceOpener,
    backend: ComputeBackend,
    output: OutputFolder,
    target: OutputTarget,
    progress: RunProgressReporter,
    signal: AbortSignal,
  ): Promise<MergeReport> {
    try {
      return await runMerge(plan, {
        backend,
        sources,
        output,
        budgetBytes: request.memoryBudgetBytes,
        signal,
        onProgress: (p) => {
          progress.engine = p;
          progress.emit(p.phase === 'done' ? 'done' : p.phase, p.phase !== 'merging');
        },
        progressIntervalMs: PROGRESS_INTERVAL_MS,
        refuseNonFinite: request.refuseNonFinite === true,
        ...(target.resume ? { resume: target.resume } : {}),
        ...(target.onCheckpoint ? { onCheckpoint: target.onCheckpoint } : {}),
      });
    } finally {
      await backend.dispose().catch(() => undefined);
    }
  }

  /** Step 4: the committed output's manifest (for the browser's storage) and the result the page shows. */
  private async recordResult(
    request: MergeRequest,
    target: OutputTarget,
    inputs: RunInputs,
    inputMode: InputMode,
    mergeWarnings: readonly string[],
    report: MergeReport,
    progress: RunProgressReporter,
  ): Promise<MergeResult> {
    const { verified, unverified } = inputs;
    const notice = progress.backend?.notice;
    const warnings = [...mergeWarnings, ...(notice ? [notice] : [])];
    for (const u of unverified) {
      warnings.push(`${u.model}: ${u.file} was streamed and not checked against the Hub's sha256 (${u.reason}). Use the cache mode in Settings to verify every file.`);
    }
    const manifest = {
      name: request.outputName,
      files: target.folder.files,
      createdAt: new Date().toISOString(),
      warnings,
      elapsedMs: Date.now() - progress.started,
      verified,
      nonFinite: report.nonFinite,
    };
    if (target.kind === 'browser') await target.store.writeManifest(manifest);
    progress.emit('done', true);
    return {
      outputName: manifest.name,
      files: manifest.files,
      warnings,
      elapsedMs: manifest.elapsedMs,
      verified,
      nonFinite: report.nonFinite,
      inputMode,
      stageTimes: report.stageTimes,
      ...(unverified.length > 0 ? { unverified } : {}),
      ...(target.kind === 'folder' ? { savedTo: target.folder.location } : {}),
      ...(target.resume ? { resumedAfterTensors: target.resume.tensorsDone } : {}),
    };
  }

  /**
   * Stream mode: one StreamingRangeSource per (model, file) the engine opens, reading through the
   * Hub client's resolve URL in large windows. The headers read for planning are compared with
   * the first window (hashed with the rest of the file) before anything is merged.
   */
  private async openStreams(
    plan: MergePlan,
    specs: readonly { model: string; spec: ShardSpec }[],
    bySource: ReadonlyMap<string, ShardSpec>,
    models: ReadonlyMap<string, ResolvedModel>,
    inputs: RunInputs,
    progress: RunProgressReporter,
    signal: AbortSignal,
    tensorsDone: number,
    verify: boolean,
  ): Promise<void> {
    for (const { model, spec } of specs) {
      progress.setDownload({ model, file: spec.path, bytesDone: 0, bytesTotal: spec.size, state: 'streaming' });
    }
    const schedules = readSchedules(plan, tensorsDone);
    const rechecked = new Set<string>();
    for (const [key, spec] of bySource) {
      const model = key.slice(0, key.indexOf('\u0000'));
      const hub = models.get(model)!.hub!;
      // The planning reads (the header) come first: they are checked against the stream below.
      const schedule = [...hub.rangesRead(spec.path).map((r) => ({ offset: r.offset, length: r.bytes.byteLength })), ...(schedules.get(key) ?? [])];
      const shownAs = specs.find((s) => s.spec === spec)?.model ?? model;
      const source = this.streamSource(spec, hub, schedule, shownAs, progress, signal, verify);
      inputs.streams.push({ model, spec, source });
      inputs.sources.set(key, async () => source);
      const id = `${spec.repo}@${spec.commit}/${spec.path}`;
      if (rechecked.has(id)) continue;
      rechecked.add(id);
      await recheckPlanningReads(models, spec, source);
    }
  }

  /** One streamed Hub file, read in the order of `schedule`; its bytes and retries show on the download of (`shownAs`, file). */
  private streamSource(
    spec: ShardSpec,
    hub: HubModelFolder,
    schedule: { offset: number; length: number }[],
    shownAs: string,
    progress: RunProgressReporter,
    signal: AbortSignal,
    verify: boolean,
  ): StreamingRangeSource {
    const d = this.options.download ?? {};
    const file = hub.file(spec.path)!;
    return new StreamingRangeSource(
      `${spec.repo}/${spec.path}`,
      spec.size,
      async (start, end, o) => {
        const bytes = await this.client.readRange(hub.snapshot, file, start, end, o);
        const entry = progress.download(shownAs, spec.path);
        if (entry) progress.setDownload({ ...entry, bytesDone: Math.min(entry.bytesTotal, entry.bytesDone + bytes.byteLength), state: 'streaming' });
        progress.emit('merging');
        return bytes;
      },
      {
        schedule,
        ...(spec.sha256 ? { sha256: spec.sha256 } : {}),
        rereadToVerify: verify,
        ...(d.streamWindowBytes !== undefined ? { windowBytes: d.streamWindowBytes } : {}),
        ...(d.retries !== undefined ? { retries: d.retries } : {}),
        ...(d.retryBaseDelayMs !== undefined ? { retryBaseDelayMs: d.retryBaseDelayMs } : {}),
        signal,
        onRetry: ({ error, delayMs }) => {
          const entry = progress.download(shownAs, spec.path);
          if (entry) {
            progress.setDownload({ ...entry, state: 'retrying', message: `${(error as Error).message ?? String(error)}; retrying in ${Math.round(delayMs / 100) / 10} s` });
          }
          progress.emit('merging', true);
        },
      },
    );
  }

  private cache(): Promise<OpfsShardCache> {
    if (!this.cachePromise) {
      const d = this.options.download ?? {};
      const options: ShardCacheOptions = {
        ...(d.blockBytes !== undefined ? { blockBytes: d.blockBytes } : {}),
        ...(d.concurrency !== undefined ? { concurrency: d.concurrency } : {}),
        ...(d.retries !== undefined ? { retries: d.retries } : {}),
        ...(d.retryBaseDelayMs !== undefined ? { retryBaseDelayMs: d.retryBaseDelayMs } : {}),
      };
      this.cachePromise = this.deps.storageRoot().then((root) => OpfsShardCache.open(root, options));
      this.cachePromise.catch(() => (this.cachePromise = null));
    }
    return this.cachePromise;
  }

  private outputs(): Promise<OpfsOutputStore> {
    if (!this.outputsPromise) {
      this.outputsPromise = this.deps.storageRoot().then((root) => OpfsOutputStore.open(root, this.deps.opfsWriter?.()));
      this.outputsPromise.catch(() => (this.outputsPromise = null));
    }
    return this.outputsPromise;
  }

  private begin(kind: 'merge' | 'push' | 'evaluate' | 'extraction' | 'moe'): AbortController {
    if (this.running) throw new Error(`a ${this.running.kind} is already running: wait for it or cancel it`);
    const controller = new AbortController();
    this.running = { kind, controller };
    return controller;
  }

  private end(controller: AbortController): void {
    if (this.running?.controller === controller) this.running = null;
  }

  /** Binds the models, reads their metadata and builds the plan, collecting every problem. */
  private async prepare(
    request: MergeRequest,
    config: MergeConfig,
    signal?: AbortSignal,
  ): Promise<{ config: MergeConfig; plan: MergePlan | null; models: Map<string, ResolvedModel>; issues: ConfigIssue[]; errors: string[] }> {
    const errors: string[] = [];
    const issues: ConfigIssue[] = [];
    const models = new Map<string, ResolvedModel>();
    const { bound, adapters, errors: bindErrors } = await this.resolver.bind(config, request.models);
    errors.push(...bindErrors);
    const metadata = new Map<string, Awaited<ReturnType<ResolvedModel['metadata']>>>();
    const tokenizer = needsTokenizerFiles(config);
    await Promise.all(
      bound.map(async (binding) => {
        try {
          const resolved = await this.resolver.resolve(binding.key, binding.source, signal);
          models.set(binding.key, resolved);
          metadata.set(binding.key, await resolved.metadata({ tokenizer }));
        } catch (error) {
          errors.push(modelErrorMessage(binding.key, error));
        }
      }),
    );
    await attachAdapters(this.resolver, adapters, metadata, models, errors, signal);
    signal?.throwIfAborted();
    if (errors.length > 0) return { config, plan: null, models, issues, errors };
    const options: PlanOptions = {
      ...(request.outShardSize !== undefined ? { outShardSize: request.outShardSize } : {}),
      allowCrimes: request.allowCrimes ?? false,
      randomSeed: request.randomSeed ?? Math.floor(Math.random() * 2 ** 31),
      outputName: request.outputName,
      configText: request.yaml,
      hubUrl: this.options.hubUrl,
    };
    try {
      return { config, plan: buildPlan(config, metadata, options), models, issues, errors };
    } catch (error) {
      if (error instanceof ConfigError) issues.push(...error.issues);
      else if (error instanceof PlanError) errors.push(error.message);
      else errors.push(error instanceof Error ? error.message : String(error));
      return { config, plan: null, models, issues, errors };
    }
  }

  /**
   * The Hub shards the plan reads: one entry per distinct file (pinned to its commit), and the
   * spec of every (model, file) the engine will open (two keys may name one repo).
   */
  private async downloadSpecs(
    plan: MergePlan,
    models: ReadonlyMap<string, ResolvedModel>,
  ): Promise<{ files: { model: string; spec: ShardSpec }[]; bySource: Map<string, ShardSpec> }> {
    const files = new Map<string, { model: string; spec: ShardSpec }>();
    const bySource = new Map<string, ShardSpec>();
    for (const job of plan.jobs) {
      for (const input of job.inputs.flatMap(inputReads)) {
        const key = sourceKeyOf(input.model, input.file);
        if (bySource.has(key)) continue;
        const hub = models.get(input.model)?.hub;
        if (!hub) continue;
        const info = hub.file(input.file);
        if (!info) throw new Error(`Model ${input.model}: ${input.file} is not in the Hub listing of ${hub.snapshot.repo}`);
        const spec = hubFileSpec(input.model, hub, info);
        const id = `${hub.snapshot.repo}@${hub.snapshot.commit}/${info.path}`;
        let entry = files.get(id);
        if (!entry) {
          entry = { model: input.model, spec };
          files.set(id, entry);
        }
        bySource.set(key, entry.spec);
      }
    }
    return { files: [...files.values()], bySource };
  }

  private async explainMergeError(error: unknown, signal: AbortSignal, plan: MergePlan | null, downloads: ReadonlyMap<string, DownloadProgress>): Promise<Error> {
    if (signal.aborted || error instanceof MergeCancelledError || (error instanceof ShardCacheError && error.kind === 'aborted')) {
      const kept = [...downloads.values()].some((d) => d.bytesDone > 0 && d.state !== 'cached')
        ? ' Downloaded parts are kept in the cache: merging again resumes where it stopped.'
        : '';
      return new Error(`The merge was cancelled; nothing was written.${kept}`, { cause: error });
    }
    if (error instanceof NonFiniteError) {
      // The name crosses the worker boundary and tells the page what kind of failure this is.
      return namedError('NonFiniteError', 
        `The merge stopped at NaN or Inf values: ${describeNonFiniteTensor(error.tensor)}. Nothing was kept. ` +
          'Settings → "Refuse results with NaN/Inf" is on; turn it off to finish such a merge with a warning.',
        error,
      );
    }
    // Its message says what to do; the name tells the page not to add advice of its own.
    if (error instanceof WebGpuUnavailableError) return namedError(error.name, error.message, error);
    const quota = error instanceof ShardCacheError ? error.kind === 'quota' : hasQuotaCause(error);
    if (quota) {
      const missing = [...downloads.values()].reduce((s, d) => s + (d.bytesTotal - d.bytesDone), 0);
      const output = plan?.totalOutputBytes ?? 0;
      let estimate = '';
      try {
        const e = await this.deps.estimateStorage?.();
        if (e?.usage !== undefined) estimate = ` Alloy's storage already holds ${formatBytes(e.usage)}.`;
      } catch {
        // no estimate
      }
      const base = error instanceof Error ? error.message : String(error);
      return new Error(
        `${base} In all this merge needs about ${formatBytes(missing + output)} of free space ` +
          `(${formatBytes(missing)} still to download, ${formatBytes(output)} of output).${estimate}`,
        { cause: error },
      );
    }
    if (error instanceof Error) return new Error(error.message, { cause: error });
    return new Error(String(error));
  }
}

function namedError(name: string, message: string, cause: unknown): Error {
  const error = new Error(message, { cause });
  error.name = name;
  return error;
}

function parseConfig(yaml: string): { config: MergeConfig | null; issues: ConfigIssue[]; warningTexts: string[] } {
  try {
    const { config, warnings } = parseMergeConfig(yaml);
    return { config, issues: warnings, warningTexts: warnings.map(issueText) };
  } catch (error) {
    if (error instanceof ConfigError) return { config: null, issues: [...error.issues, ...error.warnings], warningTexts: [] };
    return { config: null, issues: [{ path: '', message: (error as Error).message, severity: 'error' }], warningTexts: [] };
  }
}

/** The Hub files of the models read whole so far, each verified when read (config.json, index, tokenizer…). */
function verifiedSmallFiles(models: ReadonlyMap<string, ResolvedModel>): VerifiedFile[] {
  const out: VerifiedFile[] = [];
  for (const [key, model] of models) {
    for (const [file, hash] of model.hub?.verified ?? []) out.push({ model: key, file, hash });
  }
  return out.sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

function issueText(issue: ConfigIssue): string {
  return `${issue.line !== undefined ? `line ${issue.line}: ` : ''}${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

function formatIssues(issues: readonly ConfigIssue[]): string {
  if (issues.length === 0) return '';
  return `Invalid merge config:\n${issues.filter((i) => i.severity === 'error').map(issueText).join('\n')}`;
}

function hasQuotaCause(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { name?: string }).name === 'QuotaExceededError') return true;
  }
  return false;
}

/** Per (model, file): the tensor byte ranges the engine reads, in the order it reads them (job order), from job `from` on. */
function readSchedules(plan: MergePlan, from: number): Map<string, { offset: number; length: number }[]> {
  const out = new Map<string, { offset: number; length: number }[]>();
  for (const job of plan.jobs.slice(from)) {
    for (const read of job.inputs.flatMap(inputReads)) {
      const key = sourceKeyOf(read.model, read.file);
      let list = out.get(key);
      if (!list) out.set(key, (list = []));
      list.push({ offset: read.offset, length: read.length });
    }
  }
  return out;
}
/** Bytes of these shards not in the cache yet. */
async function missingBytes(cache: OpfsShardCache, specs: readonly { spec: ShardSpec }[]): Promise<number> {
  let missing = 0;
  for (const { spec } of specs) missing += spec.size - (await cache.bytesCached(spec));
  return missing;
}

/** Where a merge's output goes, and what it needs there when committed. */
type OutputTarget = (
  | { readonly kind: 'folder'; readonly folder: DirectoryOutputFolder }
  | { readonly kind: 'browser'; readonly folder: OpfsOutputFolder; readonly store: OpfsOutputStore }
) & {
  /** The checkpoint a resumed merge continues from (null: from the first tensor). */
  readonly resume: MergeCheckpoint | null;
  readonly onCheckpoint?: (checkpoint: MergeCheckpoint) => Promise<void>;
};

