/**
 * The output tokenizer loads in the JavaScript Hugging Face libraries and tokenizes text with the
 * added tokens to the expected ids. Runs when `@huggingface/transformers` (or its tokenizer
 * library alone, `@huggingface/tokenizers`) is installed as a dev dependency; skipped otherwise.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../fixtures/models';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';

/** Imports an optional package; a variable specifier keeps Vite from resolving it at transform time. */
async function optional(name: string): Promise<Record<string, unknown> | null> {
  try {
    return (await import(/* @vite-ignore */ name)) as Record<string, unknown>;
  } catch {
    return null;
  }
}

interface EncodingLike {
  ids?: number[];
}
interface TransformersTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[] | EncodingLike;
  apply_chat_template(messages: { role: string; content: string }[], options: { tokenize: false }): string;
}
interface TransformersModule {
  AutoTokenizer: { from_pretrained(id: string, options?: Record<string, unknown>): Promise<TransformersTokenizer> };
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
}
interface TokenizersModule {
  Tokenizer: new (json: unknown, config: unknown) => { encode(text: string, options: { add_special_tokens: boolean }): EncodingLike };
}

const transformers = (await optional('@huggingface/transformers')) as TransformersModule | null;
const tokenizers = (await optional('@huggingface/tokenizers')) as TokenizersModule | null;

const TEXT = '<s><|im_start|><|tool|></s><|im_end|>';
const IDS = [1, 64, 66, 2, 65];

describe.skipIf(!transformers && !tokenizers)('the output tokenizer in the JavaScript Hugging Face libraries', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('alloy-transformers-js-');
    await makeTinyModel(join(dir, 'base'), { seed: 1 });
    await makeTinyModel(join(dir, 'chatml'), { seed: 2, vocabSize: 66, tokenizer: { baseVocab: 64, addedTokens: ['<|im_start|>', '<|im_end|>'] } });
    writeConfig(dir, 'union.yml', [
      'models:',
      '  - model: ./base',
      '  - model: ./chatml',
      'merge_method: linear',
      'parameters: {weight: 1}',
      'base_model: ./base',
      'tokenizer:',
      '  source: union',
      '  tokens:',
      '    <|tool|>: {source: {kind: zero}}',
      'chat_template: chatml',
    ].join('\n'));
    const r = await runAlloy(['merge', 'union.yml', 'union', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
  });

  it.skipIf(!transformers)('@huggingface/transformers: AutoTokenizer loads it and encodes the added tokens', async () => {
    const { AutoTokenizer, env } = transformers!;
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir + '/';
    const tokenizer = await AutoTokenizer.from_pretrained('union');
    const encoded = tokenizer.encode(TEXT, { add_special_tokens: false });
    expect(Array.isArray(encoded) ? encoded : encoded.ids).toEqual(IDS);
    // the chatml template written into tokenizer_config.json renders
    expect(tokenizer.apply_chat_template([{ role: 'user', content: 'hi' }], { tokenize: false })).toBe('<|im_start|>user\nhi<|im_end|>\n');
  });

  it.skipIf(!tokenizers)('@huggingface/tokenizers: Tokenizer loads it and encodes the added tokens', () => {
    const json = JSON.parse(readFileSync(join(dir, 'union', 'tokenizer.json'), 'utf8')) as unknown;
    const config = JSON.parse(readFileSync(join(dir, 'union', 'tokenizer_config.json'), 'utf8')) as unknown;
    const tokenizer = new tokenizers!.Tokenizer(json, config);
    expect(tokenizer.encode(TEXT, { add_special_tokens: false }).ids).toEqual(IDS);
  });
});
