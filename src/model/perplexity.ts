import type { ForwardModel } from './forward';

/**
 * Perplexity of a token sequence: exp of the mean negative log-likelihood of every token after
 * the first, each predicted from the tokens before it. Texts longer than the context are scored
 * in overlapping windows (stride half a window, as in Hugging Face's perplexity guide): every
 * token is scored exactly once, with at least half a window of context after the first window.
 */

export interface PerplexityOptions {
  /** Tokens per window. Default: the model's context (max_position_embeddings, or its sliding window). */
  readonly window?: number;
  /** Windows run through the model together (one read of the weights for all of them). Default 8. */
  readonly batch?: number;
  readonly signal?: AbortSignal;
}

export interface PerplexityResult {
  readonly perplexity: number;
  /** Mean negative log-likelihood per scored token (nats). */
  readonly meanNll: number;
  /** Tokens scored (all but the first). */
  readonly scored: number;
  readonly windows: number;
}

/** The windows [begin, end) and, in each, the first token index it scores. */
export function perplexityWindows(length: number, window: number): { begin: number; end: number; from: number }[] {
  if (!Number.isInteger(window) || window < 2) throw new RangeError(`perplexity: the window must be at least 2 tokens, not ${window}`);
  const stride = Math.max(1, Math.floor(window / 2));
  const windows: { begin: number; end: number; from: number }[] = [];
  let scoredTo = 1;
  for (let begin = 0; ; begin += stride) {
    const end = Math.min(begin + window, length);
    windows.push({ begin, end, from: scoredTo });
    scoredTo = end;
    if (end >= length) break;
  }
  return windows;
}

export function modelContext(model: ForwardModel): number {
  return Math.min(model.spec.rope.maxPositions, model.spec.maxSequence);
}

export async function perplexity(model: ForwardModel, ids: readonly number[], options: PerplexityOptions = {}): Promise<PerplexityResult> {
  if (ids.length < 2) throw new RangeError(`perplexity needs at least 2 tokens, the text has ${ids.length}`);
  const window = Math.min(options.window ?? modelContext(model), ids.length);
  const windows = perplexityWindows(ids.length, window);
  const batchSize = options.batch ?? 8;
  let nll = 0;
  let scored = 0;
  for (let i = 0; i < windows.length; i += batchSize) {
    const group = windows.slice(i, i + batchSize);
    const sequences = group.map((w) => ids.slice(w.begin, w.end));
    // Position j predicts token begin + j + 1; only tokens from `from` on are scored here.
    const targets = group.map((w, k) =>
      sequences[k].map((_, j) => {
        const next = w.begin + j + 1;
        return next < w.end && next >= w.from ? ids[next] : -1;
      }),
    );
    const result = await model.run(sequences, { padding: 'right', targets, signal: options.signal });
    result.targetLogProbs!.forEach((row) => {
      for (const logProb of row) {
        if (Number.isNaN(logProb)) continue;
        nll -= logProb;
        scored++;
      }
    });
  }
  const meanNll = nll / scored;
  return { perplexity: Math.exp(meanNll), meanNll, scored, windows: windows.length };
}
