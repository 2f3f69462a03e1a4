import type { MoeOutputArchitecture } from '../config';

/**
 * The four output architectures mergekit-moe writes (docs/moe.md §3): how each names its tensors
 * and what its config.json holds. The tensor layouts follow what each architecture's Transformers
 * 4.x class loads; `fused` is the Transformers 5 layout mergekit's newest releases write for
 * Mixtral and Qwen3 MoE.
 */

export type MoeLayout = 'per-expert' | 'fused';
export type MlpProjection = 'gate_proj' | 'up_proj' | 'down_proj';
export const MLP_PROJECTIONS: readonly MlpProjection[] = ['gate_proj', 'up_proj', 'down_proj'];

export interface OutputArchitecture {
  readonly name: MoeOutputArchitecture;
  /** The layouts this architecture can be written in (per-expert always). */
  readonly layouts: readonly MoeLayout[];
  /** Qwen2-MoE always has q/k/v biases: a base without them gets zeros (as mergekit does). */
  readonly needsAttentionBias: boolean;
  /** One expert's projection in the per-expert layout. */
  expertTensor(layer: number, expert: number, projection: MlpProjection): string;
  /** The fused v5 tensors: experts' gate and up stacked ([E, 2I, H]), and down ([E, H, I]). */
  fusedTensor(layer: number, which: 'gate_up_proj' | 'down_proj'): string;
  /** The router [experts, hidden]; Transformers 5's fused Mixtral keeps it at mlp.gate. */
  routerTensor(layer: number, layout: MoeLayout): string;
  sharedExpertTensor(layer: number, projection: MlpProjection): string | null;
  /** The shared expert's own gate ([1, H]), for architectures that gate it. */
  sharedGateTensor(layer: number): string | null;
  /** config.json of the result, from the base model's. */
  config(base: Readonly<Record<string, unknown>>, counts: ExpertCounts): Record<string, unknown>;
}

export interface ExpertCounts {
  readonly experts: number;
  readonly shared: number;
  readonly perToken: number;
  /** `torch_dtype` to record (null: keep the base's). */
  readonly dtypeName: string | null;
}

const layerPrefix = (layer: number): string => `model.layers.${layer}`;
const mlpExpert = (layer: number, expert: number, projection: MlpProjection): string => `${layerPrefix(layer)}.mlp.experts.${expert}.${projection}.weight`;
const mlpFused = (layer: number, which: string): string => `${layerPrefix(layer)}.mlp.experts.${which}`;
const mlpGate = (layer: number): string => `${layerPrefix(layer)}.mlp.gate.weight`;

/** Records the output dtype where transformers 4 (`torch_dtype`) and 5 (`dtype`) read it. */
function withDtype(config: Record<string, unknown>, dtypeName: string | null): Record<string, unknown> {
  if (dtypeName === null) return config;
  config.torch_dtype = dtypeName;
  if ('dtype' in config) config.dtype = dtypeName;
  return config;
}

const MIXTRAL_W: Readonly<Record<MlpProjection, string>> = { gate_proj: 'w1', down_proj: 'w2', up_proj: 'w3' };

const mixtral: OutputArchitecture = {
  name: 'Mixtral',
  layouts: ['per-expert', 'fused'],
  needsAttentionBias: false,
  expertTensor: (layer, expert, projection) => `${layerPrefix(layer)}.block_sparse_moe.experts.${expert}.${MIXTRAL_W[projection]}.weight`,
  fusedTensor: mlpFused,
  routerTensor: (layer, layout) => (layout === 'fused' ? mlpGate(layer) : `${layerPrefix(layer)}.block_sparse_moe.gate.weight`),
  sharedExpertTensor: () => null,
  sharedGateTensor: () => null,
  config: (base, c) =>
    withDtype(
      {
        // MixtralConfig's own defaults for what a dense config lacks, then the base's values.
        output_router_logits: false,
        router_aux_loss_coef: 0.001,
        router_jitter_noise: 0.0,
        ...base,
        architectures: ['MixtralForCausalLM'],
        model_type: 'mixtral',
        num_local_experts: c.experts,
        num_experts_per_tok: c.perToken,
        sliding_window: null,
      },
      c.dtypeName,
    ),
};

