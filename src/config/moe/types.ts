import type { ConfigDtype, ModelReference } from '../types';

/**
 * A mergekit-moe config (docs/config.md §8): the base model donates attention, norms,
 * embeddings and lm_head; each expert donates its MLPs; the router is built from prompts (or
 * randomly). Keys keep mergekit's snake_case, like MergeConfig.
 */
export interface MoeExpert {
  source_model: ModelReference;
  /** Prompts whose hidden states (or embeddings) should route to this expert. */
  positive_prompts?: string[];
  /** Prompts whose representation is subtracted from the positive ones. */
  negative_prompts?: string[];
  /** Standard deviation of Gaussian noise added to the copied MLP weights. */
  noise_scale?: number;
  /** Factor applied to the expert's down_proj (residual output). */
  residual_scale?: number;
}

/**
 * How router weights are made: from hidden states of the prompts (`hidden`, the default; `hidden_avg`
 * averages over the sequence, `hidden_last` is `hidden`), from token embeddings (`cheap_embed`), or
 * randomly (`random`: normal; `uniform_random`: like nn.Linear's initialisation).
 */
export type MoeGateMode = 'hidden' | 'cheap_embed' | 'random' | 'uniform_random' | 'hidden_avg' | 'hidden_last';

export interface MoeConfig {
  base_model: ModelReference;
  experts: MoeExpert[];
  /** Default `hidden`. */
  gate_mode: MoeGateMode;
  dtype?: ConfigDtype;
  /** Default 2. */
  experts_per_token: number;
  /** At most one; only DeepSeek MoE and Qwen MoE outputs have them. */
  shared_experts?: MoeExpert[];
  /** Case-insensitive prefix of an output architecture name (MOE_OUTPUT_ARCHITECTURES). */
  architecture?: string;
}
