export type { MergePlan, TensorJob, TensorInput, PlannedModel, OutputShard, FileToCopy, TokenizerSummary, VocabularyAlignment, TensorAdapter } from './types';
export { adapterSourceKey, yamlPathOf } from './adapter-plan';
export { buildPlan, PlanError, referencedModels, type PlanOptions } from './build-plan';
export { loadModelMetadata, loadTokenizerFiles, needsTokenizerFiles, type MetadataOptions, type ModelMetadata } from './model-metadata';
export { renderModelCard } from './model-card';
export { TOKENIZER_FILES } from './tokenizer-files';
