import { flagWorseModels, type PerplexityFlag } from './compare-perplexity';
import type { ForwardModel } from './forward';
import { perplexity } from './perplexity';
import type { TextTokenizer } from './text-tokenizer';

/**
 * "Did my merge break the model?" (docs/app.md §1): every model scored on every text, and the
 * models far worse than the others flagged, per text. `alloy eval` and the app's Evaluate panel
 * both run this, so the numbers they show for the same files are the same numbers.
 */

/** Tokens of each text that are scored (the rest is cut): enough for a stable number, quick on the CPU. */
export const DEFAULT_EVAL_TOKENS = 512;

export interface EvalText {
  readonly label: string;
  readonly text: string;
}

export interface EvalModel {
  readonly name: string;
  readonly model: ForwardModel;
  readonly tokenizer: TextTokenizer;
}

export interface EvalScore {
  readonly perplexity: number;
  readonly tokens: number;
  /** The token ids, joined: equal keys mean the models saw the same tokens (and can be compared). */
  readonly tokensKey: string;
}

export interface EvalScores {
  /** scores[model][text]. */
  readonly scores: readonly (readonly EvalScore[])[];
  /** Per text: the models far worse than the best other model that tokenised it the same way. */
  readonly flags: readonly (readonly PerplexityFlag[])[];
  /** Per text: every model saw the same tokens (else perplexities are not compared across tokenizers). */
  readonly comparable: readonly boolean[];
}

/** A text gives fewer than 2 tokens with a model's tokenizer: there is nothing to predict. */
export class ShortTextError extends Error {
  constructor(
    readonly text: string,
    readonly model: string,
    readonly tokens: number,
  ) {
    super(`${text} gives ${tokens} token(s) with the tokenizer of ${model}; perplexity needs at least 2: use a longer text`);
    this.name = 'ShortTextError';
  }
}

export interface ScoreOptions {
  readonly maxTokens?: number;
  readonly signal?: AbortSignal;
  /** Called before each (model, text) is scored; `done` of `total` pairs are finished. */
  readonly onScoring?: (model: string, text: string, tokens: number, done: number, total: number) => void;
}

export async function scoreModels(models: readonly EvalModel[], texts: readonly EvalText[], options: ScoreOptions = {}): Promise<EvalScores> {
  const maxTokens = options.maxTokens ?? DEFAULT_EVAL_TOKENS;
  // Every text is tokenised by every model before any arithmetic: a text too short fails at once.
  const ids = models.map((m) =>
    texts.map((t) => {
      const tokens = m.tokenizer.encode(t.text).slice(0, maxTokens);
      if (tokens.length < 2) throw new ShortTextError(t.label, m.name, tokens.length);
      return tokens;
    }),
  );
  const total = models.length * texts.length;
  const scores: EvalScore[][] = [];
  for (const [r, m] of models.entries()) {
    const row: EvalScore[] = [];
    for (const [c, t] of texts.entries()) {
      options.signal?.throwIfAborted();
      options.onScoring?.(m.name, t.label, ids[r][c].length, r * texts.length + c, total);
      const result = await perplexity(m.model, ids[r][c], { signal: options.signal });
      row.push({ perplexity: result.perplexity, tokens: ids[r][c].length, tokensKey: ids[r][c].join(',') });
    }
    scores.push(row);
  }
  const flags = texts.map((_, c) => flagWorseModels(models.map((m, r) => ({ name: m.name, perplexity: scores[r][c].perplexity, tokensKey: scores[r][c].tokensKey }))));
  const comparable = texts.map((_, c) => new Set(scores.map((row) => row[c].tokensKey)).size <= 1);
  return { scores, flags, comparable };
}
