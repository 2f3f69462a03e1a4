import type { ModelMetadata } from './model-metadata';
import type { FileToCopy } from './types';

/** Files mergekit copies from the donor when it copies a tokenizer (docs/tokenizers.md §6). */
export const TOKENIZER_FILES: readonly string[] = [
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer.model',
  'added_tokens.json',
  'merges.txt',
  'chat_template.jinja',
  'generation_config.json',
  'chat_template.json',
  'video_preprocessor_config.json',
];

/**
 * The donor's tokenizer files, when it has a usable tokenizer: `tokenizer_config.json` plus
 * `tokenizer.json` or `tokenizer.model` (otherwise mergekit copies nothing either).
 */
export function tokenizerFilesToCopy(donor: ModelMetadata): FileToCopy[] {
  const files = new Set(donor.files);
  if (!files.has('tokenizer_config.json') || !(files.has('tokenizer.json') || files.has('tokenizer.model'))) return [];
  return TOKENIZER_FILES.filter((f) => files.has(f)).map((file) => ({ model: donor.key, file }));
}
