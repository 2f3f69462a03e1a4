/**
 * The page's handle on the engine worker: starts src/worker/engine-worker.ts as a module worker
 * and returns its EngineApi through comlink, with the progress callbacks of `merge`, `push` and `evaluate`
 * wrapped in `Comlink.proxy` so the page can pass plain functions.
 */
import * as Comlink from 'comlink';
import type { EngineApi, EvaluateProgress, EvaluateRequest, ExtractProgress, ExtractRequest, MergeRequest, PushProgress, PushRequest, RunProgress } from './api';

export interface EngineClient extends EngineApi {
  /** Stops the worker (a running merge is abandoned; its temporary output is cleaned up next time). */
  terminate(): void;
}

export function createEngineClient(): EngineClient {
  const worker = new Worker(new URL('./engine-worker.ts', import.meta.url), { type: 'module', name: 'alloy-engine' });
  const remote = Comlink.wrap<EngineApi>(worker);
  return {
    configure: (options) => remote.configure({ demoBaseUrl: defaultDemoBaseUrl(), ...options }),
    forgetToken: () => remote.forgetToken(),
    checkToken: (token) => remote.checkToken(token),
    listDemoModels: () => remote.listDemoModels(),
    searchModels: (query, limit) => remote.searchModels(query, limit),
    inspectModel: (source) => remote.inspectModel(source),
    inspectAdapter: (source) => remote.inspectAdapter(source),
    plan: (request) => remote.plan(request),
    merge: (request: MergeRequest, onProgress: (progress: RunProgress) => void) => remote.merge(request, Comlink.proxy(onProgress)),
    moe: (request: MergeRequest, onProgress: (progress: RunProgress) => void) => remote.moe(request, Comlink.proxy(onProgress)),
    planExtraction: (request) => remote.planExtraction(request),
    extractLora: (request: ExtractRequest, onProgress: (progress: ExtractProgress) => void) => remote.extractLora(request, Comlink.proxy(onProgress)),
    cancel: () => remote.cancel(),
    listOutputs: () => remote.listOutputs(),
    outputFile: (outputName, file) => remote.outputFile(outputName, file),
    deleteOutput: (outputName) => remote.deleteOutput(outputName),
    hasUnfinishedMerge: (resumeId) => remote.hasUnfinishedMerge(resumeId),
    discardUnfinishedMerge: (request) => remote.discardUnfinishedMerge(request),
    listCache: () => remote.listCache(),
    deleteCached: (repo, revision) => remote.deleteCached(repo, revision),
    push: (request: PushRequest, onProgress: (progress: PushProgress) => void) => remote.push(request, Comlink.proxy(onProgress)),
    evaluate: (request: EvaluateRequest, onProgress: (progress: EvaluateProgress) => void) => remote.evaluate(request, Comlink.proxy(onProgress)),
    terminate: () => {
      remote[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}

/** The demo models sit under the app's base URL, which the page knows better than the worker. */
function defaultDemoBaseUrl(): string | undefined {
  if (typeof document === 'undefined') return undefined;
  return new URL(`${import.meta.env.BASE_URL}demo-models/`, document.baseURI).href;
}
