/**
 * Merge configs (mergekit YAML, docs/config.md) and mergekit-moe configs (docs/config.md §8): validate
 * with errors that point at the YAML path and line (`validateConfigText`, what mergekit accepts),
 * parse for merging (`parseMergeConfig`, which also refuses what Alloy cannot run yet), resolve
 * parameters per tensor, turn a config into output slices, and write it back as YAML.
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
export { ConfigError, formatIssue, UnsupportedConfigError, type ConfigIssue } from './errors';
export { detectConfigKind, type ConfigKind } from './config-kind';
export { validateConfigText, type ConfigValidation } from './validate-text';
export { readYamlDocument, YAML_LIMITS, type YamlDocument } from './yaml-document';
export {
  formatModelReference,
  modelPathKind,
  parseModelReference,
  sameModel,
} from './model-reference';
export { parseMergeConfig, type ParsedMergeConfig } from './parse';
export { BUILTIN_CHAT_TEMPLATES, unsupportedByAlloy, validateConfig } from './validate';
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
export { layerRangeProblems, type LayerRangeProblem, type SourceRange } from './layer-ranges';
export { configToYaml } from './serialize';
export { DTYPES } from './read-config';
export { closest, didYouMean } from './suggest';
export * from './moe/index';
