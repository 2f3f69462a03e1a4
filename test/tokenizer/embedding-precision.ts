/**
 * Shared by the CPU test (test/tokenizer/embedding-precision.test.ts) and the WebGPU one
 * (test/gpu/aligned-embedding.gpu.test.ts). Issue #16: the embedding rows a tokenizer merge substitutes (a token a model lacks, a forced
 * token, `pad_to_multiple_of` padding) are built in f32, the merge dtype, as mergekit builds them —
 * never rounded to the storage dtype of the model that takes them. Mixed F16/BF16 models: a BF16
 * base, an F16 model whose tokens sit at other ids (plus two tokens of its own), a BF16 model with
 * one added token. Every row of both embeddings is checked bit for bit against an independent f32
 * computation of mergekit's rule written here from the models' tensors and tokenizer files.
 *
 * Weights are powers of two, so every product is exact and mergekit's order of f32 operations
 * (delta = x − base, Σ w·delta, base + Σ; or Σ w·x / Σ w) gives one result; with
 * `dtype: bfloat16` Alloy rounds that f32 result once (docs/compatibility.md, "all methods").
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir, roundToDtype } from '../fixtures/safetensors';
import { writeConfig } from '../cli/run-alloy';

const HIDDEN = 32;
const EMBEDS = ['model.embed_tokens.weight', 'lm_head.weight'];
/** Tokens of the F16 model that the base does not have. */
const NEW_A = '_new_a';
const NEW_B = '_new_b';

export interface Model {
  readonly key: string;
  readonly tiny: TinyModel;
  /** token → row of its embedding */
  readonly vocab: Map<string, number>;
}

export interface TokenRule {
  readonly source: { model: string } | { model: string; token: string };
  readonly force?: boolean;
}

export type Method = { kind: 'task_arithmetic'; weights: Record<string, number> } | { kind: 'linear'; weights: Record<string, number> };

function readVocab(dir: string): Map<string, number> {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
    model: { vocab: Record<string, number> };
    added_tokens: { id: number; content: string }[];
  };
  const vocab = new Map(Object.entries(json.model.vocab));
  for (const t of json.added_tokens) vocab.set(t.content, t.id);
  return vocab;
}

/** Output id → token string. */
function outputTokens(dir: string): string[] {
  const tokens: string[] = [];
  for (const [token, id] of readVocab(dir)) tokens[id] = token;
  return tokens;
}

/**
 * mergekit's aligned matrix of `model` (`PermutedEmbeddings`, docs/tokenizers.md §3), in f32:
 * its own row, else the default row (the `tokens:` source; the lone owner's row; the base's row;
 * the owners' mean, an f32 running sum in config order divided once), padding rows the mean of
 * its token rows.
 */
function alignedMatrix(
  model: Model,
  models: readonly Model[],
  base: Model,
  tokens: readonly string[],
  padded: number,
  name: string,
  rules: ReadonlyMap<string, TokenRule> = new Map(),
): Float32Array {
  const rowOf = (m: Model, token: string): Float32Array => {
    const id = m.vocab.get(token);
    if (id === undefined) throw new Error(`test: ${m.key} has no ${token}`);
    return m.tiny.values.get(name)!.subarray(id * HIDDEN, (id + 1) * HIDDEN);
  };
  const byKey = (key: string): Model => models.find((m) => m.key === key)!;
  const defaultRow = (token: string): Float32Array => {
    const rule = rules.get(token);
    if (rule) return rowOf(byKey(rule.source.model), 'token' in rule.source ? rule.source.token : token);
    const owners = models.filter((m) => m.vocab.has(token));
    if (owners.length === 0) return new Float32Array(HIDDEN);
    if (owners.length === 1) return rowOf(owners[0], token);
    if (owners.includes(base)) return rowOf(base, token);
    const sum = new Float32Array(HIDDEN);
    for (const m of owners) {
      const r = rowOf(m, token);
      for (let c = 0; c < HIDDEN; c++) sum[c] += r[c];
    }
    for (let c = 0; c < HIDDEN; c++) sum[c] /= owners.length;
    return sum;
  };
  const out = new Float32Array(padded * HIDDEN);
  tokens.forEach((token, id) => {
    const own = model.vocab.has(token) && rules.get(token)?.force !== true;
    out.set(own ? rowOf(model, token) : defaultRow(token), id * HIDDEN);
  });
  if (padded > tokens.length) {
    // The exact mean rounded once (the sum of these f32 values is exact in f64).
    const mean = new Float32Array(HIDDEN);
    for (let c = 0; c < HIDDEN; c++) {
      let s = 0;
      for (let id = 0; id < tokens.length; id++) s += out[id * HIDDEN + c];
      mean[c] = s / tokens.length;
    }
    for (let id = tokens.length; id < padded; id++) out.set(mean, id * HIDDEN);
  }
  return out;
}

