import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { buildPlan, loadModelMetadata, needsTokenizerFiles, PlanError, type ModelMetadata } from '../../src/plan';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeTinyModel } from '../fixtures/models';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';

async function metadata(dir: string, folders: string[], tokenizer = true): Promise<Map<string, ModelMetadata>> {
  const map = new Map<string, ModelMetadata>();
  for (const folder of folders) map.set(folder, await loadModelMetadata(nodeModelFolder(join(dir, folder), folder), folder, undefined, { tokenizer }));
  return map;
}

function plan(yaml: string, models: Map<string, ModelMetadata>) {
  return buildPlan(parseMergeConfig(yaml).config, models, {});
}

function planError(fn: () => unknown): PlanError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PlanError) return error;
    throw error;
  }
  throw new Error('expected a PlanError');
}

describe('planning tokenizers', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    await makeTinyModel(join(dir, 'base'), { seed: 1 });
    await makeTinyModel(join(dir, 'chatml'), { seed: 2, vocabSize: 66, tokenizer: { baseVocab: 64, addedTokens: ['<|im_start|>', '<|im_end|>'] } });
    await makeTinyModel(join(dir, 'notok'), { seed: 3, tokenizer: false });
  });

  it('describes the aligned embeddings as row maps and default rows', async () => {
    const models = await metadata(dir, ['base', 'chatml']);
    const p = plan('models:\n  - model: base\n  - model: chatml\nmerge_method: linear\nparameters: {weight: 1}\nbase_model: base\ntokenizer_source: union\n', models);
    for (const name of ['model.embed_tokens.weight', 'lm_head.weight']) {
      const job = p.jobs.find((j) => j.name === name)!;
      expect(job.shape).toEqual([66, 32]);
      expect(job.byteLength).toBe(66 * 32 * 4);
      expect(job.alignment!.tokens).toBe(66);
      const [base, chat] = job.inputs;
      expect(base.model).toBe('base');
      expect(Array.from(base.rowMap!)).toEqual([...Array.from({ length: 64 }, (_, i) => i), -1, -1]);
      expect(Array.from(chat.rowMap!)).toEqual(Array.from({ length: 66 }, (_, i) => i));
      // rows 64 and 65 default to the chat model's own rows (it is their only owner)
      const d = job.alignment!.defaults;
      expect(Array.from(d.rows)).toEqual([64, 65]);
      expect(Array.from(d.start)).toEqual([0, 1, 2]);
      expect(Array.from(d.input)).toEqual([1, 1]);
      expect(Array.from(d.row)).toEqual([64, 65]);
    }
    // other tensors are untouched
    expect(p.jobs.find((j) => j.name === 'model.norm.weight')!.alignment).toBeUndefined();
    expect(JSON.parse(p.textFiles['config.json']).vocab_size).toBe(66);
    expect(Object.keys(p.textFiles)).toEqual(expect.arrayContaining(['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']));
    expect(p.copyFiles).toEqual([{ model: 'base', file: 'generation_config.json' }]);
    expect(p.tokenizer).toEqual({ source: 'union', tokens: 66, rows: 66 });
  });

  it('warns that different vocabularies without a tokenizer source garble the merge', async () => {
    const models = await metadata(dir, ['base', 'chatml'], false);
    const p = plan('models:\n  - model: base\n  - model: chatml\nmerge_method: linear\nparameters: {weight: 1}\nbase_model: base\n', models);
    expect(p.warnings.join('\n')).toMatch(/embedding sizes differ.*different vocabularies.*tokenizer_source: union/);
    expect(p.jobs[0].shape).toEqual([64, 32]);
    expect(p.tokenizer).toEqual({ source: 'copied from base' });
    const ta = plan('models:\n  - model: chatml\nmerge_method: task_arithmetic\nparameters: {weight: 1}\nbase_model: base\n', models);
    expect(ta.warnings.join('\n')).toMatch(/chatml \[66, 32\] is cut to the base's \[64, 32\].*different vocabularies/);
  });

  it('points at the YAML key when a tokenizer source or token source is not a merged model', async () => {
    const models = await metadata(dir, ['base', 'chatml']);
    const head = 'models:\n  - model: base\n  - model: chatml\nmerge_method: linear\nparameters: {weight: 1}\nbase_model: base\n';
    expect(planError(() => plan(head + 'tokenizer_source: other\n', models)).yamlPath).toBe('tokenizer_source');
    const e = planError(() => plan(head + 'tokenizer:\n  source: union\n  tokens:\n    x: {source: other}\n', models));
    expect(e.yamlPath).toBe('tokenizer.tokens["x"].source');
    const missing = planError(() => plan(head + 'tokenizer:\n  source: base\n  tokens:\n    _tok_5: {source: {kind: model_token, model: base, token: nope}}\n', models));
    expect(missing.yamlPath).toBe('tokenizer');
    expect(missing.message).toContain('"nope" is not in the vocabulary of base');
  });

  it('needs tokenizer.json of the base model to build a tokenizer', async () => {
    const models = await metadata(dir, ['notok', 'base']);
    const e = planError(() => plan('models:\n  - model: notok\n  - model: base\nmerge_method: linear\nparameters: {weight: 1}\ntokenizer_source: union\n', models));
    expect(e.message).toContain('notok');
    expect(e.yamlPath).toBe('tokenizer_source');
  });

  it('a model without tokenizer.json is taken to share the base vocabulary', async () => {
    const models = await metadata(dir, ['base', 'notok']);
    const p = plan('models:\n  - model: base\n  - model: notok\nmerge_method: linear\nparameters: {weight: 1}\nbase_model: base\ntokenizer_source: union\n', models);
    expect(p.warnings.join('\n')).toContain('Model notok has no tokenizer.json');
    expect(Array.from(p.jobs[0].inputs[1].rowMap!)).toEqual(Array.from({ length: 64 }, (_, i) => i));
  });

  it('--no-copy-tokenizer: a built tokenizer is still written, a chat template alone is not', async () => {
    const models = await metadata(dir, ['base', 'chatml']);
    const head = 'models:\n  - model: base\n  - model: chatml\nmerge_method: linear\nparameters: {weight: 1}\nbase_model: base\n';
    const built = buildPlan(parseMergeConfig(head + 'tokenizer_source: union\n').config, models, { copyTokenizer: false });
    expect(Object.keys(built.textFiles)).toContain('tokenizer.json');
    expect(built.copyFiles).toEqual([]);
    const template = buildPlan(parseMergeConfig(head + 'chat_template: chatml\n').config, models, { copyTokenizer: false });
    expect(Object.keys(template.textFiles)).not.toContain('tokenizer_config.json');
    expect(template.warnings.join('\n')).toContain('the chat template is not saved');
  });

  it('reads tokenizer files only when the config needs them', async () => {
    const config = (extra: string) => parseMergeConfig(`models:\n  - model: a\nmerge_method: linear\nparameters: {weight: 1}\n${extra}`).config;
    expect(needsTokenizerFiles(config(''))).toBe(false);
    expect(needsTokenizerFiles(config('chat_template: chatml\n'))).toBe(true);
    expect(needsTokenizerFiles(config('tokenizer: {source: base}\n'))).toBe(true);
    const models = await metadata(dir, ['base'], false);
    expect(models.get('base')!.tokenizerFiles).toBeUndefined();
    expect(() => plan('models:\n  - model: base\nmerge_method: linear\nparameters: {weight: 1}\ntokenizer_source: base\n', models)).toThrow(/not loaded/);
  });

  it('alloy plan shows the tokenizer and the aligned inputs', async () => {
    writeConfig(dir, 'u.yml', 'models:\n  - model: ./base\n  - model: ./chatml\nmerge_method: linear\nparameters: {weight: 1}\nbase_model: ./base\ntokenizer: {source: union, pad_to_multiple_of: 64}\nchat_template: chatml\n');
    const r = await runAlloy(['plan', 'u.yml'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Tokenizer: union, 66 tokens, 128 embedding rows; chat template: chatml (built-in)');
    expect(r.stdout).toContain('model.embed_tokens.weight [128, 32]');
    expect(r.stdout).toContain('./base (base): model.embed_tokens.weight F32 weight=1 (rows aligned to the vocabulary: 64 own)');
  });
});
