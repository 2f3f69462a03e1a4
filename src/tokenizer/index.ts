/**
 * Tokenizers and vocabularies (docs/tokenizers.md §2–5): reading Hugging Face tokenizer files,
 * building the output vocabulary (base / union / a model's), each model's permutation into it,
 * the embedding alignment as data, chat templates, and writing the output tokenizer files. Pure
 * functions of file contents: no I/O, no weights.
 */
export {
  fullVocab,
  parseTokenizer,
  TokenizerError,
  type AddedToken,
  type AddedTokenSettings,
  type HfTokenizer,
  type TokenizerFiles,
} from './hf-tokenizer';
export {
  buildOutputVocabulary,
  plainTokenSettings,
  stripTokenizer,
  type OutputVocabulary,
  type VocabularyModel,
  type VocabularyOptions,
  type VocabularySource,
} from './build-vocabulary';
export {
  alignEmbedding,
  type AlignedInput,
  type AlignmentResult,
  type DefaultEmbeddingRows,
  type EmbeddingAlignment,
  type TokenEmbeddingRule,
  type TokenEmbeddingSource,
} from './embedding-alignment';
export { BUILTIN_CHAT_TEMPLATES, ownChatTemplate, resolveChatTemplate, type ResolvedChatTemplate } from './chat-template';
export { withChatTemplate, writeTokenizerFiles } from './write-tokenizer';

/** The tokenizer files a model folder may have, as read into `TokenizerFiles`. */
export const TOKENIZER_TEXT_FILES = {
  tokenizerJson: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
  chatTemplateJinja: 'chat_template.jinja',
} as const;