/** mergekit's method on the aligned matrices, every step rounded to f32. */
function mergeRows(method: Method, base: Model, models: readonly Model[], aligned: ReadonlyMap<string, Float32Array>): Float32Array {
  const f = Math.fround;
  const b = aligned.get(base.key)!;
  const out = new Float32Array(b.length);
  if (method.kind === 'task_arithmetic') {
    const others = models.filter((m) => m !== base);
    for (let i = 0; i < out.length; i++) {
      let mixed = 0;
      for (const m of others) mixed = f(mixed + f(method.weights[m.key] * f(aligned.get(m.key)![i] - b[i])));
      out[i] = f(b[i] + mixed);
    }
  } else {
    const total = models.reduce((s, m) => s + method.weights[m.key], 0);
    for (let i = 0; i < out.length; i++) {
      let sum = 0;
      for (const m of models) sum = f(sum + f(method.weights[m.key] * aligned.get(m.key)![i]));
      out[i] = f(sum / total);
    }
  }
  return out;
}

function expectBits(got: Float32Array, want: Float32Array, tokens: readonly string[], what: string): void {
  expect(got.length, what).toBe(want.length);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) {
      const id = Math.floor(i / HIDDEN);
      throw new Error(`${what}: row ${id} (${tokens[id] ?? 'padding'}) column ${i % HIDDEN}: got ${got[i]}, expected ${want[i]}`);
    }
  }
}

export interface PrecisionModels {
  readonly base: Model;
  readonly perm: Model;
  readonly chat: Model;
}

/** Writes the three models into `dir` and checks that they are what the cases need. */
export async function makePrecisionModels(dir: string): Promise<PrecisionModels> {
  const baseTiny = await makeTinyModel(join(dir, 'base'), { seed: 11, dtype: 'BF16', vocabSize: 64 });
  // F16, 66 tokens: the base's 61 plain tokens and two of its own, at permuted ids.
  const permTiny = await makeTinyModel(join(dir, 'perm'), { seed: 12, dtype: 'F16', vocabSize: 66 });
  const file = join(dir, 'perm', 'tokenizer.json');
  const json = JSON.parse(readFileSync(file, 'utf8')) as { model: { vocab: Record<string, number> } };
  const plain = [...Array.from({ length: 61 }, (_, k) => `_tok_${k + 3}`), NEW_A, NEW_B];
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  plain.forEach((token, k) => (vocab[token] = 3 + ((k * 17) % 63)));
  json.model.vocab = vocab;
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n');
  // BF16, 65 tokens: the base's 64 and NEW_A as an added token.
  const chatTiny = await makeTinyModel(join(dir, 'chat'), {
    seed: 13,
    dtype: 'BF16',
    vocabSize: 65,
    tokenizer: { baseVocab: 64, addedTokens: [{ content: NEW_A, special: false }] },
  });
  const model = (key: string, tiny: TinyModel): Model => ({ key, tiny, vocab: readVocab(tiny.dir) });
  const models = { base: model('./base', baseTiny), perm: model('./perm', permTiny), chat: model('./chat', chatTiny) };
  // The fixture really is what the tests need: permuted ids, and F16 rows bf16 cannot hold.
  expect(models.perm.vocab.get('_tok_4')).not.toBe(models.base.vocab.get('_tok_4'));
  const id = models.perm.vocab.get(NEW_B)!;
  const permRow = permTiny.values.get(EMBEDS[0])!.subarray(id * HIDDEN, (id + 1) * HIDDEN);
  expect(Array.from(roundToDtype(permRow, 'BF16'))).not.toEqual(Array.from(permRow));
  return models;
}

