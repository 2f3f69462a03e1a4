/**
 * "Did my merge break the model?": a model whose perplexity is far above the others' on the same
 * tokens is flagged. The rule is deliberately simple: more than FLAG_RATIO times the best of the
 * other models. Only models that tokenise the text identically are compared — perplexity per
 * token means nothing across different tokenizers.
 */
export const FLAG_RATIO = 1.5;

export interface ScoredModel {
  readonly name: string;
  readonly perplexity: number;
  /** Identifies the tokenisation (models with equal keys saw the same token ids). */
  readonly tokensKey: string;
}

export interface PerplexityFlag {
  readonly name: string;
  readonly perplexity: number;
  readonly bestOther: string;
  readonly bestOtherPerplexity: number;
  readonly ratio: number;
}

export function flagWorseModels(models: readonly ScoredModel[], ratio = FLAG_RATIO): PerplexityFlag[] {
  const flags: PerplexityFlag[] = [];
  for (const model of models) {
    const others = models.filter((m) => m !== model && m.tokensKey === model.tokensKey && Number.isFinite(m.perplexity));
    if (others.length === 0) continue;
    const best = others.reduce((a, b) => (b.perplexity < a.perplexity ? b : a));
    // NaN or Infinity (overflowing weights) is always far worse.
    const worse = !Number.isFinite(model.perplexity) || model.perplexity > ratio * best.perplexity;
    if (worse) {
      flags.push({ name: model.name, perplexity: model.perplexity, bestOther: best.name, bestOtherPerplexity: best.perplexity, ratio: model.perplexity / best.perplexity });
    }
  }
  return flags;
}

/** The plain-words explanation shown under a flag. */
export function explainFlag(flag: PerplexityFlag): string {
  const times = !Number.isFinite(flag.ratio) ? 'far' : flag.ratio >= 1000 ? 'over 1000×' : `${flag.ratio.toFixed(1)}×`;
  return (
    `${flag.name} is ${times} more perplexed by this text than ${flag.bestOther} ` +
    `(${formatPerplexity(flag.perplexity)} vs ${formatPerplexity(flag.bestOtherPerplexity)}): it predicts ordinary text much worse, ` +
    `which usually means the merge damaged it. Try another merge method, a lower density or weight for the ` +
    `models that differ most, or check that the inputs share a base model and that their weights load correctly.`
  );
}

export function formatPerplexity(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value >= 1000) return value.toExponential(2);
  return value.toFixed(2);
}
