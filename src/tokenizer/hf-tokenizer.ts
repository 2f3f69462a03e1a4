/**
 * Hugging Face tokenizer files (`tokenizer.json`, `tokenizer_config.json`,
 * `special_tokens_map.json`, `chat_template.jinja`) read as plain data: the model's vocabulary and
 * the added tokens, with ids as `transformers` assigns them. Only what merging needs is
 * interpreted; everything else is kept as parsed so that it is written back unchanged.
 *
 * Token strings are user data ("__proto__", "constructor", "0"…): they only ever live in Maps,
 * and objects built from them go through `Object.fromEntries`.
 */

/** The texts of a model's tokenizer files; null where the model has no such file. */
export interface TokenizerFiles {
  readonly tokenizerJson: string | null;
  readonly tokenizerConfig: string | null;
  readonly specialTokensMap: string | null;
  readonly chatTemplateJinja: string | null;
}

/** How an added token is matched (the fields of `tokenizers`' AddedToken). */
export interface AddedTokenSettings {
  readonly content: string;
  readonly single_word: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly normalized: boolean;
  readonly special: boolean;
}

export interface AddedToken extends AddedTokenSettings {
  readonly id: number;
}

/** A parsed fast tokenizer. */
export interface HfTokenizer {
  /** tokenizer.json as parsed; `model.vocab`, `model.merges` and `added_tokens` are re-derived when written. */
  readonly json: Readonly<Record<string, unknown>>;
  /** tokenizer_config.json as parsed, or null. */
  readonly config: Readonly<Record<string, unknown>> | null;
  /** special_tokens_map.json as parsed, or null. */
  readonly specialTokensMap: Readonly<Record<string, unknown>> | null;
  /** `model.type` of tokenizer.json (BPE, WordPiece, Unigram, WordLevel). */
  readonly modelType: string;
  /** The model's own vocabulary, token → id. */
  readonly modelVocab: ReadonlyMap<string, number>;
  /** BPE merges as stored (strings "a b" or pairs), [] for other models. */
  readonly merges: readonly unknown[];
  /** Added tokens, ascending ids. */
  readonly added: readonly AddedToken[];
}

/** A tokenizer file that cannot be used; the message says which and why. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TokenizerError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new TokenizerError(`${what} is not a JSON object`);
  return value;
}

const FLAG_DEFAULTS = { single_word: false, lstrip: false, rstrip: false } as const;

function readAddedToken(raw: unknown, id: number, what: string): AddedToken {
  if (!isObject(raw) || typeof raw.content !== 'string') throw new TokenizerError(`${what}: an added token without a string "content"`);
  const flag = (name: keyof AddedTokenSettings, fallback: boolean): boolean => (typeof raw[name] === 'boolean' ? (raw[name] as boolean) : fallback);
  const special = flag('special', false);
  return {
    id,
    content: raw.content,
    single_word: flag('single_word', FLAG_DEFAULTS.single_word),
    lstrip: flag('lstrip', FLAG_DEFAULTS.lstrip),
    rstrip: flag('rstrip', FLAG_DEFAULTS.rstrip),
    // tokenizers' default: special tokens are not normalized, the others are.
    normalized: flag('normalized', !special),
    special,
  };
}

function readModelVocab(model: Record<string, unknown>, what: string): Map<string, number> {
  const vocab = new Map<string, number>();
  const raw = model.vocab;
  if (Array.isArray(raw)) {
    // Unigram: [[token, score], …], the id is the position.
    raw.forEach((entry, id) => {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') throw new TokenizerError(`${what}: model.vocab entry ${id} is not [token, score]`);
      if (!vocab.has(entry[0])) vocab.set(entry[0], id);
    });
    return vocab;
  }
  if (!isObject(raw)) throw new TokenizerError(`${what}: model.vocab is missing`);
  for (const [token, id] of Object.entries(raw)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new TokenizerError(`${what}: token ${JSON.stringify(token)} has the invalid id ${JSON.stringify(id)}`);
    vocab.set(token, id);
  }
  return vocab;
}

/**
 * Parses a model's tokenizer files. `where` names the model in messages. The added tokens are
 * those of tokenizer.json, with `added_tokens_decoder` of tokenizer_config.json applied on top as
 * transformers does when it loads them (settings from the config, tokens only listed there added).
 */
export function parseTokenizer(files: TokenizerFiles, where: string): HfTokenizer {
  if (files.tokenizerJson === null) {
    throw new TokenizerError(
      `model ${where} has no tokenizer.json. Building a tokenizer needs the fast (tokenizer.json) form; ` +
        'convert it once with transformers (AutoTokenizer.from_pretrained(...).save_pretrained(...)).',
    );
  }
  const json = parseJsonObject(files.tokenizerJson, `tokenizer.json of ${where}`);
  const config = files.tokenizerConfig !== null ? parseJsonObject(files.tokenizerConfig, `tokenizer_config.json of ${where}`) : null;
  const specialTokensMap = files.specialTokensMap !== null ? parseJsonObject(files.specialTokensMap, `special_tokens_map.json of ${where}`) : null;
  const what = `tokenizer.json of ${where}`;
  if (!isObject(json.model)) throw new TokenizerError(`${what} has no "model"`);
  const model = json.model;
  const modelType = typeof model.type === 'string' ? model.type : guessModelType(model);
  const modelVocab = readModelVocab(model, what);
  const merges = Array.isArray(model.merges) ? model.merges : [];

  const byId = new Map<number, AddedToken>();
  const rawAdded = json.added_tokens ?? [];
  if (!Array.isArray(rawAdded)) throw new TokenizerError(`${what}: added_tokens is not a list`);
  for (const raw of rawAdded) {
    const id = isObject(raw) ? raw.id : undefined;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new TokenizerError(`${what}: an added token without a valid id`);
    byId.set(id, readAddedToken(raw, id, what));
  }
  const decoder = config?.added_tokens_decoder;
  if (isObject(decoder)) {
    for (const [key, raw] of Object.entries(decoder)) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0) continue;
      byId.set(id, readAddedToken(raw, id, `tokenizer_config.json of ${where}`));
    }
  }
  const added = [...byId.values()].sort((a, b) => a.id - b.id);
  return { json, config, specialTokensMap, modelType, modelVocab, merges, added };
}

/** tokenizers writes `type` since 0.13; older files are told apart by their fields. */
function guessModelType(model: Record<string, unknown>): string {
  if (Array.isArray(model.vocab)) return 'Unigram';
  if ('merges' in model) return 'BPE';
  if ('max_input_chars_per_word' in model) return 'WordPiece';
  return 'WordLevel';
}

/** The whole vocabulary (model vocabulary plus added tokens), token → id, like `get_vocab()`. */
export function fullVocab(tokenizer: HfTokenizer): Map<string, number> {
  const vocab = new Map(tokenizer.modelVocab);
  for (const t of tokenizer.added) vocab.set(t.content, t.id);
  return vocab;
}
