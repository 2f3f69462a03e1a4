import type { WeightInfo } from './architectures';
import type { ModelMetadata } from './model-metadata';
import type { TensorInfo } from '../storage/types';

/** Whether a model stores the weight under its name or an alias (tied names not counted, docs/pipeline.md §5). */
export function hasOwnTensor(model: ModelMetadata, weight: WeightInfo): boolean {
  return [weight.name, ...(weight.aliases ?? [])].some((n) => model.tensors.tensors.has(n));
}

/** The model's tensor for a weight: its name, then aliases, then tied names (lm_head → embed_tokens). */
export function findTensor(model: ModelMetadata, weight: WeightInfo): TensorInfo | undefined {
  for (const name of [weight.name, ...(weight.aliases ?? []), ...(weight.tied_names ?? [])]) {
    const t = model.tensors.tensors.get(name);
    if (t) return t;
  }
  return undefined;
}
