/**
 * Architecture knowledge: which tensors a model has, per layer, in mergekit's JSON format.
 * Known architectures come from mergekit's own definition files (definitions/); unknown ones are
 * inferred from the checkpoints' tensor names.
 */
export type { ArchitectureDefinition, ArchitectureWeights, WeightInfo } from './types';
export { expandTemplate, architectureWeights } from './template';
export { ARCHITECTURES, findArchitecture, numLayers } from './registry';
export { inferArchitecture, type InferOptions } from './infer';
