import {
  DEFAULT_EVAL_TOKENS,
  EVAL_TEXT,
  EVAL_TEXT_SOURCE,
  explainFlag,
  ForwardModel,
  loadTextTokenizer,
  scoreModels,
  ShortTextError,
  type EvalModel,
  type EvalText,
} from '../model';
import type { OpfsOutputStore, OpfsShardCache } from '../storage/browser';
import type { ModelFolder } from '../storage/types';
import { untrustedText } from '../storage';
import type { EvaluateProgress, EvaluateRequest, EvaluateResult, ModelBinding } from './api';
import { cacheFirstFolder, directoryOutputFolder, storedOutputFolder } from './evaluate-folders';
import { modelErrorMessage, type ResolvedModel } from './model-sources';

/**
 * The worker's Evaluate (docs/app.md §1): opens every input model and the merged output
 * (config, headers, tokenizer — all before any arithmetic, so a bad model fails fast), then scores
 * them with the same code as `alloy eval` (src/model/evaluate.ts) on the CPU, in this worker.
 */

export interface EvaluateDeps {
  readonly resolve: (binding: ModelBinding) => Promise<ResolvedModel>;
  readonly cache: () => Promise<OpfsShardCache>;
  readonly outputs: () => Promise<OpfsOutputStore>;
  readonly signal: AbortSignal;
  readonly onProgress: (progress: EvaluateProgress) => void;
}

export const USER_TEXT_LABEL = 'your text';
/** Longer pasted texts are refused rather than tokenised whole (only the first maxTokens tokens count anyway). */
export const MAX_USER_TEXT_CHARS = 1_000_000;

export async function evaluateModels(request: EvaluateRequest, deps: EvaluateDeps): Promise<EvaluateResult> {
  const texts: (EvalText & { source?: string })[] = [{ label: 'bundled text', text: EVAL_TEXT, source: EVAL_TEXT_SOURCE }];
  if (request.text !== undefined && request.text.trim() !== '') {
    if (request.text.length > MAX_USER_TEXT_CHARS) {
      throw new Error(`your text has ${request.text.length} characters; paste at most ${MAX_USER_TEXT_CHARS} (only its first tokens are scored anyway)`);
    }
    if (request.text.includes('\u0000')) throw new Error('your text contains NUL characters: paste plain text');
    texts.push({ label: USER_TEXT_LABEL, text: request.text });
  }
  const maxTokens = request.maxTokens ?? undefined;
  if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 2)) throw new Error(`maxTokens must be an integer of at least 2, not ${maxTokens}`);
  if (request.models.length === 0 && !request.output) throw new Error('nothing to evaluate: give the merge’s input models or its output');

  const total = (request.models.length + (request.output ? 1 : 0)) * texts.length;
  deps.onProgress({ phase: 'opening', done: 0, total });
  const opened: (EvalModel & { role: 'input' | 'output' })[] = [];
  try {
    for (const binding of request.models) {
      deps.signal.throwIfAborted();
      opened.push({ ...(await openFolder(binding.key, async () => cacheFirstFolder(await deps.resolve(binding), await deps.cache()))), role: 'input' });
    }
    if (request.output) {
      const { outputName, outputDirectory } = request.output;
      const taken = new Set(request.models.map((m) => m.key));
      const name = taken.has(outputName) ? `${outputName} (merged)` : outputName;
      const folder = async () => (outputDirectory ? directoryOutputFolder(outputDirectory, outputName) : storedOutputFolder(await deps.outputs(), outputName));
      opened.push({ ...(await openFolder(name, folder)), role: 'output' });
    }
    const scored = await scoreModels(opened, texts, {
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      signal: deps.signal,
      onScoring: (model, text, _tokens, done) => deps.onProgress({ phase: 'scoring', model, text, done, total }),
    });
    deps.onProgress({ phase: 'done', done: total, total });
    return {
      texts: texts.map((t) => ({ label: t.label, ...(t.source ? { source: t.source } : {}) })),
      models: opened.map((m, r) => ({ name: m.name, role: m.role, scores: scored.scores[r].map((s) => ({ perplexity: s.perplexity, tokens: s.tokens })) })),
      flags: scored.flags.flatMap((list, text) => list.map((flag) => ({ text, model: flag.name, ratio: flag.ratio, explanation: explainFlag(flag) }))),
      notComparable: scored.comparable.map((ok) => !ok),
      maxTokens: maxTokens ?? DEFAULT_EVAL_TOKENS,
    };
  } catch (error) {
    if (deps.signal.aborted) throw new Error('The evaluation was cancelled.', { cause: error });
    if (error instanceof ShortTextError) {
      throw new Error(`${error.text === USER_TEXT_LABEL ? 'Your text' : 'The bundled text'} gives only ${error.tokens} token(s) with the tokenizer of ${untrustedText(error.model, 80)}: paste a longer text.`, { cause: error });
    }
    throw error instanceof Error ? new Error(error.message, { cause: error }) : new Error(String(error));
  } finally {
    await Promise.allSettled(opened.map((m) => m.model.close()));
  }
}

async function openFolder(name: string, folder: () => Promise<ModelFolder>): Promise<EvalModel> {
  try {
    const f = await folder();
    const tokenizer = await loadTextTokenizer(f);
    const model = await ForwardModel.open(f);
    return { name, model, tokenizer };
  } catch (error) {
    throw new Error(modelErrorMessage(name, error), { cause: error });
  }
}
