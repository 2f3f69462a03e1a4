import { describe, expect, it } from 'vitest';
import { ConfigError, formatModelReference, modelPathKind, parseModelReference, sameModel } from '../../src/config';

describe('parseModelReference', () => {
  it('string form path[@revision][+lora[@revision]]', () => {
    expect(parseModelReference('org/model')).toEqual({ path: 'org/model' });
    expect(parseModelReference('org/model@main')).toEqual({ path: 'org/model', revision: 'main' });
    expect(parseModelReference('org/model@v1+org/adapter@abc123')).toEqual({
      path: 'org/model',
      revision: 'v1',
      lora: { path: 'org/adapter', revision: 'abc123' },
    });
    expect(parseModelReference('./local/dir+../lora')).toEqual({ path: './local/dir', lora: { path: '../lora' } });
  });

  it('dict form', () => {
    expect(
      parseModelReference({ model: { path: 'org/m', revision: 'r' }, lora: { path: 'org/l' }, override_architecture: 'LlamaForCausalLM' }),
    ).toEqual({ path: 'org/m', revision: 'r', lora: { path: 'org/l' }, override_architecture: 'LlamaForCausalLM' });
    expect(parseModelReference({ model: 'org/m@r' })).toEqual({ path: 'org/m', revision: 'r' });
  });

  it('errors carry the given path', () => {
    const cases: [unknown, string, RegExp][] = [
      ['a@b@c', 'models[0].model', /more than one '@'/],
      ['a+b+c', 'models[0].model', /more than one '\+'/],
      ['a+b@c@d', 'models[0].model', /more than one '@'/],
      ['', 'models[0].model', /empty/],
      ['a@', 'models[0].model', /revision .* is empty/],
      [42, 'models[0].model', /must be a string/],
      [{ lora: { path: 'x' } }, 'models[0].model.model', /needs `model/],
      [{ model: { path: 'x', revision: 7 } }, 'models[0].model.model.revision', /quote commit hashes/],
    ];
    for (const [value, path, message] of cases) {
      let caught: unknown;
      try {
        parseModelReference(value, 'models[0].model');
      } catch (error) {
        caught = error;
      }
      expect(caught, String(value)).toBeInstanceOf(ConfigError);
      const issue = (caught as ConfigError).issues[0];
      expect(issue.path).toBe(path);
      expect(issue.message).toMatch(message);
    }
  });
});

describe('formatModelReference', () => {
  it('writes the string form back', () => {
    for (const text of ['org/m', 'org/m@rev', 'org/m+org/l', 'org/m@r1+org/l@r2']) {
      expect(formatModelReference(parseModelReference(text))).toBe(text);
    }
    expect(formatModelReference({ path: 'org/m', override_architecture: 'X' })).toBe('org/m');
  });

  it('sameModel compares the string forms', () => {
    expect(sameModel({ path: 'a' }, parseModelReference({ model: { path: 'a' } }))).toBe(true);
    expect(sameModel({ path: 'a' }, { path: 'a', revision: 'main' })).toBe(false);
  });
});

describe('modelPathKind', () => {
  it('takes namespace/name with Hub-valid parts as a Hub id', () => {
    for (const id of ['mistralai/Mistral-7B-v0.1', 'org/model', 'a/b', 'Qwen/Qwen2.5-0.5B', 'user_1/my.model-2', 'meta-llama/Llama-3.2-1B']) {
      expect(modelPathKind(id), id).toBe('hub');
    }
  });

  it('takes relative, absolute, home, Windows and reserved-namespace paths as local folders', () => {
    for (const path of [
      'models/ft_a',
      'Models/ft_a',
      'datasets/x',
      'spaces/x',
      './x',
      '.x/y',
      '../x',
      '../../x',
      '/abs/path',
      '/x',
      '~/x',
      'C:\\x',
      'C:/x',
      'd:\\models\\ft',
      'dir\\ft',
      '\\\\server\\share\\m',
      'a/b/c',
      'org/',
      '/org',
      'ft_a',
      'gpt2',
      'org/model-',
      'org--x/model',
      'org/mo..del',
      'org/has space',
      `org/${'x'.repeat(97)}`,
    ]) {
      expect(modelPathKind(path), path).toBe('local');
    }
  });
});
