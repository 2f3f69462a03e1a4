import { Tokenizer } from '@huggingface/tokenizers';
import type { ModelFolder } from '../storage';
import { ForwardModelError } from './errors';

/**
 * Text → token ids with a model's own tokenizer.json, through Hugging Face's tokenizers.js (the
 * tokenizer code of transformers.js): BPE, WordPiece, Unigram, normalisers, pre-tokenisers and the
 * post-processor that adds BOS. Alloy does not implement tokenisation itself.
 */
export interface TextTokenizer {
  /**
   * Token ids with the special tokens the tokenizer's post-processor adds (e.g. BOS), or without
   * them when `addSpecialTokens` is false (special tokens written in the text are still recognised).
   */
  encode(text: string, addSpecialTokens?: boolean): number[];
  /** tokenizer_config.json's `bos_token` and `eos_token` as text (null when it names none). */
  readonly bosToken: string | null;
  readonly eosToken: string | null;
}

export async function loadTextTokenizer(folder: ModelFolder): Promise<TextTokenizer> {
  const text = await folder.readText('tokenizer.json');
  if (text === null) {
    throw new ForwardModelError(
      folder.id,
      'tokenizer.json is missing: Alloy tokenises text with the fast-tokenizer file only (tokenizer.model alone is not enough); ' +
        'copy tokenizer.json from the model the weights come from',
    );
  }
  const json = parseObject(text, folder.id, 'tokenizer.json');
  const configText = await folder.readText('tokenizer_config.json');
  const config = configText === null ? {} : parseObject(configText, folder.id, 'tokenizer_config.json');
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (error) {
    throw new ForwardModelError(folder.id, `tokenizer.json cannot be loaded (${String((error as Error).message ?? error).slice(0, 200)})`);
  }
  return {
    encode: (input, addSpecialTokens = true) => tokenizer.encode(input, { add_special_tokens: addSpecialTokens }).ids,
    bosToken: specialToken(config.bos_token),
    eosToken: specialToken(config.eos_token),
  };
}

/** A special token entry of tokenizer_config.json: a string or an AddedToken object with `content`. */
function specialToken(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return null;
}

function parseObject(text: string, model: string, file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ForwardModelError(model, `${file} is not valid JSON (${(error as Error).message.slice(0, 100)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ForwardModelError(model, `${file} is not a JSON object`);
  return value as Record<string, unknown>;
}
