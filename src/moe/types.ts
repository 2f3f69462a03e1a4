import type { ConfigDtype, ModelReference, MoeExpert } from '../config';
import type { FloatDtype, ModelFolder, ModelTensors, SafetensorsDtype, TensorInfo } from '../storage';
import type { MoeLayout, OutputArchitecture } from './architectures';

/** Where the models of a MoE config come from: the caller resolves references (local folder, Hub, OPFS). */
export interface MoeSources {
  /**
   * The folder of a model the config names. `yamlPath` (`experts[1].source_model`) is for the
   * caller's own errors, e.g. a folder that does not exist.
   */
  folder(reference: ModelReference, yamlPath: string): Promise<ModelFolder> | ModelFolder;
}

export interface MoeOptions {
  /** Seed of random routers and `noise_scale` noise. Default 0. */
  readonly seed?: number;
  /** Default 'per-expert' (what Transformers 4, llama.cpp and vLLM read); 'fused' for Mixtral and Qwen3 MoE only. */
  readonly layout?: MoeLayout;
  /** Overrides the config's `dtype`. */
  readonly dtype?: ConfigDtype;
  /** Bytes per output shard; default mergekit's 5B. */
  readonly outShardSize?: number;
  /** Default true: copy the base model's tokenizer files (with its chat template). */
  readonly copyTokenizer?: boolean;
  /** Default true: README.md and mergekit_moe_config.yml. */
  readonly writeModelCard?: boolean;
  /** mergekit-moe's --i-understand-this-is-not-useful-without-training: allow every expert to be the same model. */
  readonly allowAllSame?: boolean;
  /** Largest block of a tensor read, converted and written at once. Default 32 MiB. */
  readonly blockBytes?: number;
  /** Prompts per forward-pass batch for `hidden` gates. Default 8. */
  readonly promptBatch?: number;
  /** The YAML text, written as mergekit_moe_config.yml and quoted in the model card. */
  readonly configText?: string;
  /** Title of the model card (the output folder's name). */
  readonly outputName?: string;
  readonly signal?: AbortSignal;
}

/** `gates`: prompt batches (hidden modes) or experts (cheap_embed) done; `weights`: tensors written. */
export type MoeProgress =
  | { readonly phase: 'gates'; readonly done: number; readonly total: number }
  | { readonly phase: 'weights'; readonly done: number; readonly total: number; readonly tensor: string; readonly bytesWritten: number }
  | { readonly phase: 'done'; readonly done: number; readonly total: number };

export interface MoeReport {
  readonly architecture: string;
  readonly layout: MoeLayout;
  readonly experts: number;
  readonly layers: number;
  readonly tensors: number;
  readonly bytesWritten: number;
  /** Degenerate routing and other notes, as sentences. */
  readonly warnings: readonly string[];
  /** Per layer, the router matrix [experts (+ a gated shared expert), hidden] as written before dtype rounding. */
  readonly routers: readonly Float32Array[];
}

/** One model the config names, opened: its config.json and safetensors headers. */
export interface OpenedModel {
  readonly key: string;
  /** The first YAML path that names it. */
  readonly path: string;
  readonly folder: ModelFolder;
  readonly config: Readonly<Record<string, unknown>>;
  tensors?: ModelTensors;
}

/** An expert that gets a gate vector (routed experts, then a gated shared expert), with its prompts tokenised. */
export interface GatedExpert {
  readonly expert: MoeExpert;
  readonly path: string;
  readonly positive: readonly (readonly number[])[];
  readonly negative: readonly (readonly number[])[];
}

export type TensorPart =
  | {
      readonly kind: 'copy';
      readonly model: OpenedModel;
      readonly info: TensorInfo;
      /** An expert's MLP weight: noise_scale and (down_proj) residual_scale apply. */
      readonly expert?: { readonly settings: MoeExpert; readonly residual: boolean; readonly label: string };
    }
  | { readonly kind: 'router'; readonly layer: number; readonly rows: 'routed' | 'shared' }
  | { readonly kind: 'zeros'; readonly elements: number };

export interface OutputTensor {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Concatenated in order (a fused tensor is several experts' weights). */
  readonly parts: readonly TensorPart[];
}

export interface MoePlan {
  readonly architecture: OutputArchitecture;
  readonly layout: MoeLayout;
  readonly base: OpenedModel;
  readonly layers: number;
  readonly hidden: number;
  readonly routedExperts: number;
  readonly gated: readonly GatedExpert[];
  readonly outDtype: FloatDtype | null;
  readonly outConfig: Record<string, unknown>;
  readonly tensors: readonly OutputTensor[];
  readonly tokenizerFiles: readonly string[];
  readonly warnings: readonly string[];
}
