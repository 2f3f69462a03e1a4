import { ForwardModelError } from './errors';
import { ropeSpecFromConfig, type RopeSpec } from './rope';

/**
 * What the forward pass needs to know of a decoder-only model, read from its config.json. The
 * families differ only in a handful of switches (norm offset, embedding scale, fused projections,
 * q/k norms, sandwich norms, soft capping, activation), so one block implementation serves them all.
 */

export type ForwardFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma' | 'gemma2' | 'phi3';

export const FORWARD_FAMILIES: readonly ForwardFamily[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', 'phi3'];

export type Activation = 'silu' | 'gelu_tanh' | 'gelu';

export interface ModelSpec {
  readonly family: ForwardFamily;
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly vocab: number;
  readonly eps: number;
  /** 1 for Gemma's norms, which multiply by (1 + w). */
  readonly normOffset: number;
  /** Gemma multiplies the embeddings by √hidden. */
  readonly embedScale: number;
  readonly activation: Activation;
  readonly rope: RopeSpec;
  /** Multiplies q·k (1/√head_dim, or Gemma 2's 1/√query_pre_attn_scalar). */
  readonly attentionScale: number;
  readonly attentionSoftcap: number | null;
  readonly finalSoftcap: number | null;
  /** Phi-3's fused qkv_proj and gate_up_proj. */
  readonly fused: boolean;
  /** Qwen 3's RMSNorm on each query and key head. */
  readonly qkNorm: boolean;
  /** Gemma 2's norms after attention and around the MLP. */
  readonly sandwichNorms: boolean;
  /** q/k/v (and o for Llama's attention_bias) carry biases. */
  readonly qkvBias: boolean;
  readonly oBias: boolean;
  readonly mlpBias: boolean;
  /** lm_head is embed_tokens (the weights use embed_tokens also when lm_head.weight is absent). */
  readonly tied: boolean;
  /** Longest sequence the forward pass accepts: the sliding window where there is one, else unbounded. */
  readonly maxSequence: number;
}

const MODEL_TYPES: Readonly<Record<string, ForwardFamily>> = {
  llama: 'llama',
  mistral: 'mistral',
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  gemma: 'gemma',
  gemma2: 'gemma2',
  phi3: 'phi3',
};

function positiveInt(config: Record<string, unknown>, key: string, model: string, fallback?: number): number {
  const value = config[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new ForwardModelError(model, `config.json: "${key}" must be a positive integer, found ${JSON.stringify(value)?.slice(0, 40)}`);
  }
  return value;
}

function optionalNumber(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function activationOf(name: unknown, model: string): Activation {
  if (name === 'silu' || name === 'swish') return 'silu';
  if (name === 'gelu_pytorch_tanh' || name === 'gelu_new' || name === 'gelu_fast') return 'gelu_tanh';
  if (name === 'gelu') return 'gelu';
  throw new ForwardModelError(model, `config.json: activation ${JSON.stringify(name)?.slice(0, 40)} is not supported (silu, gelu, gelu_pytorch_tanh)`);
}

/** Reads a model's config.json into a ModelSpec; a family or setting Alloy cannot run is refused here. */
export function modelSpecFromConfig(config: Record<string, unknown>, model: string): ModelSpec {
  const modelType = config.model_type;
  const family = typeof modelType === 'string' ? MODEL_TYPES[modelType] : undefined;
  if (!family) {
    throw new ForwardModelError(
      model,
      `model_type ${JSON.stringify(modelType)?.slice(0, 40)} is not supported by Alloy's forward pass ` +
        `(supported: ${FORWARD_FAMILIES.join(', ')})`,
    );
  }
  const hidden = positiveInt(config, 'hidden_size', model);
  const heads = positiveInt(config, 'num_attention_heads', model);
  const kvHeads = positiveInt(config, 'num_key_value_heads', model, heads);
  if (heads % kvHeads !== 0) throw new ForwardModelError(model, `config.json: ${heads} attention heads are not a multiple of ${kvHeads} key/value heads`);
  const headDim = config.head_dim === null || config.head_dim === undefined ? hidden / heads : positiveInt(config, 'head_dim', model);
  if (!Number.isInteger(headDim)) throw new ForwardModelError(model, `config.json: hidden_size ${hidden} is not a multiple of ${heads} heads and there is no head_dim`);
  const gemmaLike = family === 'gemma' || family === 'gemma2';
  const activation = gemmaLike
    ? activationOf(config.hidden_activation ?? 'gelu_pytorch_tanh', model)
    : activationOf(config.hidden_act ?? 'silu', model);
  const queryScalar = family === 'gemma2' ? optionalNumber(config.query_pre_attn_scalar) ?? headDim : headDim;
  const attentionBias = config.attention_bias === true;
  // Sliding-window attention is not implemented: sequences are capped at the window, where the
  // windowed and the full causal mask agree.
  const slidingWindow = optionalNumber(config.sliding_window);
  const usesSliding =
    slidingWindow !== null &&
    (family === 'mistral' || family === 'gemma2' || family === 'phi3' || ((family === 'qwen2' || family === 'qwen3') && config.use_sliding_window === true));
  return {
    family,
    hidden,
    intermediate: positiveInt(config, 'intermediate_size', model),
    layers: positiveInt(config, 'num_hidden_layers', model),
    heads,
    kvHeads,
    headDim,
    vocab: positiveInt(config, 'vocab_size', model),
    eps: optionalNumber(config.rms_norm_eps) ?? 1e-6,
    normOffset: gemmaLike ? 1 : 0,
    embedScale: gemmaLike ? Math.fround(Math.sqrt(hidden)) : 1,
    activation,
    rope: ropeSpecFromConfig(config, headDim, model),
    attentionScale: 1 / Math.sqrt(queryScalar),
    attentionSoftcap: family === 'gemma2' ? optionalNumber(config.attn_logit_softcapping) : null,
    finalSoftcap: family === 'gemma2' ? optionalNumber(config.final_logit_softcapping) : null,
    fused: family === 'phi3',
    qkNorm: family === 'qwen3',
    sandwichNorms: family === 'gemma2',
    qkvBias: family === 'qwen2' || attentionBias,
    oBias: attentionBias && family !== 'qwen2',
    mlpBias: config.mlp_bias === true,
    // transformers' default differs by family (true for Gemma, false for the others).
    tied: typeof config.tie_word_embeddings === 'boolean' ? config.tie_word_embeddings : gemmaLike,
    maxSequence: usesSliding ? (slidingWindow as number) : Number.POSITIVE_INFINITY,
  };
}
