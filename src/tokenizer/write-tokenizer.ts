import { fullVocab, type AddedToken, type HfTokenizer } from './hf-tokenizer';

/**
 * Writes a tokenizer as the files `transformers` loads (what `save_pretrained` writes for a fast
 * tokenizer): tokenizer.json with its added tokens, tokenizer_config.json with a matching
 * `added_tokens_decoder` (and the chat template), special_tokens_map.json. Everything else in
 * those files is kept as it was in the tokenizer they come from.
 */

const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n';

/** Replaces `key` in place (keeping the key order) or appends it. */
function withKey(object: Readonly<Record<string, unknown>>, key: string, value: unknown): Record<string, unknown> {
  const entries = Object.entries(object);
  const at = entries.findIndex(([k]) => k === key);
  if (at >= 0) entries[at] = [key, value];
  else entries.push([key, value]);
  return Object.fromEntries(entries);
}

function addedTokenEntry(t: AddedToken): Record<string, unknown> {
  return { id: t.id, content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special };
}

function decoderEntry(t: AddedToken): Record<string, unknown> {
  return { content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special };
}

/** `additional_special_tokens` without tokens the vocabulary no longer has (stripped padding tokens). */
function filterSpecialTokens(object: Readonly<Record<string, unknown>>, vocab: ReadonlyMap<string, number>): Record<string, unknown> {
  const list = object.additional_special_tokens;
  if (!Array.isArray(list)) return { ...object };
  const content = (t: unknown): unknown => (typeof t === 'object' && t !== null ? (t as Record<string, unknown>).content : t);
  const kept = list.filter((t) => typeof content(t) !== 'string' || vocab.has(content(t) as string));
  return kept.length === list.length ? { ...object } : withKey(object, 'additional_special_tokens', kept);
}

/** tokenizer_config.json's text with `chat_template` set (for a copied tokenizer). */
export function withChatTemplate(tokenizerConfigText: string, template: string): string {
  const config = JSON.parse(tokenizerConfigText) as Record<string, unknown>;
  return json(withKey(config, 'chat_template', template));
}

/**
 * The output tokenizer's files. `chatTemplate` replaces the tokenizer's own template when given;
 * otherwise tokenizer_config.json keeps the one it has.
 */
export function writeTokenizerFiles(tokenizer: HfTokenizer, chatTemplate: string | null): Record<string, string> {
  const vocab = fullVocab(tokenizer);
  const files: Record<string, string> = {};
  files['tokenizer.json'] = json(withKey(tokenizer.json, 'added_tokens', tokenizer.added.map(addedTokenEntry)));
  const decoder = Object.fromEntries(tokenizer.added.map((t) => [String(t.id), decoderEntry(t)]));
  let config = filterSpecialTokens(withKey(tokenizer.config ?? {}, 'added_tokens_decoder', decoder), vocab);
  if (chatTemplate !== null) config = withKey(config, 'chat_template', chatTemplate);
  files['tokenizer_config.json'] = json(config);
  if (tokenizer.specialTokensMap) files['special_tokens_map.json'] = json(filterSpecialTokens(tokenizer.specialTokensMap, vocab));
  return files;
}