export interface PrecisionCase {
  readonly name: string;
  readonly tokenizer: string[];
  readonly method: Method;
  readonly rules?: ReadonlyMap<string, TokenRule>;
  /** Output vocabulary size and padded rows. */
  readonly tokens: number;
  readonly padded: number;
}

const taskArithmetic: Method = { kind: 'task_arithmetic', weights: { './perm': 0.5, './chat': 0.25 } };
const linear: Method = { kind: 'linear', weights: { './base': 1, './perm': 1, './chat': 2 } };

/** The four situations of issue #16. */
export const PRECISION_CASES: readonly PrecisionCase[] = [
  { name: 'union, task_arithmetic', tokenizer: ['tokenizer_source: union'], method: taskArithmetic, tokens: 66, padded: 66 },
  { name: 'tokenizer_source: <model>', tokenizer: ['tokenizer_source: ./perm'], method: linear, tokens: 66, padded: 66 },
  {
    name: 'tokens with force',
    tokenizer: [
      'tokenizer:',
      '  source: union',
      '  tokens:',
      '    _tok_10: {source: ./perm, force: true}',
      `    ${NEW_A}: {source: ./chat, force: true}`,
      '    _tok_21: {source: {kind: model_token, model: ./perm, token: _tok_20}, force: true}',
    ],
    method: linear,
    rules: new Map<string, TokenRule>([
      ['_tok_10', { source: { model: './perm' }, force: true }],
      [NEW_A, { source: { model: './chat' }, force: true }],
      ['_tok_21', { source: { model: './perm', token: '_tok_20' }, force: true }],
    ]),
    tokens: 66,
    padded: 66,
  },
  { name: 'pad_to_multiple_of: 16', tokenizer: ['tokenizer: {source: union, pad_to_multiple_of: 16}'], method: taskArithmetic, tokens: 66, padded: 80 },
];

export type PrecisionDtype = 'float32' | 'bfloat16';

/** Writes the case's config into `dir`; returns the name of the config (`NAME.yml`) and output. */
export function writeCaseConfig(dir: string, models: PrecisionModels, c: PrecisionCase, dtype: PrecisionDtype): string {
  const name = `${c.name.replace(/[^a-z0-9]+/gi, '-')}-${dtype}`;
  writeConfig(
    dir,
    `${name}.yml`,
    [
      'models:',
      ...[models.base, models.perm, models.chat].map((m) => (m === models.base && c.method.kind === 'task_arithmetic'
        ? `  - model: ${m.key}`
        : `  - {model: ${m.key}, parameters: {weight: ${c.method.weights[m.key]}}}`)),
      `merge_method: ${c.method.kind}`,
      'base_model: ./base',
      `dtype: ${dtype}`,
      ...c.tokenizer,
    ].join('\n') + '\n',
  );
  return name;
}

/** Checks both embeddings of the merged model in `out`, every row bit for bit. */
export function expectCaseOutput(out: string, models: PrecisionModels, c: PrecisionCase, dtype: PrecisionDtype): void {
  const all = [models.base, models.perm, models.chat];
  const tokens = outputTokens(out);
  expect(tokens.length).toBe(c.tokens);
  expect(tokens).toContain(NEW_A);
  expect(tokens).toContain(NEW_B);
  const tensors = readModelDir(out).tensors;
  for (const embed of EMBEDS) {
    const got = tensors.get(embed)!;
    expect(got.dtype).toBe(dtype === 'float32' ? 'F32' : 'BF16');
    expect(got.shape).toEqual([c.padded, HIDDEN]);
    const aligned = new Map(all.map((m) => [m.key, alignedMatrix(m, all, models.base, tokens, c.padded, embed, c.rules)]));
    const want = mergeRows(c.method, models.base, all, aligned);
    expectBits(got.values, dtype === 'float32' ? want : roundToDtype(want, 'BF16'), tokens, `${out} ${embed}`);
  }
}
