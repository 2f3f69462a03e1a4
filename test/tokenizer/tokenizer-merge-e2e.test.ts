/**
 * mergekit's tests/test_tokenizer.py and tests/test_chat_template.py (docs/testing.md §7) as
 * end-to-end CLI merges, plus exact row checks: tiny Llama models with real BPE tokenizer.json
 * files — a base (vocab 64, no added tokens), a chat model (config vocab 66, tokenizer 64 +
 * <|im_start|>, <|im_end|> at 64/65) and a padded-vocab model (config vocab 64, tokenizer 64 +
 * four <UNUSED_i> beyond vocab_size). All linear with weight 1 in float32 unless said otherwise.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir, roundToDtype } from '../fixtures/safetensors';
import { expectWithinUlp, magnitudes } from '../helpers/ulp';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { BUILTIN_CHAT_TEMPLATES } from '../../src/tokenizer';

const HIDDEN = 32;
const EMBEDS = ['model.embed_tokens.weight', 'lm_head.weight'];
const UNUSED = [0, 1, 2, 3].map((i) => `<UNUSED_${i}>`);

interface OutputModel {
  readonly dir: string;
  readonly tensors: ReturnType<typeof readModelDir>['tensors'];
  readonly config: Record<string, unknown>;
  readonly vocab: Map<string, number>;
  readonly added: { id: number; content: string }[];
  readonly tokenizerConfig: Record<string, unknown>;
  readonly stderr: string;
}

function tokenizerVocab(dir: string): { vocab: Map<string, number>; added: { id: number; content: string }[] } {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as {
    model: { vocab: Record<string, number> };
    added_tokens: { id: number; content: string }[];
  };
  const vocab = new Map(Object.entries(json.model.vocab));
  for (const t of json.added_tokens) vocab.set(t.content, t.id);
  return { vocab, added: json.added_tokens };
}

function row(values: Float32Array, id: number): Float32Array {
  return values.subarray(id * HIDDEN, (id + 1) * HIDDEN);
}

function mean(rows: Float32Array[]): Float64Array {
  const out = new Float64Array(HIDDEN);
  for (const r of rows) for (let c = 0; c < HIDDEN; c++) out[c] += r[c] / rows.length;
  return out;
}

describe('tokenizer merges (mergekit test_tokenizer.py)', () => {
  let dir: string;
  let base: TinyModel;
  let chatml: TinyModel;
  let padded: TinyModel;

  beforeAll(async () => {
    dir = tempDir('alloy-tokenizer-');
    base = await makeTinyModel(join(dir, 'base'), { seed: 1, vocabSize: 64 });
    chatml = await makeTinyModel(join(dir, 'chatml'), {
      seed: 2,
      vocabSize: 66,
      tokenizer: { baseVocab: 64, addedTokens: ['<|im_start|>', '<|im_end|>'] },
    });
    padded = await makeTinyModel(join(dir, 'padded'), { seed: 3, vocabSize: 64, tokenizer: { baseVocab: 64, addedTokens: UNUSED } });
  });

  async function merge(name: string, lines: string[], extra: string[] = []): Promise<OutputModel> {
    writeConfig(dir, `${name}.yml`, lines.join('\n') + '\n');
    const r = await runAlloy(['merge', `${name}.yml`, name, '--quiet', ...extra], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = join(dir, name);
    return {
      dir: out,
      tensors: readModelDir(out).tensors,
      config: JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>,
      ...tokenizerVocab(out),
      tokenizerConfig: JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>,
      stderr: r.stderr,
    };
  }

  const models = (...names: string[]): string[] => ['models:', ...names.map((n) => `  - {model: ./${n}, parameters: {weight: 1.0}}`)];
  const common = ['merge_method: linear', 'base_model: ./base', 'dtype: float32'];

  it('without a tokenizer source copies the base tokenizer and cuts the embeddings, with a warning', async () => {
    const out = await merge('legacy', [...models('base', 'padded', 'chatml'), ...common]);
    expect(out.vocab.size).toBe(64);
    expect(out.added).toHaveLength(3);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      expect(readFileSync(join(out.dir, f), 'utf8'), f).toBe(readFileSync(join(dir, 'base', f), 'utf8'));
    }
    expect(out.tensors.get('model.embed_tokens.weight')!.shape).toEqual([64, HIDDEN]);
    expect(out.config.vocab_size).toBe(64);
    expect(out.stderr).toMatch(/embedding sizes differ.*tokenizer_source: union/);
  });

  it('source: base gives the stripped base vocabulary and merges rows token by token', async () => {
    const out = await merge('source-base', [...models('base', 'padded', 'chatml'), ...common, 'tokenizer_source: base']);
    expect(out.vocab.size).toBe(64);
    expect(out.added).toHaveLength(3);
    expect(out.config.vocab_size).toBe(64);
    for (const name of EMBEDS) {
      const got = out.tensors.get(name)!;
      expect(got.shape).toEqual([64, HIDDEN]);
      for (const id of [0, 5, 63]) {
        const rows = [base, padded, chatml].map((m) => row(m.values.get(name)!, id));
        expectWithinUlp(row(got.values, id), mean(rows), 'F32', 1, `${name} row ${id}`, magnitudes(...rows));
      }
    }
  });

  it('union: 66 tokens, the chat tokens from the chat model exactly, no padding tokens', async () => {
    const out = await merge('union', [...models('base', 'padded', 'chatml'), ...common, 'tokenizer_source: union']);
    expect(out.vocab.size).toBe(66);
    expect(out.added).toHaveLength(5);
    expect(out.vocab.get('<|im_start|>')).toBe(64);
    expect(out.vocab.get('<|im_end|>')).toBe(65);
    for (const t of UNUSED) expect(out.vocab.has(t)).toBe(false);
    expect(out.config.vocab_size).toBe(66);
    const added = out.tokenizerConfig.added_tokens_decoder as Record<string, { content: string }>;
    expect(Object.keys(added).sort()).toEqual(['0', '1', '2', '64', '65']);
    for (const name of EMBEDS) {
      const got = out.tensors.get(name)!;
      expect(got.shape).toEqual([66, HIDDEN]);
      for (const id of [64, 65]) {
        // Only the chat model has them: every aligned matrix takes its row, so the merge is that row.
        expectWithinUlp(row(got.values, id), row(chatml.values.get(name)!, id), 'F32', 1, `${name} row ${id}`);
      }
      const shared = [base, padded, chatml].map((m) => row(m.values.get(name)!, 7));
      expectWithinUlp(row(got.values, 7), mean(shared), 'F32', 1, `${name} row 7`, magnitudes(...shared));
    }
    expect(readFileSync(join(out.dir, 'generation_config.json'), 'utf8')).toBe(readFileSync(join(dir, 'base', 'generation_config.json'), 'utf8'));
    expect(readdirSync(out.dir)).not.toContain('tokenizer.model');
  });

  it('union with a small memory budget gives the same bytes (rows assembled chunk by chunk)', async () => {
    const lines = [...models('base', 'padded', 'chatml'), ...common, 'tokenizer: {source: union, pad_to_multiple_of: 32}'];
    const big = await merge('union-big', lines);
    const small = await merge('union-small', lines, ['--memory', '2k']);
    for (const name of EMBEDS) {
      expect(Buffer.from(small.tensors.get(name)!.raw).equals(Buffer.from(big.tensors.get(name)!.raw)), name).toBe(true);
    }
  });

  it('a model as the source gives its vocabulary', async () => {
    const out = await merge('source-model', [...models('base', 'padded', 'chatml'), ...common, 'tokenizer_source: ./chatml']);
    expect(out.vocab.size).toBe(66);
    expect(out.vocab.has('<|im_start|>')).toBe(true);
    expect(out.vocab.has('<|im_end|>')).toBe(true);
    expect(out.tensors.get('lm_head.weight')!.shape).toEqual([66, HIDDEN]);
  });

  it('slerp with a union vocabulary', async () => {
    const out = await merge('slerp-union', [
      ...models('base', 'chatml'),
      'merge_method: slerp',
      'base_model: ./base',
      'dtype: float32',
      'parameters: {t: 0.5}',
      'tokenizer_source: union',
    ]);
    expect(out.vocab.size).toBe(66);
    expect(out.vocab.has('<|im_start|>')).toBe(true);
    const got = out.tensors.get('model.embed_tokens.weight')!;
    expect(got.shape).toEqual([66, HIDDEN]);
    for (const v of got.values) expect(Number.isFinite(v)).toBe(true);
  });

  it('force: a forced token takes its source embedding exactly', async () => {
    const out = await merge('force', [
      ...models('base', 'chatml'),
      ...common,
      'tokenizer:',
      '  source: union',
      '  tokens:',
      '    _tok_10: {source: ./chatml, force: true}',
      '    _tok_11: {source: ./base, force: true}',
    ]);
    expect(out.vocab.size).toBe(66);
    for (const name of EMBEDS) {
      const got = out.tensors.get(name)!.values;
      expectWithinUlp(row(got, 10), row(chatml.values.get(name)!, 10), 'F32', 1, `${name} _tok_10`);
      expectWithinUlp(row(got, 11), row(base.values.get(name)!, 11), 'F32', 1, `${name} _tok_11`);
    }
  });

  it('model_token sources by id and by string', async () => {
    const out = await merge('model-token', [
      ...models('base', 'chatml'),
      ...common,
      'tokenizer:',
      '  source: base',
      '  tokens:',
      '    _tok_20: {source: {kind: model_token, model: ./chatml, token_id: 64}, force: true}',
      '    _tok_21: {source: {kind: model_token, model: ./base, token: "<s>"}, force: true}',
      '    <|new|>: {source: {kind: zero}}',
    ]);
    expect(out.vocab.size).toBe(65);
    expect(out.vocab.get('_tok_10')).toBe(10);
    expect(out.vocab.get('<|new|>')).toBe(64);
    const got = out.tensors.get('model.embed_tokens.weight')!.values;
    expectWithinUlp(row(got, 20), row(chatml.values.get('model.embed_tokens.weight')!, 64), 'F32', 1, '_tok_20');
    expectWithinUlp(row(got, 21), row(base.values.get('model.embed_tokens.weight')!, 1), 'F32', 1, '_tok_21');
    expect(Array.from(row(got, 64))).toEqual(new Array(HIDDEN).fill(0));
  });

  it('pad_to_multiple_of: 16 pads the embeddings and config to 80, the tokenizer stays at 66', async () => {
    const out = await merge('pad', [
      ...models('chatml'),
      'merge_method: linear',
      'base_model: ./chatml',
      'dtype: float32',
      'tokenizer: {source: base, pad_to_multiple_of: 16}',
    ]);
    expect(out.config.vocab_size).toBe(80);
    expect(out.vocab.size).toBe(66);
    for (const name of EMBEDS) {
      const got = out.tensors.get(name)!;
      expect(got.shape).toEqual([80, HIDDEN]);
      const source = chatml.values.get(name)!;
      expect(Array.from(got.values.subarray(0, 66 * HIDDEN))).toEqual(Array.from(source.subarray(0, 66 * HIDDEN)));
      const padding = roundToDtype(Float32Array.from(mean(Array.from({ length: 66 }, (_, id) => row(source, id)))), 'F32');
      for (let id = 66; id < 80; id++) expectWithinUlp(row(got.values, id), padding, 'F32', 1, `${name} padding row ${id}`);
    }
  });

  it('a token two models have but not the base gets their mean as the base\'s row', async () => {
    const chatml2 = await makeTinyModel(join(dir, 'chatml2'), {
      seed: 6,
      vocabSize: 66,
      tokenizer: { baseVocab: 64, addedTokens: ['<|im_start|>', '<|im_end|>'] },
    });
    const out = await merge('mean-default', [...models('base', 'chatml', 'chatml2'), ...common, 'tokenizer_source: union']);
    const got = out.tensors.get('model.embed_tokens.weight')!.values;
    for (const id of [64, 65]) {
      const owners = [chatml, chatml2].map((m) => row(m.values.get('model.embed_tokens.weight')!, id));
      // linear of (mean, a, b) with equal weights is the mean of a and b
      expectWithinUlp(row(got, id), mean(owners), 'F32', 1, `row ${id}`, magnitudes(...owners));
    }
  });

  it('bf16: token rows are copied bit for bit, a lone owner\'s row is every model\'s row', async () => {
    const dir16 = tempDir('alloy-tokenizer-bf16-');
    await makeTinyModel(join(dir16, 'a'), { seed: 4, dtype: 'BF16', vocabSize: 64 });
    const b = await makeTinyModel(join(dir16, 'b'), {
      seed: 5,
      dtype: 'BF16',
      vocabSize: 66,
      tokenizer: { baseVocab: 64, addedTokens: ['<|im_start|>', '<|im_end|>'] },
    });
    writeConfig(
      dir16,
      'pass.yml',
      ['slices:', '  - sources:', '      - {model: ./b, layer_range: [0, 2]}', 'merge_method: passthrough', 'base_model: ./a', 'tokenizer_source: union'].join('\n'),
    );
    let r = await runAlloy(['merge', 'pass.yml', 'pass', '--quiet'], dir16);
    expect(r.code, r.stderr).toBe(0);
    let got = readModelDir(join(dir16, 'pass')).tensors.get('model.embed_tokens.weight')!;
    expect(got.dtype).toBe('BF16');
    expect(got.shape).toEqual([66, HIDDEN]);
    expect(Buffer.from(got.raw).equals(Buffer.from(readModelDir(join(dir16, 'b')).tensors.get('model.embed_tokens.weight')!.raw))).toBe(true);

    writeConfig(dir16, 'lin.yml', ['models:', '  - model: ./a', '  - model: ./b', 'merge_method: linear', 'parameters: {weight: 1}', 'tokenizer_source: union'].join('\n'));
    r = await runAlloy(['merge', 'lin.yml', 'lin', '--quiet'], dir16);
    expect(r.code, r.stderr).toBe(0);
    got = readModelDir(join(dir16, 'lin')).tensors.get('model.embed_tokens.weight')!;
    const bRows = b.values.get('model.embed_tokens.weight')!;
    expect(Array.from(got.values.subarray(64 * HIDDEN))).toEqual(Array.from(bRows.subarray(64 * HIDDEN)));
  });
});

describe('chat templates (mergekit test_chat_template.py)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('alloy-chat-template-');
    await makeTinyModel(join(dir, 'base'), { seed: 1, dtype: 'BF16' });
    await makeTinyModel(join(dir, 'b'), { seed: 2, dtype: 'BF16', tokenizer: false });
    await makeTinyModel(join(dir, 'chat'), { seed: 3, dtype: 'BF16', tokenizer: { chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}' } });
  });

  async function mergeWithTemplate(name: string, template: string, models = ['base', 'b']): Promise<Record<string, unknown>> {
    writeConfig(dir, `${name}.yml`, [
      'merge_method: linear',
      'models:',
      ...models.map((m) => `  - {model: ./${m}, parameters: {weight: 0.5}}`),
      'base_model: ./base',
      'dtype: bfloat16',
      `chat_template: ${JSON.stringify(template)}`,
    ].join('\n'));
    const r = await runAlloy(['merge', `${name}.yml`, name, '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['tokenizer.json', 'special_tokens_map.json', 'generation_config.json']) {
      expect(readFileSync(join(dir, name, f), 'utf8'), f).toBe(readFileSync(join(dir, 'base', f), 'utf8'));
    }
    return JSON.parse(readFileSync(join(dir, name, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  }

  it('chatml: the built-in template (mergekit\'s file, verbatim)', async () => {
    const config = await mergeWithTemplate('chatml', 'chatml');
    expect(config.chat_template).toContain('<|im_start|>');
    expect(config.chat_template).toBe(BUILTIN_CHAT_TEMPLATES.chatml);
    // the rest of the donor's tokenizer_config.json is kept
    const donor = JSON.parse(readFileSync(join(dir, 'base', 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect({ ...config, chat_template: undefined }).toEqual({ ...donor, chat_template: undefined });
  });

  it('a literal Jinja template is kept verbatim', async () => {
    const config = await mergeWithTemplate('literal', "{{messages[0]['content']}}");
    expect(config.chat_template).toBe("{{messages[0]['content']}}");
  });

  it('auto takes the most common template among the models', async () => {
    const config = await mergeWithTemplate('auto', 'auto', ['base', 'chat']);
    expect(config.chat_template).toBe('{% for m in messages %}{{ m.content }}{% endfor %}');
  });
});
