import { fullVocab, TokenizerError, type AddedToken, type AddedTokenSettings, type HfTokenizer } from './hf-tokenizer';

/**
 * The output vocabulary of a merge and every model's permutation into it (docs/tokenizers.md §2,
 * mergekit's `build_tokenizer`). Pure: tokenizers in, tokenizer and permutations out.
 */

/** One model taking part in the merge, as the vocabulary builder sees it. */
export interface VocabularyModel {
  /** The model's key (its reference as written in the config). */
  readonly key: string;
  /** Its tokenizer, or null when it has none; it is then taken to share the base model's (as mergekit does). */
  readonly tokenizer: HfTokenizer | null;
  /** `vocab_size` of its config.json (or the architecture's vocab_size_config_key); undefined if absent. */
  readonly vocabSize: number | undefined;
}

/** `tokenizer.source`: the union of all vocabularies, the base model's, or one model's (by key). */
export type VocabularySource = 'union' | 'base' | { readonly model: string };

export interface VocabularyOptions {
  /** Key of the base model (`base_model`, else the first model): it must have a tokenizer. */
  readonly base: string;
  /** Every model of the merge, the base included, in config order. */
  readonly models: readonly VocabularyModel[];
  readonly source: VocabularySource;
  /** Token strings of `tokenizer.tokens`, added when missing. */
  readonly addTokens?: readonly string[];
  readonly padToMultipleOf?: number;
}

export interface OutputVocabulary {
  /** The output tokenizer (written with `writeTokenizerFiles`). */
  readonly tokenizer: HfTokenizer;
  /** Key of the model whose tokenizer files the output is based on (its config and special tokens). */
  readonly sourceModel: string;
  /** Token of each output id (null for an id no token has). */
  readonly tokens: readonly (string | null)[];
  /** Number of tokens, `len(tokenizer.get_vocab())`: rows [0, size) of the embeddings are tokens. */
  readonly size: number;
  /** `size` rounded up to `pad_to_multiple_of`: the output embedding rows and config vocab_size. */
  readonly paddedSize: number;
  /** Per model key: for each output id, the model's own id of that token, or -1 when it has none. */
  readonly permutations: ReadonlyMap<string, Int32Array>;
  /** Per model key: the vocabulary ids are looked up in (`model_token` by string). */
  readonly originalVocabs: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly warnings: readonly string[];
}

/** Settings `tokenizer.add_tokens("text")` gives a plain string. */
export function plainTokenSettings(content: string): AddedTokenSettings {
  return { content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: false };
}

function sameSettings(a: AddedTokenSettings, b: AddedTokenSettings): boolean {
  return (
    a.content === b.content &&
    a.single_word === b.single_word &&
    a.lstrip === b.lstrip &&
    a.rstrip === b.rstrip &&
    a.normalized === b.normalized &&
    a.special === b.special
  );
}

function examples(tokens: readonly string[], max = 3): string {
  const shown = tokens.slice(0, max).map((t) => JSON.stringify(t)).join(', ');
  return tokens.length > max ? `${shown}, …` : shown;
}

/**
 * A tokenizer being extended with `add_tokens`, assigning ids as the `tokenizers` library does: a
 * token already in the vocabulary keeps its id (and becomes an added token), an existing added
 * token is left as it is, and a new one gets the next id after the model vocabulary and the
 * added tokens.
 */
class TokenizerBuilder {
  private readonly added: AddedToken[];
  private readonly addedContents: Set<string>;
  private maxAddedId: number;

  constructor(private readonly base: HfTokenizer) {
    this.added = [...base.added];
    this.addedContents = new Set(base.added.map((t) => t.content));
    this.maxAddedId = base.added.reduce((m, t) => Math.max(m, t.id), -1);
  }

  add(token: AddedTokenSettings): void {
    if (token.content === '' || this.addedContents.has(token.content)) return;
    const id = this.base.modelVocab.get(token.content) ?? this.nextId();
    this.added.push({ ...token, id });
    this.addedContents.add(token.content);
    this.maxAddedId = Math.max(this.maxAddedId, id);
  }