const qwen2: OutputArchitecture = {
  name: 'Qwen MoE',
  layouts: ['per-expert'],
  needsAttentionBias: true,
  expertTensor: mlpExpert,
  fusedTensor: mlpFused,
  routerTensor: mlpGate,
  sharedExpertTensor: (layer, projection) => `${layerPrefix(layer)}.mlp.shared_expert.${projection}.weight`,
  sharedGateTensor: (layer) => `${layerPrefix(layer)}.mlp.shared_expert_gate.weight`,
  config: (base, c) =>
    withDtype(
      {
        output_router_logits: false,
        router_aux_loss_coef: 0.001,
        mlp_only_layers: [],
        ...base,
        architectures: ['Qwen2MoeForCausalLM'],
        model_type: 'qwen2_moe',
        num_experts: c.experts,
        num_experts_per_tok: c.perToken,
        decoder_sparse_step: 1,
        norm_topk_prob: true,
        sliding_window: null,
        use_sliding_window: false,
        shared_expert_intermediate_size: base.intermediate_size,
        moe_intermediate_size: base.intermediate_size,
      },
      c.dtypeName,
    ),
};

const qwen3: OutputArchitecture = {
  name: 'Qwen3 MoE',
  layouts: ['per-expert', 'fused'],
  needsAttentionBias: false,
  expertTensor: mlpExpert,
  fusedTensor: mlpFused,
  routerTensor: mlpGate,
  sharedExpertTensor: () => null,
  sharedGateTensor: () => null,
  config: (base, c) =>
    withDtype(
      {
        output_router_logits: false,
        router_aux_loss_coef: 0.001,
        mlp_only_layers: [],
        ...base,
        architectures: ['Qwen3MoeForCausalLM'],
        model_type: 'qwen3_moe',
        num_experts: c.experts,
        num_experts_per_tok: c.perToken,
        decoder_sparse_step: 1,
        norm_topk_prob: true,
        moe_intermediate_size: base.intermediate_size,
      },
      c.dtypeName,
    ),
};

const deepseek: OutputArchitecture = {
  name: 'DeepSeek MoE',
  layouts: ['per-expert'],
  needsAttentionBias: false,
  expertTensor: mlpExpert,
  fusedTensor: mlpFused,
  routerTensor: mlpGate,
  sharedExpertTensor: (layer, projection) => `${layerPrefix(layer)}.mlp.shared_experts.${projection}.weight`,
  sharedGateTensor: () => null,
  // DeepSeek MoE is a remote-code model: config.json points at deepseek-moe-16b-base's code.
  config: (base, c) =>
    withDtype(
      {
        ...base,
        architectures: ['DeepseekForCausalLM'],
        model_type: 'deepseek',
        n_routed_experts: c.experts,
        n_shared_experts: c.shared > 0 ? c.shared : null,
        num_experts_per_tok: c.perToken,
        first_k_dense_replace: 0,
        moe_layer_freq: 1,
        scoring_func: 'softmax',
        norm_topk_prob: true,
        moe_intermediate_size: base.intermediate_size,
        auto_map: {
          AutoConfig: 'deepseek-ai/deepseek-moe-16b-base--configuration_deepseek.DeepseekConfig',
          AutoModel: 'deepseek-ai/deepseek-moe-16b-base--modeling_deepseek.DeepseekModel',
          AutoModelForCausalLM: 'deepseek-ai/deepseek-moe-16b-base--modeling_deepseek.DeepseekForCausalLM',
        },
      },
      c.dtypeName,
    ),
};

export const OUTPUT_ARCHITECTURES: Readonly<Record<MoeOutputArchitecture, OutputArchitecture>> = {
  Mixtral: mixtral,
  'DeepSeek MoE': deepseek,
  'Qwen MoE': qwen2,
  'Qwen3 MoE': qwen3,
};
