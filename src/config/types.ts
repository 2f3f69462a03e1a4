/**
 * The mergekit YAML schema (docs/config.md §1) as plain data. Keys keep mergekit's snake_case so
 * that a config object, the YAML text and the app's form are the same thing.
 */

/** A parameter value: scalar, gradient (list of numbers) or a list of filtered entries. */
export type ParameterSetting = number | string | number[] | ConditionalSetting[];

export interface ConditionalSetting {
  /** Substring of the tensor name; null/undefined/`*` match every tensor. */
  filter?: string | null;
  value: number | string | number[];
}

export type Parameters = Record<string, ParameterSetting>;

/** `path[@revision][+lora[@revision]]` or the dict form. */
export interface ModelReference {
  path: string;
  revision?: string;
  lora?: { path: string; revision?: string };
  override_architecture?: string;
}

export interface InputModelDefinition {
  model: ModelReference;
  parameters?: Parameters;
}

export interface InputSliceDefinition {
  model: ModelReference;
  layer_range: [number, number];
  parameters?: Parameters;
}

export interface OutputSliceDefinition {
  sources: InputSliceDefinition[];
  base_model?: ModelReference;
  parameters?: Parameters;
  residual_weight?: number;
}

export interface OutputModuleDefinition {
  models?: InputModelDefinition[];
  slices?: OutputSliceDefinition[];
  parameters?: Parameters;
}

export type TokenSource =
  | { kind: 'model'; model: ModelReference }
  | { kind: 'model_token'; model: ModelReference; token_id?: number; token?: string }
  | { kind: 'zero' };

export interface TokenizerConfig {
  source: 'union' | 'base' | ModelReference;
  tokens?: Record<string, { source?: TokenSource; force?: boolean }>;
  pad_to_multiple_of?: number;
}

/** Load / save dtype names as mergekit writes them (without the optional `torch.` prefix). */
export type ConfigDtype = 'bfloat16' | 'float16' | 'float32' | 'int64';

export interface MergeConfig {
  merge_method: string;
  /** Exactly one of models / slices / modules is set. */
  models?: InputModelDefinition[];
  slices?: OutputSliceDefinition[];
  modules?: Record<string, OutputModuleDefinition>;
  base_model?: ModelReference;
  parameters?: Parameters;
  dtype?: ConfigDtype;
  out_dtype?: ConfigDtype;
  tokenizer_source?: 'union' | 'base' | ModelReference;
  tokenizer?: TokenizerConfig;
  chat_template?: string;
}