  private nextId(): number {
    const modelSize = this.base.modelVocab.size;
    if (this.added.length === 0) return modelSize;
    return this.maxAddedId >= modelSize || modelSize === 0 ? this.maxAddedId + 1 : modelSize;
  }

  build(): HfTokenizer {
    return { ...this.base, added: [...this.added].sort((a, b) => a.id - b.id) };
  }
}

/**
 * The tokenizer without the tokens whose id is ≥ the model's vocab_size (mergekit's
 * `get_stripped_tokenizer`): padding tokens such as `<UNUSED_0>` that have no embedding row.
 * Only BPE vocabularies can be stripped.
 */
export function stripTokenizer(tokenizer: HfTokenizer, vocabSize: number | undefined, where: string): HfTokenizer {
  const vocab = fullVocab(tokenizer);
  const limit = vocabSize ?? vocab.size;
  const unused = new Set<string>();
  for (const [token, id] of vocab) if (id >= limit) unused.add(token);
  if (unused.size === 0) return tokenizer;
  if (tokenizer.modelType !== 'BPE') {
    throw new TokenizerError(
      `the tokenizer of ${where} has ${unused.size} token(s) with ids ≥ its vocab_size ${limit} (${examples([...unused])}), ` +
        `and only BPE vocabularies can be stripped of them, not ${tokenizer.modelType}`,
    );
  }
  const model = tokenizer.json.model as Record<string, unknown>;
  const keptVocab = [...tokenizer.modelVocab].filter(([token]) => !unused.has(token));
  const keepMerge = (merge: unknown): boolean => {
    let parts: unknown[];
    if (typeof merge === 'string' && merge.split(' ').length === 2) parts = merge.split(' ');
    else if (Array.isArray(merge)) parts = merge;
    else throw new TokenizerError(`the tokenizer of ${where} has a merge of an unexpected form: ${JSON.stringify(merge)}`);
    return parts.every((p) => typeof p !== 'string' || !unused.has(p));
  };
  const merges = tokenizer.merges.filter(keepMerge);
  const json = {
    ...tokenizer.json,
    model: { ...model, vocab: Object.fromEntries(keptVocab.sort((a, b) => a[1] - b[1])), ...(Array.isArray(model.merges) ? { merges } : {}) },
  };
  return {
    ...tokenizer,
    json,
    modelVocab: new Map(keptVocab),
    merges,
    added: tokenizer.added.filter((t) => t.id < limit),
  };
}

/** mergekit's `build_union_tokenizer`: the base plus every other token any model uses. */
function unionTokenizer(base: HfTokenizer, ordered: readonly { key: string; tokenizer: HfTokenizer; vocabSize: number }[], warnings: string[]): HfTokenizer {
  const normal: string[] = [];
  const normalSeen = new Set<string>();
  const addedFirst = new Map<string, AddedTokenSettings>();
  const conflicts: string[] = [];
  for (const { tokenizer, vocabSize } of ordered) {
    for (const [token, id] of fullVocab(tokenizer)) {
      if (id >= vocabSize || normalSeen.has(token)) continue;
      normalSeen.add(token);
      normal.push(token);
    }
    for (const t of tokenizer.added) {
      if (t.id >= vocabSize) continue;
      const first = addedFirst.get(t.content);
      if (!first) addedFirst.set(t.content, t);
      else if (!sameSettings(first, t) && !conflicts.includes(t.content)) conflicts.push(t.content);
    }
  }
  if (conflicts.length > 0) {
    warnings.push(`Token(s) ${examples(conflicts)} are added with different settings by different models; the first model's settings are kept.`);
  }
  const builder = new TokenizerBuilder(base);
  const baseVocab = fullVocab(base);
  for (const token of normal) {
    if (!addedFirst.has(token) && !baseVocab.has(token)) builder.add(plainTokenSettings(token));
  }
  for (const t of addedFirst.values()) {
    builder.add({ content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip, normalized: t.normalized, special: t.special });
  }
  return builder.build();
}

