/**
 * The output tokenizer loads in the JavaScript Hugging Face library (@huggingface/transformers,
 * a dev dependency) and tokenizes text with the added tokens to the expected ids.
 */
import { AutoTokenizer, env } from '@huggingface/transformers';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../fixtures/models';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';

interface EncodingLike {
  ids?: number[];
}
interface TransformersTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): number[] | EncodingLike;
  apply_chat_template(messages: { role: string; content: string }[], options: { tokenize: false }): string;
}

const TEXT = '<s><|im_start|><|tool|></s><|im_end|>';
const IDS = [1, 64, 66, 2, 65];

describe('the output tokenizer in @huggingface/transformers', () => {
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

  it('AutoTokenizer loads it and encodes the added tokens', async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir + '/';
    const tokenizer = (await AutoTokenizer.from_pretrained('union')) as unknown as TransformersTokenizer;
    const encoded = tokenizer.encode(TEXT, { add_special_tokens: false });
    expect(Array.isArray(encoded) ? encoded : encoded.ids).toEqual(IDS);
    // the chatml template written into tokenizer_config.json renders
    expect(tokenizer.apply_chat_template([{ role: 'user', content: 'hi' }], { tokenize: false })).toBe('<|im_start|>user\nhi<|im_end|>\n');
  });
});
