import type { FloatDtype, SafetensorsDtype, TensorInfo } from '../storage/types';

/** One input of a tensor merge: where its bytes are and the per-model parameters resolved for it. */
export interface TensorInput {
  /** Key of the model in `MergePlan.models` (the model reference as written in the config). */
  readonly model: string;
  readonly tensor: TensorInfo;
  /** Per-model ("tensor") parameters of the method, resolved for this tensor (absent = unset). */
  readonly params: Readonly<Record<string, number>>;
}

/** Everything needed to produce one output tensor. */
export interface TensorJob {
  /** Output tensor name. */
  readonly name: string;
  readonly shape: readonly number[];
  /** Output dtype. Non-float tensors are only ever copied byte for byte. */
  readonly dtype: SafetensorsDtype;
  readonly method: string;
  readonly inputs: readonly TensorInput[];
  /** Index in `inputs` of the base model's tensor, or -1. */
  readonly baseIndex: number;
  /** Global parameters of the method, resolved for this tensor. */
  readonly params: Readonly<Record<string, number>>;
  /** An embedding (embed_tokens / lm_head / wte…): rows may be cut to the smallest input (§1.1). */
  readonly isEmbed: boolean;
  /** Bytes of the output tensor. */
  readonly byteLength: number;
}

export interface PlannedModel {
  readonly key: string;
  /** File names of its safetensors shards. */
  readonly files: readonly string[];
  readonly architecture: string;
  readonly numLayers: number;
}

export interface OutputShard {
  readonly file: string;
  /** Names of the tensors in this shard, in write order (a contiguous run of `MergePlan.jobs`). */
  readonly tensors: readonly string[];
  readonly byteLength: number;
}

export interface FileToCopy {
  readonly model: string;
  readonly file: string;
}

export interface MergePlan {
  readonly method: string;
  readonly models: readonly PlannedModel[];
  readonly jobs: readonly TensorJob[];
  readonly shards: readonly OutputShard[];
  /** Output files written as text (config.json, README.md, mergekit_config.yml, index…). */
  readonly textFiles: Readonly<Record<string, string>>;
  readonly copyFiles: readonly FileToCopy[];
  readonly warnings: readonly string[];
  /** Seed of the random methods (recorded in the model card). */
  readonly randomSeed: number;
  readonly totalInputBytes: number;
  readonly totalOutputBytes: number;
}

export type { FloatDtype };