/** Builds the output vocabulary and each model's permutation (docs/tokenizers.md §2). */
export function buildOutputVocabulary(options: VocabularyOptions): OutputVocabulary {
  const warnings: string[] = [];
  const byKey = new Map(options.models.map((m) => [m.key, m]));
  const baseModel = byKey.get(options.base);
  if (!baseModel) throw new Error(`internal: base model ${options.base} is not among the models`);
  if (!baseModel.tokenizer) throw new TokenizerError(`the base model ${options.base} has no tokenizer to build the output vocabulary from`);
  const strippedBase = stripTokenizer(baseModel.tokenizer, baseModel.vocabSize, options.base);

  // The base first, then the others in config order (mergekit: the base, then a set's order).
  const ordered = [baseModel, ...options.models.filter((m) => m.key !== options.base)];
  const tokenizerOf = (m: VocabularyModel): HfTokenizer => (m.key === options.base ? strippedBase : (m.tokenizer ?? strippedBase));
  for (const m of ordered) {
    if (!m.tokenizer) warnings.push(`Model ${m.key} has no tokenizer.json; it is assumed to use the same vocabulary as ${options.base}.`);
  }

  let out: HfTokenizer;
  let sourceModel = options.base;
  if (options.source === 'base') {
    out = strippedBase;
  } else if (options.source === 'union') {
    out = unionTokenizer(
      strippedBase,
      ordered
        .filter((m) => m.key === options.base || m.tokenizer)
        .map((m) => ({ key: m.key, tokenizer: tokenizerOf(m), vocabSize: m.vocabSize ?? tokenizerOf(m).modelVocab.size })),
      warnings,
    );
  } else {
    const source = byKey.get(options.source.model);
    if (!source) throw new TokenizerError(`the tokenizer source ${options.source.model} is not one of the merged models`);
    if (!source.tokenizer) throw new TokenizerError(`the tokenizer source ${options.source.model} has no tokenizer.json`);
    out = source.tokenizer;
    sourceModel = source.key;
  }
  if (options.addTokens && options.addTokens.length > 0) {
    const builder = new TokenizerBuilder(out);
    const present = fullVocab(out);
    for (const token of options.addTokens) if (!present.has(token)) builder.add(plainTokenSettings(token));
    out = builder.build();
  }

  const vocab = fullVocab(out);
  const size = vocab.size;
  const tokens: (string | null)[] = new Array<string | null>(size).fill(null);
  for (const [token, id] of vocab) {
    if (id >= size) {
      throw new TokenizerError(
        `the output vocabulary has ${size} tokens but ${JSON.stringify(token)} has id ${id}: its ids have gaps, so it cannot index ${size} embedding rows`,
      );
    }
    tokens[id] = token;
  }
  const pad = options.padToMultipleOf;
  const paddedSize = pad && size % pad !== 0 ? size + pad - (size % pad) : size;

  const permutations = new Map<string, Int32Array>();
  const originalVocabs = new Map<string, ReadonlyMap<string, number>>();
  for (const m of options.models) {
    const own = fullVocab(tokenizerOf(m));
    const limit = m.vocabSize ?? own.size;
    const p = new Int32Array(size).fill(-1);
    const beyond: string[] = [];
    tokens.forEach((token, id) => {
      if (token === null) return;
      const old = own.get(token);
      if (old === undefined) return;
      if (old >= limit) beyond.push(token);
      else p[id] = old;
    });
    if (beyond.length > 0) {
      warnings.push(
        `Model ${m.key}: ${beyond.length} token(s) of the output vocabulary (${examples(beyond)}) have ids ≥ its vocab_size ${limit} ` +
          '(padding?); that model has no embedding row for them.',
      );
    }
    permutations.set(m.key, p);
    originalVocabs.set(m.key, own);
  }
  return { tokenizer: out, sourceModel, tokens, size, paddedSize, permutations, originalVocabs, warnings };
}
