import { TokenizerError } from './hf-tokenizer';
import type { OutputVocabulary } from './build-vocabulary';

/**
 * Which rows make up each model's embedding matrix in the output vocabulary (docs/tokenizers.md
 * §3, mergekit's `PermutedEmbeddings`), described as data: no weights are read here. The engine
 * assembles the rows chunk by chunk from this description.
 */

/** Where a token's embedding comes from when a model lacks the token (or it is forced). */
export type TokenEmbeddingSource =
  | { readonly kind: 'zero' }
  | { readonly kind: 'model'; readonly model: string }
  | { readonly kind: 'model_token'; readonly model: string; readonly token_id?: number; readonly token?: string };

/** `tokenizer.tokens[token]` with model references as model keys. */
export interface TokenEmbeddingRule {
  readonly source?: TokenEmbeddingSource;
  readonly force?: boolean;
}

/**
 * The default rows, in compressed sparse row form: default `k` is output row `rows[k]`, the mean
 * of the input rows `(input[j], row[j])` for j in `[start[k], start[k+1])` (zeros when empty).
 */
export interface DefaultEmbeddingRows {
  /** Output rows that have a default, ascending. */
  readonly rows: Int32Array;
  /** `rows.length + 1` offsets into `input` / `row`. */
  readonly start: Int32Array;
  /** Index of the term's model among the aligned inputs. */
  readonly input: Int32Array;
  /** Row of that model's own embedding tensor. */
  readonly row: Int32Array;
}

/** The aligned embedding matrices of one tensor: every input becomes `[rows, hidden]`. */
export interface EmbeddingAlignment {
  /** Rows that are tokens, `[0, tokens)`; rows `[tokens, rows)` are padding. */
  readonly tokens: number;
  /** Rows of every aligned matrix (the output vocab_size). */
  readonly rows: number;
  /**
   * Per input: the row of its own tensor for each token row, or -1 where it takes the default row.
   * Padding rows are the mean of that input's aligned token rows.
   */
  readonly own: readonly Int32Array[];
  readonly defaults: DefaultEmbeddingRows;
}

/** One input of the embedding tensor being aligned. */
export interface AlignedInput {
  readonly model: string;
  /** Rows of its embedding tensor. */
  readonly rows: number;
}

export interface AlignmentResult {
  readonly alignment: EmbeddingAlignment;
  readonly warnings: string[];
}

/**
 * Aligns the inputs of one embedding tensor to the output vocabulary. `base` is the index of the
 * base model among `inputs` (-1 if it does not take part). Errors (a `tokens:` source that does not
 * have the token, a token id out of range) throw TokenizerError.
 */
export function alignEmbedding(
  vocabulary: OutputVocabulary,
  inputs: readonly AlignedInput[],
  base: number,
  rules: ReadonlyMap<string, TokenEmbeddingRule>,
): AlignmentResult {
  const perms = inputs.map((input) => {
    const p = vocabulary.permutations.get(input.model);
    if (!p) throw new Error(`internal: no permutation for model ${input.model}`);
    return p;
  });
  const indexOf = (model: string, token: string): number => {
    const i = inputs.findIndex((input) => input.model === model);
    if (i < 0) {
      throw new TokenizerError(`tokens[${JSON.stringify(token)}]: model ${model} is not one of the models merged into this embedding`);
    }
    return i;
  };
  // Every permutation must point inside its tensor.
  inputs.forEach((input, i) => {
    const p = perms[i];
    for (let id = 0; id < p.length; id++) {
      if (p[id] >= input.rows) {
        throw new TokenizerError(
          `model ${input.model} gives token ${JSON.stringify(vocabulary.tokens[id])} the id ${p[id]}, but its embedding has only ${input.rows} rows`,
        );
      }
    }
  });

  const size = vocabulary.size;
  const own = inputs.map(() => new Int32Array(size).fill(-1));
  const defaultRows: number[] = [];
  const start: number[] = [0];
  const termInput: number[] = [];
  const termRow: number[] = [];
  const nowhere: string[] = [];

  for (let id = 0; id < size; id++) {
    const token = vocabulary.tokens[id];
    const rule = token !== null ? rules.get(token) : undefined;
    const force = rule?.force === true;
    let needsDefault = token === null;
    for (let i = 0; i < inputs.length; i++) {
      if (perms[i][id] >= 0 && !force) own[i][id] = perms[i][id];
      else needsDefault = true;
    }
    // A configured source is checked even where no input needs it (mergekit computes them all).
    if (!needsDefault) {
      if (rule?.source) defaultTerms(token!, id, rule, perms, base, indexOf, vocabulary, inputs, nowhere);
      continue;
    }
    defaultRows.push(id);
    if (token !== null) {
      const terms = defaultTerms(token, id, rule, perms, base, indexOf, vocabulary, inputs, nowhere);
      for (const [input, row] of terms) {
        termInput.push(input);
        termRow.push(row);
      }
    }
    start.push(termInput.length);
  }

  const warnings: string[] = [];
  if (nowhere.length > 0) {
    const shown = nowhere.slice(0, 3).map((t) => JSON.stringify(t)).join(', ');
    warnings.push(
      `${nowhere.length} token(s) of the output vocabulary (${shown}${nowhere.length > 3 ? ', …' : ''}) are in none of the merged models: their embedding rows are zero.`,
    );
  }
  return {
    alignment: {
      tokens: size,
      rows: vocabulary.paddedSize,
      own,
      defaults: {
        rows: Int32Array.from(defaultRows),
        start: Int32Array.from(start),
        input: Int32Array.from(termInput),
        row: Int32Array.from(termRow),
      },
    },
    warnings,
  };
}

/** The default embedding of one token as (input, row) terms whose mean it is. */
function defaultTerms(
  token: string,
  id: number,
  rule: TokenEmbeddingRule | undefined,
  perms: readonly Int32Array[],
  base: number,
  indexOf: (model: string, token: string) => number,
  vocabulary: OutputVocabulary,
  inputs: readonly AlignedInput[],
  nowhere: string[],
): [number, number][] {
  const source = rule?.source;
  if (source?.kind === 'zero') return [];
  if (source?.kind === 'model_token') {
    const i = indexOf(source.model, token);
    let row = source.token_id;
    if (row === undefined) {
      const found = vocabulary.originalVocabs.get(source.model)?.get(source.token ?? '');
      if (found === undefined) throw new TokenizerError(`tokens[${JSON.stringify(token)}]: token ${JSON.stringify(source.token)} is not in the vocabulary of ${source.model}`);
      row = found;
    }
    if (row < 0 || row >= inputs[i].rows) {
      throw new TokenizerError(`tokens[${JSON.stringify(token)}]: token id ${row} is out of range for ${source.model}, whose embedding has ${inputs[i].rows} rows`);
    }
    return [[i, row]];
  }
  if (source?.kind === 'model') {
    const i = indexOf(source.model, token);
    if (perms[i][id] < 0) throw new TokenizerError(`tokens[${JSON.stringify(token)}]: token ${JSON.stringify(token)} is not in the vocabulary of ${source.model}`);
    return [[i, perms[i][id]]];
  }
  // No source given: one owner gives its row; none gives zeros; else the base's row; else the mean.
  const owners: number[] = [];
  perms.forEach((p, i) => {
    if (p[id] >= 0) owners.push(i);
  });
  if (owners.length === 1) return [[owners[0], perms[owners[0]][id]]];
  if (owners.length === 0) {
    nowhere.push(token);
    return [];
  }
  if (base >= 0 && perms[base][id] >= 0) return [[base, perms[base][id]]];
  return owners.map((i) => [i, perms[i][id]]);
}
