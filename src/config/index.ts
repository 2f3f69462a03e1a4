/**
 * Merge configs (mergekit YAML, MERGEKIT_SPEC.md §2): parse and validate with errors that point at
 * the YAML path and line, resolve parameters per tensor, turn a config into output slices, and write
 * it back as YAML.
 */
export type {
  ConditionalSetting,
  ConfigDtype,
  InputModelDefinition,
  InputSliceDefinition,
  MergeConfig,
  ModelReference,
  OutputModuleDefinition,
  OutputSliceDefinition,
  ParameterSetting,
  Parameters,
  TokenSource,
  TokenizerConfig,
} from './types';
export { ConfigError, formatIssue, type ConfigIssue } from './errors';
export {
  formatModelReference,
  LORA_UNSUPPORTED_MESSAGE,
  parseModelReference,
  sameModel,
} from './model-reference';
export { parseMergeConfig, type ParsedMergeConfig } from './parse';
export { BUILTIN_CHAT_TEMPLATES, validateConfig } from './validate';
export { validateMethod } from './validate-method';
export {
  evaluateGradient,
  evaluateSetting,
  filterMatches,
  layerT,
  PRE_POST_LAYER_T,
  resolveParameter,
} from './resolve';
export { toOutputSlices } from './slices';
export { configToYaml } from './serialize';
export { DTYPES } from './read-config';
