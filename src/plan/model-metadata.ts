import { loadModelTensors } from '../storage';
import type { ModelFolder, ModelTensors } from '../storage/types';

/** What the planner knows of a model: its config.json, tensor headers and file list — never weights. */
export interface ModelMetadata {
  /** The model reference as written in the config (`formatModelReference`). */
  readonly key: string;
  readonly config: Record<string, unknown>;
  readonly tensors: ModelTensors;
  /** Every file of the model folder (to find tokenizer files to copy). */
  readonly files: readonly string[];
  /** Hub repo id when the model comes from the Hub (listed in the model card's `base_model`). */
  readonly hubRepo?: string;
}

/** Reads a model's metadata: config.json plus the safetensors headers (a few KB per shard). */
export async function loadModelMetadata(folder: ModelFolder, key: string, hubRepo?: string): Promise<ModelMetadata> {
  const text = await folder.readText('config.json');
  if (text === null) {
    throw new Error(
      `Model ${key} has no config.json (looked in ${folder.id}). Alloy needs the Hugging Face layout: ` +
        'config.json plus safetensors weights.',
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new Error(`config.json of model ${key} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new Error(`config.json of model ${key} is not a JSON object`);
  }
  const [tensors, files] = await Promise.all([loadModelTensors(folder), folder.listFiles()]);
  return { key, config: config as Record<string, unknown>, tensors, files, hubRepo };
}
