import type { FloatDtype, SafetensorsDtype, TensorInfo } from '../storage/types';
import type { DefaultEmbeddingRows } from '../tokenizer';

/** One input of a tensor merge: where its bytes are and the per-model parameters resolved for it. */
export interface TensorInput {
  /** Key of the model in `MergePlan.models` (the model reference as written in the config). */
  readonly model: string;
  readonly tensor: TensorInfo;
  /** Per-model ("tensor") parameters of the method, resolved for this tensor (absent = unset). */
  readonly params: Readonly<Record<string, number>>;
  /**
   * Set on an embedding aligned to a new vocabulary (docs/tokenizers.md §3; `TensorJob.alignment`):
   * for each token row of the aligned matrix, the row of this input's own tensor, or -1 where the
   * row is the job's default row. The input then reads as `[job.shape[0], hidden]`.
   */
  readonly rowMap?: Int32Array;
  /**
   * The LoRA adapter of a `model+lora` input that targets this tensor (docs/lora.md): the engine
   * adds `scale·B·A` to each chunk of rows, or reads `tensor` from the adapter (modules_to_save).
   */
  readonly adapter?: TensorAdapter;
}

/** What a `model+lora` adapter does to one input tensor. */
export type TensorAdapter =
  | {
      readonly kind: 'lora';
      /** The adapter as the config names it (messages). */
      readonly adapter: string;
      /** Key the engine opens the adapter's files by (`adapterSourceKey`). */
      readonly source: string;
      /** lora_A and lora_B (or lora_embedding_A/B) in the adapter's files. */
      readonly a: TensorInfo;
      readonly b: TensorInfo;
      readonly rank: number;
      /** lora_alpha / r, or lora_alpha / √r with use_rslora (per-module patterns applied). */
      readonly scale: number;
      /** ΔW = (B·A)ᵀ: fan_in_fan_out (Conv1D weights stored [in, out]) and embeddings. */
      readonly transposed: boolean;
    }
  /** modules_to_save: the input's `tensor` is the adapter's full copy, read from `source`. */
  | { readonly kind: 'replace'; readonly adapter: string; readonly source: string };

/** What the inputs of an embedding job aligned to a new vocabulary share (their `rowMap`s aside). */
export interface VocabularyAlignment {
  /**
   * Rows `[0, tokens)` are tokens; rows `[tokens, shape[0])` are padding (`pad_to_multiple_of`),
   * each the mean of that input's aligned token rows.
   */
  readonly tokens: number;
  /** The default rows (means of other inputs' rows, indices into `TensorJob.inputs`). */
  readonly defaults: DefaultEmbeddingRows;
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
  /** An embedding (embed_tokens / lm_head / wte…): rows may be cut to the smallest input (docs/methods.md §1). */
  readonly isEmbed: boolean;
  /** Bytes of the output tensor. */
  readonly byteLength: number;
  /** Set when every input is an embedding aligned to the output vocabulary (each has a `rowMap`). */
  readonly alignment?: VocabularyAlignment;
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
  /** What happens to the tokenizer (absent when no tokenizer file is written). */
  readonly tokenizer?: TokenizerSummary;
  /** Seed of the random methods (recorded in the model card). */
  readonly randomSeed: number;
  readonly totalInputBytes: number;
  readonly totalOutputBytes: number;
}

/** The output tokenizer, for the plan preview. */
export interface TokenizerSummary {
  /** `copied from MODEL`, or the built vocabulary's source: `union`, `base (MODEL)`, `MODEL`. */
  readonly source: string;
  /** Tokens of a built vocabulary and the embedding rows (vocab_size) after padding. */
  readonly tokens?: number;
  readonly rows?: number;
  /** The chat template written, when `chat_template` is set. */
  readonly chatTemplate?: string;
}

export type { FloatDtype };
