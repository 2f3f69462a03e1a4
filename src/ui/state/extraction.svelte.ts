import type { ExtractPlanSummary, ExtractProgress, ExtractRequest, ModelSourceSpec } from '../../worker/api';
import { describeError } from '../lib/errors';
import { parseRepoInput } from '../lib/hub-repo';
import type { AppState } from './app.svelte';

/** The form of "Extract a LoRA": mergekit-extract-lora's options, as the CLI's flags name them. */
export interface ExtractForm {
  fineTuned: string;
  base: string;
  maxRank: number;
  distributeScale: boolean;
  embedLora: boolean;
  skipUndecomposable: boolean;
  /** Comma-separated lists (--save-module, --include-regex, --exclude-regex). */
  saveModules: string;
  includeRegexes: string;
  excludeRegexes: string;
  svEpsilon: number;
  randomSeed: number;
  outputName: string;
}

export type ExtractRun =
  | { readonly status: 'idle' }
  | { readonly status: 'running'; readonly progress?: ExtractProgress; readonly cancelling?: boolean }
  | { readonly status: 'failed'; readonly error: string; readonly progress?: ExtractProgress };

/**
 * "Extract a LoRA" (docs/lora.md §2): a fine-tune and its base (models of the Models step, or Hub
 * ids), the options, a plan from the worker, then the run with per-module progress; the adapter
 * folder lands among the outputs and the Result step downloads or pushes it like a merge.
 */
export class ExtractionState {
  form = $state<ExtractForm>({
    fineTuned: '',
    base: '',
    maxRank: 32,
    distributeScale: true,
    embedLora: false,
    skipUndecomposable: false,
    saveModules: '',
    includeRegexes: '',
    excludeRegexes: '',
    svEpsilon: 0,
    randomSeed: 0,
    outputName: '',
  });
  plan = $state.raw<ExtractPlanSummary | null>(null);
  planning = $state(false);
  problem = $state<string | null>(null);
  run = $state.raw<ExtractRun>({ status: 'idle' });

  constructor(private readonly app: AppState) {}

  /** A model of the Models step by its key, else a Hub id; undefined when it is neither. */
  private sourceOf(text: string): ModelSourceSpec | undefined {
    const key = text.trim();
    const loaded = this.app.sources[key];
    if (loaded) return loaded;
    const hub = parseRepoInput(key, this.app.hubUrl);
    return hub ? { kind: 'hub', repo: hub.repo, ...(hub.revision ? { revision: hub.revision } : {}) } : undefined;
  }

  /** The request of the form, or what is missing. */
  request(): ExtractRequest | string {
    const f = this.form;
    const ft = this.sourceOf(f.fineTuned);
    const base = this.sourceOf(f.base);
    if (!ft) return f.fineTuned.trim() === '' ? 'Choose the fine-tuned model.' : `"${f.fineTuned.trim()}" is not a model of the Models step nor a Hub id (namespace/name).`;
    if (!base) return f.base.trim() === '' ? 'Choose its base model.' : `"${f.base.trim()}" is not a model of the Models step nor a Hub id (namespace/name).`;
    const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter(Boolean);
    const name = f.outputName.trim() || `${f.fineTuned.trim().split(/[/@]/).filter(Boolean).at(-1) ?? 'model'}-lora-r${f.maxRank}`;
    return {
      fineTuned: ft,
      base,
      outputName: name,
      options: {
        maxRank: f.maxRank,
        distributeScale: f.distributeScale,
        embedLora: f.embedLora,
        skipUndecomposable: f.skipUndecomposable,
        modulesToSave: list(f.saveModules),
        includeRegexes: list(f.includeRegexes),
        excludeRegexes: list(f.excludeRegexes),
        svEpsilon: f.svEpsilon,
        randomSeed: f.randomSeed,
      },
      memoryBytes: this.app.memoryBudgetMiB * 2 ** 20,
    };
  }

  async refreshPlan(): Promise<void> {
    const request = this.request();
    const api = this.app.api;
    this.plan = null;
    if (typeof request === 'string' || !api) {
      this.problem = typeof request === 'string' ? request : 'The engine is not ready.';
      return;
    }
    this.problem = null;
    this.planning = true;
    try {
      this.plan = await api.planExtraction(request);
    } catch (error) {
      this.problem = describeError(error).message;
    } finally {
      this.planning = false;
    }
  }

  async start(): Promise<void> {
    const request = this.request();
    const api = this.app.api;
    if (typeof request === 'string' || !api || this.run.status === 'running') return;
    this.run = { status: 'running' };
    try {
      const result = await api.extractLora(request, (progress) => {
        if (this.run.status === 'running') this.run = { ...this.run, progress };
      });
      this.run = { status: 'idle' };
      this.plan = null;
      // The adapter folder is an output like a merge's: Result downloads and pushes it.
      this.app.run = { status: 'done', result };
      await this.app.refreshOutputs();
      this.app.dialog = null;
      this.app.step = 'result';
    } catch (error) {
      const progress = this.run.status === 'running' ? this.run.progress : undefined;
      this.run = { status: 'failed', error: describeError(error).message, ...(progress ? { progress } : {}) };
    }
  }

  async cancel(): Promise<void> {
    if (this.run.status !== 'running') return;
    this.run = { ...this.run, cancelling: true };
    await this.app.api?.cancel();
  }
}
