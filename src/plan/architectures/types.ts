/**
 * Architecture knowledge in mergekit's JSON format (single-module form of
 * `mergekit/_data/architectures/*.json`). Extra keys found in those files (`input_space`,
 * `output_space`, `head_split`, `is_kq`, `procedural_spaces`) are carried along but ignored.
 */

/** One tensor of a model, as described by an architecture. */
export interface WeightInfo {
  /** Tensor name; a template (`${layer_index}` …) inside `layer_templates`. */
  readonly name: string;
  /** An embedding or LM head: rows may differ between models (vocabulary size). */
  readonly is_embed?: boolean;
  /** May be absent from a checkpoint without error. */
  readonly optional?: boolean;
  /** Other names the same tensor may be stored under, tried in order when loading. */
  readonly aliases?: readonly string[];
  /** Tensors to read instead when this one is absent (lm_head → embed_tokens). */
  readonly tied_names?: readonly string[];
  /** Dtype the tensor must be written in (mergekit spelling, e.g. `int64`). */
  readonly force_dtype?: string;
}

export interface ArchitectureDefinition {
  /** `model_type` of config.json; `""` for an inferred architecture. */
  readonly model_type: string;
  /** Values of config.json's `architectures[0]` that this definition handles. */
  readonly architectures: readonly string[];
  readonly pre_weights: readonly WeightInfo[];
  readonly layer_templates: { readonly weights: readonly WeightInfo[] };
  readonly post_weights: readonly WeightInfo[];
  /** Config key (dots allowed: `text_config.num_hidden_layers`) holding the layer count. */
  readonly num_layers_config_key?: string;
  /** Fixed layer count that wins over the config (inferred architectures, projectors). */
  readonly override_num_layers?: number;
  /** Config key (dots allowed) holding the vocabulary size; `vocab_size` when absent. */
  readonly vocab_size_config_key?: string;
}

/** The tensors of a model with every template expanded. */
export interface ArchitectureWeights {
  readonly pre: WeightInfo[];
  /** `layers[i]` = the tensors of layer i. */
  readonly layers: WeightInfo[][];
  readonly post: WeightInfo[];
}
