/**
 * The forward pass (docs/model.md §1–6): decoder-only transformers run from their safetensors files,
 * streamed layer by layer, in f32 through a backend's matrix operations (docs/model.md §7: the CPU
 * reference or WebGPU). Mixture-of-experts gates and `alloy eval` both call it. `ops` re-exports
 * the CPU reference arithmetic.
 */
export { ForwardModelError } from './errors';
export { DEFAULT_BLOCK_BYTES, ForwardModel, type ForwardModelOptions, type ForwardOptions, type ForwardResult, type PaddingSide } from './forward';
export { FORWARD_FAMILIES, modelSpecFromConfig, type Activation, type ForwardFamily, type ModelSpec } from './model-spec';
export { ModelWeights } from './model-weights';
export { SUPPORTED_ROPE_TYPES, ropeFrequencies, ropeSpecFromConfig, type RopeFrequencies, type RopeSpec, type RopeType } from './rope';
export * as ops from './ops';
export { EVAL_TEXT, EVAL_TEXT_SOURCE } from './eval-text';
export { loadTextTokenizer, type TextTokenizer } from './text-tokenizer';
export { modelContext, perplexity, perplexityWindows, type PerplexityOptions, type PerplexityResult } from './perplexity';
export { FLAG_RATIO, explainFlag, flagWorseModels, formatPerplexity, type PerplexityFlag, type ScoredModel } from './compare-perplexity';
export { DEFAULT_EVAL_TOKENS, ShortTextError, scoreModels, type EvalModel, type EvalScore, type EvalScores, type EvalText, type ScoreOptions } from './evaluate';
