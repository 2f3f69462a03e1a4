export type { MergePlan, TensorJob, TensorInput, PlannedModel, OutputShard, FileToCopy } from './types';
export { buildPlan, PlanError, referencedModels, type PlanOptions } from './build-plan';
export { loadModelMetadata, type ModelMetadata } from './model-metadata';
export { renderModelCard } from './model-card';
export { TOKENIZER_FILES } from './tokenizer-files';
