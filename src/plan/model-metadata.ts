import type { MergeConfig } from '../config/types';
import { loadModelTensors, untrustedText } from '../storage';
import type { ModelFolder, ModelTensors } from '../storage/types';
import { TOKENIZER_TEXT_FILES, type TokenizerFiles } from '../tokenizer';
import { PlanError } from './plan-error';

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
  /**
   * Texts of its tokenizer files, read only when the config builds a tokenizer or sets a chat
   * template (`needsTokenizerFiles`); undefined when they were not read.
   */
  readonly tokenizerFiles?: TokenizerFiles;
}

export interface MetadataOptions {
  /** Also read the tokenizer files (tokenizer.json can be tens of MB). */
  readonly tokenizer?: boolean;
}

/** Whether planning this config needs the models' tokenizer files (`MetadataOptions.tokenizer`). */
export function needsTokenizerFiles(config: MergeConfig): boolean {
  return config.tokenizer_source !== undefined || config.tokenizer !== undefined || config.chat_template !== undefined;
}

/** Reads a model's metadata: config.json plus the safetensors headers (a few KB per shard). */
export async function loadModelMetadata(
  folder: ModelFolder,
  key: string,
  hubRepo?: string,
  options: MetadataOptions = {},
): Promise<ModelMetadata> {
  const text = await folder.readText('config.json');
  if (text === null) {
    // A wrong folder rather than a broken merge: a PlanError (the CLI exits 2).
    throw new PlanError(
      `Model ${untrustedText(key)} has no config.json (looked in ${untrustedText(folder.id)}). Alloy needs the Hugging Face layout: ` +
        'config.json plus safetensors weights.',
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new Error(`config.json of model ${untrustedText(key)} is not valid JSON: ${untrustedText((error as Error).message)}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new Error(`config.json of model ${untrustedText(key)} is not a JSON object`);
  }
  const [tensors, files] = await Promise.all([loadModelTensors(folder), folder.listFiles()]);
  const tokenizerFiles = options.tokenizer ? await loadTokenizerFiles(folder, files) : undefined;
  return { key, config: config as Record<string, unknown>, tensors, files, hubRepo, tokenizerFiles };
}

/**
 * Reads a model's tokenizer files (for metadata loaded without them:
 * `{ ...meta, tokenizerFiles: await loadTokenizerFiles(folder, meta.files) }`).
 */
export async function loadTokenizerFiles(folder: ModelFolder, files: readonly string[]): Promise<TokenizerFiles> {
  const read = async (file: string): Promise<string | null> => (files.includes(file) ? folder.readText(file) : null);
  const [tokenizerJson, tokenizerConfig, specialTokensMap, chatTemplateJinja] = await Promise.all([
    read(TOKENIZER_TEXT_FILES.tokenizerJson),
    read(TOKENIZER_TEXT_FILES.tokenizerConfig),
    read(TOKENIZER_TEXT_FILES.specialTokensMap),
    read(TOKENIZER_TEXT_FILES.chatTemplateJinja),
  ]);
  return { tokenizerJson, tokenizerConfig, specialTokensMap, chatTemplateJinja };
}
