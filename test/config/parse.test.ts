import { describe, expect, it } from 'vitest';
import { ConfigError, parseMergeConfig, UnsupportedConfigError } from '../../src/config';
import { findMethod, MERGEKIT_METHOD_NAMES } from '../../src/methods';
import { errorsOf, expectError, warningsOf } from './helpers';
import { TIES_YML } from './examples';

const LINEAR = (extra = '') => `models:
  - model: a/one
    parameters:
      weight: 1
  - model: b/two
    parameters:
      weight: 0.5
merge_method: linear
${extra}`;

describe('YAML syntax', () => {
  it('accepts CRLF line ends, comments and flow style', () => {
    const flow =
      '# a comment\r\n' +
      "{merge_method: ties, base_model: 'base/m', # inline comment\r\n" +
      ' models: [{model: a/one, parameters: {weight: [0, 1], density: 0.5}}, {model: base/m}],\r\n' +
      ' parameters: {normalize: yes}}\r\n';
    const { config } = parseMergeConfig(flow);
    expect(config.models?.[0].parameters).toEqual({ weight: [0, 1], density: 0.5 });
    expect(config.parameters).toEqual({ normalize: 1 });
    const crlf = parseMergeConfig(TIES_YML.replace(/\n/g, '\r\n'));
    expect(crlf.config).toEqual(parseMergeConfig(TIES_YML).config);
  });

  it('reports line and column on CRLF files', () => {
    const yaml = LINEAR('dtype: bf16\n').replace(/\n/g, '\r\n');
    expectError(yaml, 'dtype', 'write bfloat16', { line: 9, column: 8 });
  });

  it('ignores a byte-order mark', () => {
    expect(parseMergeConfig(`\uFEFF${LINEAR()}`).config.merge_method).toBe('linear');
  });

  it('supports anchors, aliases and merge keys', () => {
    const { config } = parseMergeConfig(`
models:
  - model: a/one
    parameters: &p {weight: 0.5, density: 0.7}
  - model: b/two
    parameters:
      <<: *p
      density: 0.2
merge_method: ties
base_model: a/one
`);
    expect(config.models?.[1].parameters).toEqual({ weight: 0.5, density: 0.2 });
  });

  it('rejects more than one document, after reporting the other errors too', () => {
    const errors = errorsOf(`${LINEAR('dtype: fp16\n')}---\nmerge_method: slerp\n`);
    expect(errors.map((e) => [e.path, e.line])).toEqual([
      ['dtype', 9],
      ['', 10],
    ]);
    expect(errors[1].message).toMatch(/2 YAML documents/);
  });

  it('reports YAML syntax errors with their position', () => {
    const errors = errorsOf('models:\n  - model: a\n merge_method: [linear\n');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0].message).toMatch(/YAML syntax error/);
    expect(errors[0].line).toBeGreaterThan(1);
  });

  it('reports duplicate keys', () => {
    const errors = errorsOf(`${LINEAR()}merge_method: ties\n`);
    expect(errors[0].message).toMatch(/unique/);
    expect(errors[0].line).toBe(9);
  });

  it('rejects an empty document and a non-mapping root', () => {
    expect(errorsOf('')[0].message).toMatch(/empty/);
    expect(errorsOf('# nothing\n')[0].message).toMatch(/empty/);
    expect(errorsOf('- model: a\n')[0]).toMatchObject({ path: '', line: 1, column: 1 });
  });
});

describe('ConfigError', () => {
  it('collects every error and lists them as file:line:col: path: message', () => {
    const yaml = `models:
  - model: a/one
    parameters:
      weight: "half"
  - model: b@x@y
merge_method: linear
dtype: fp16
chat_template: nope
`;
    let caught: unknown;
    try {
      parseMergeConfig(yaml, 'cfg.yml');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.file).toBe('cfg.yml');
    expect(error.issues.map((i) => i.path)).toEqual(['models[0].parameters.weight', 'models[1].model', 'dtype', 'chat_template']);
    const lines = error.message.split('\n');
    expect(lines[0]).toBe('Invalid merge config cfg.yml (4 errors):');
    expect(lines[1]).toMatch(/^cfg\.yml:4:15: models\[0\]\.parameters\.weight: parameter values must be numbers.*strings such as 'half' are not allowed/);
    expect(lines[2]).toMatch(/^cfg\.yml:5:12: models\[1\]\.model: .*more than one '@'/);
    expect(lines[3]).toMatch(/^cfg\.yml:7:8: dtype: unknown dtype 'fp16': write float16/);
    expect(lines[4]).toMatch(/^cfg\.yml:8:16: chat_template: Invalid chat template/);
  });
});

describe('top-level schema', () => {
  it('requires merge_method', () => {
    expectError('models:\n  - model: a\n', 'merge_method', 'merge_method is required', { line: 1, column: 1 });
    expectError('merge_method: 3\nmodels:\n  - model: a\n', 'merge_method', 'must be a method name', { line: 1, column: 15 });
  });

  it('needs exactly one of models, slices, modules', () => {
    expectError('merge_method: linear\n', '', 'one of models');
    const both = `${LINEAR()}slices:\n  - sources:\n      - model: a/one\n        layer_range: [0, 2]\n`;
    expectError(both, 'slices', 'cannot both be given', { line: 9, column: 1 });
  });

  it('rejects empty and malformed lists', () => {
    expectError('merge_method: linear\nmodels: []\n', 'models', 'empty', { line: 2, column: 9 });
    expectError('merge_method: linear\nmodels: a/one\n', 'models', 'must be a list');
    expectError('merge_method: linear\nmodels:\n  - a/one\n', 'models[0]', 'write `- model: a/one`', { line: 3, column: 5 });
    expectError('merge_method: linear\nmodels:\n  - parameters: {weight: 1}\n', 'models[0].model', 'model is required', { line: 3, column: 5 });
  });

  it('unknown merge methods, with a suggestion', () => {
    expectError(LINEAR().replace('merge_method: linear', 'merge_method: linaer'), 'merge_method', "did you mean 'linear'", {
      line: 8,
      column: 15,
    });
    expectError(LINEAR().replace('merge_method: linear', 'merge_method: frobnicate'), 'merge_method', "unknown merge method 'frobnicate'");
  });

  it('mergekit methods Alloy does not implement yet: valid for mergekit, unsupported when merging', () => {
    const missing = MERGEKIT_METHOD_NAMES.find((name) => !findMethod(name));
    if (missing === undefined) return; // every mergekit method is implemented
    const yaml = `models:\n  - model: a/one\n  - model: b/two\nmerge_method: ${missing}\nbase_model: a/one\n`;
    let caught: unknown;
    try {
      parseMergeConfig(yaml, 'x.yml');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(UnsupportedConfigError);
    const issue = (caught as UnsupportedConfigError).issues[0];
    expect(issue).toMatchObject({ path: 'merge_method', line: 4, column: 15 });
    expect(issue.message).toContain(`merge method '${missing}' is not supported by Alloy yet`);
    expect((caught as Error).message).toMatch(/^cannot merge x\.yml with Alloy yet:\nx\.yml:4:15: merge_method: /);
  });

  it('dtype names: torch. prefix stripped, short names suggest the right one', () => {
    expect(parseMergeConfig(LINEAR('dtype: torch.bfloat16\nout_dtype: float32\n')).config).toMatchObject({ dtype: 'bfloat16', out_dtype: 'float32' });
    expectError(LINEAR('dtype: bf16\n'), 'dtype', "unknown dtype 'bf16': write bfloat16", { line: 9, column: 8 });
    expectError(LINEAR('out_dtype: fp16\n'), 'out_dtype', 'write float16');
    expectError(LINEAR('dtype: float64\n'), 'dtype', /accepts bfloat16, float16, float32, int64/);
    expectError(LINEAR('dtype: 16\n'), 'dtype', 'must be one of');
  });

  it('unknown keys are accepted with a warning naming each, with "did you mean"', () => {
    const warnings = warningsOf(LINEAR('dtpye: float16\nmy_note: hello\n'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ path: 'dtpye', line: 9, column: 1, severity: 'warning' });
    expect(warnings[0].message).toMatch(/unknown key 'dtpye'.*did you mean 'dtype'/);
    expect(warnings[1]).toMatchObject({ path: 'my_note', line: 10 });
    expect(warnings[1].message).not.toMatch(/did you mean/);
    const nested = warningsOf(LINEAR().replace('  - model: b/two\n', '  - model: b/two\n    paramters: {}\n'));
    expect(nested[0]).toMatchObject({ path: 'models[1].paramters', line: 6, column: 5 });
    expect(nested[0].message).toMatch(/did you mean 'parameters'/);
  });
});

describe('parameter values', () => {
  const withWeight = (value: string) => LINEAR().replace('weight: 1\n', `weight: ${value}\n`);

  it('booleans become 1/0, also inside gradients and filter values', () => {
    const { config } = parseMergeConfig(
      LINEAR('parameters:\n  normalize: false\n  x: [true, 0.5]\n  y: [{filter: mlp, value: true}]\n'),
    );
    expect(config.parameters).toEqual({ normalize: 0, x: [1, 0.5], y: [{ filter: 'mlp', value: 1 }] });
  });

  it('a null filter is the same as none', () => {
    const { config } = parseMergeConfig(withWeight('[{filter: null, value: 0.4}, {filter: "*", value: [0.1, 0.2]}]'));
    expect(config.models?.[0].parameters?.weight).toEqual([{ value: 0.4 }, { filter: '*', value: [0.1, 0.2] }]);
  });

  it('strings are rejected', () => {
    expectError(withWeight('high'), 'models[0].parameters.weight', 'strings such as', { line: 4, column: 15 });
    expectError(withWeight('[0, "one"]'), 'models[0].parameters.weight[1]', 'strings such as', { line: 4, column: 19 });
    expectError(withWeight('[{filter: mlp, value: x}]'), 'models[0].parameters.weight[0].value', 'strings such as');
  });

  it('quoted numbers are read as numbers, with a warning (mergekit converts them too)', () => {
    const { config, warnings } = parseMergeConfig(withWeight('" 0.5"').replace('weight: 0.5', 'weight: [0, "1e-1"]'));
    expect(config.models?.[0].parameters?.weight).toBe(0.5);
    expect(config.models?.[1].parameters?.weight).toEqual([0, 0.1]);
    expect(warnings.map((w) => [w.path, w.line, w.column])).toEqual([
      ['models[0].parameters.weight', 4, 15],
      ['models[1].parameters.weight[1]', 7, 19],
    ]);
    expect(warnings[0].message).toMatch(/quoted string; mergekit reads it as the number 0.5: write 0.5 without quotes/);
    expectError(withWeight('"nan"'), 'models[0].parameters.weight', 'finite');
  });

  it('a lone {filter, value} mapping must be inside a list', () => {
    expectError(withWeight('{filter: mlp, value: 0.5}'), 'models[0].parameters.weight', 'conditional parameters must be inside a list', {
      line: 4,
      column: 15,
    });
    const block = LINEAR().replace('weight: 1\n', 'weight:\n        filter: mlp\n        value: 0.5\n');
    expectError(block, 'models[0].parameters.weight', 'conditional parameters must be inside a list', { line: 5, column: 9 });
  });

  it('other malformed values', () => {
    expectError(withWeight('[]'), 'models[0].parameters.weight', 'empty list');
    expectError(withWeight(''), 'models[0].parameters.weight', 'has no value');
    expectError(withWeight('[[1, 2]]'), 'models[0].parameters.weight[0]', 'cannot be nested');
    expectError(withWeight('[0.5, {value: 1}]'), 'models[0].parameters.weight[1]', 'only numbers');
    expectError(withWeight('[{filter: mlp}]'), 'models[0].parameters.weight[0].value', 'needs a value');
    expectError(withWeight('[{filter: 3, value: 1}]'), 'models[0].parameters.weight[0].filter', 'filter must be a string');
    expectError(withWeight('[{value: [{value: 1}]}]'), 'models[0].parameters.weight[0].value', 'cannot be nested');
    expectError(withWeight('.inf'), 'models[0].parameters.weight', 'finite');
    expectError(LINEAR('parameters: [1, 2]\n'), 'parameters', 'must be a mapping');
  });

  it('unknown keys of a filter entry warn', () => {
    const warnings = warningsOf(withWeight('[{filtre: mlp, value: 1}]'));
    expect(warnings[0]).toMatchObject({ path: 'models[0].parameters.weight[0].filtre' });
    expect(warnings[0].message).toMatch(/did you mean 'filter'/);
  });
});

describe('slices', () => {
  const SLICES = (ranges: string[], extra = '') => `slices:
  - sources:
${ranges.map((r, i) => `      - model: m/${i}\n        layer_range: ${r}`).join('\n')}
merge_method: passthrough
${extra}`;

  it('layer_range: two integers, 0 <= start <= end', () => {
    expect(parseMergeConfig(SLICES(['[4, 4]'])).config.slices?.[0].sources[0].layer_range).toEqual([4, 4]);
    expectError(SLICES(['[0, 24, 3]']), 'slices[0].sources[0].layer_range', 'two integers', { line: 4, column: 22 });
    expectError(SLICES(['[0, 2.5]']), 'slices[0].sources[0].layer_range', 'two integers');
    expectError(SLICES(['[5, 2]']), 'slices[0].sources[0].layer_range', '0 ≤ start ≤ end');
    expectError(SLICES(['[-1, 2]']), 'slices[0].sources[0].layer_range', '0 ≤ start ≤ end');
    expectError(SLICES(['0-24']), 'slices[0].sources[0].layer_range', 'two integers');
    expectError('slices:\n  - sources:\n      - model: a\nmerge_method: passthrough\n', 'slices[0].sources[0].layer_range', 'layer_range is required', {
      line: 3,
      column: 9,
    });
  });

  it('all sources of a slice must have the same number of layers', () => {
    const yaml = `slices:
  - sources:
      - model: a
        layer_range: [0, 24]
      - model: b
        layer_range: [4, 24]
merge_method: slerp
base_model: a
parameters:
  t: 0.5
`;
    expectError(yaml, 'slices[0].sources[1].layer_range', /All inputs to a slice must contain the same number of layers: this source has 20, but the first \(a\) has 24/, {
      line: 6,
      column: 22,
    });
  });

  it('a slice needs sources; residual_weight is read and ignored with a warning', () => {
    expectError('slices:\n  - base_model: a\nmerge_method: passthrough\n', 'slices[0].sources', 'needs sources');
    expectError('slices:\n  - sources: []\nmerge_method: passthrough\n', 'slices[0].sources', 'empty');
    const { config, warnings } = parseMergeConfig(SLICES(['[0, 2]']).replace('  - sources:', '  - residual_weight: 0.3\n    sources:'));
    expect(config.slices?.[0].residual_weight).toBe(0.3);
    expect(warnings[0]).toMatchObject({ path: 'slices[0].residual_weight', line: 2 });
  });

  it('modules: are read, with a warning that Alloy cannot run them', () => {
    const { config, warnings } = parseMergeConfig(`modules:
  text_decoder:
    models:
      - model: a
        parameters: {weight: 1}
    parameters: {normalize: true}
merge_method: linear
`);
    expect(config.modules?.text_decoder.models?.[0].model).toEqual({ path: 'a' });
    expect(config.modules?.text_decoder.parameters).toEqual({ normalize: 1 });
    expect(warnings.map((w) => w.path)).toEqual(['modules']);
  });
});

describe('model references in configs', () => {
  it('string and dict forms', () => {
    const { config } = parseMergeConfig(`models:
  - model: org/a@main
    parameters: {weight: 1}
  - model:
      model: {path: org/b, revision: v2}
      override_architecture: MistralForCausalLM
    parameters: {weight: 1}
merge_method: linear
`);
    expect(config.models?.map((m) => m.model)).toEqual([
      { path: 'org/a', revision: 'main' },
      { path: 'org/b', revision: 'v2', override_architecture: 'MistralForCausalLM' },
    ]);
  });

  it('LoRA references parse and are merged (the adapter is applied per tensor, docs/lora.md)', () => {
    const yaml = LINEAR().replace('model: b/two', 'model: b/two+c/lora@r1');
    const { config } = parseMergeConfig(yaml);
    expect(config.models?.[1].model).toEqual({ path: 'b/two', lora: { path: 'c/lora', revision: 'r1' } });
    const dict = parseMergeConfig(`${LINEAR()}parameters: {weight: 1}\nbase_model: {model: {path: x}, lora: {path: y}}\n`);
    expect(dict.config.base_model).toEqual({ path: 'x', lora: { path: 'y' } });
  });

  it('malformed references', () => {
    expectError(LINEAR().replace('model: b/two', 'model: b+c+d'), 'models[1].model', "more than one '+'");
    expectError(LINEAR().replace('model: b/two', 'model: "b@"'), 'models[1].model', 'revision');
    expectError(LINEAR().replace('model: b/two', 'model: 12'), 'models[1].model', 'model reference must be');
    expectError(LINEAR().replace('model: b/two', 'model: {model: {revision: x}}'), 'models[1].model.model.path', 'path is required');
  });
});

describe('tokenizer settings', () => {
  it('tokenizer_source: union, base, a model; legacy model: prefix stripped', () => {
    expect(parseMergeConfig(LINEAR('tokenizer_source: union\n')).config.tokenizer_source).toBe('union');
    expect(parseMergeConfig(LINEAR('tokenizer_source: base\n')).config.tokenizer_source).toBe('base');
    expect(parseMergeConfig(LINEAR('tokenizer_source: a/one\n')).config.tokenizer_source).toEqual({ path: 'a/one' });
    expect(parseMergeConfig(LINEAR('tokenizer_source: model:a/one@rev\n')).config.tokenizer_source).toEqual({ path: 'a/one', revision: 'rev' });
  });

  it('tokenizer block (docs/tokenizers.md §1)', () => {
    const { config } = parseMergeConfig(
      LINEAR(`tokenizer:
  source: union
  pad_to_multiple_of: 64
  tokens:
    <|im_start|>:
      source: b/two
    <|im_end|>:
      source: {kind: model_token, model: a/one, token_id: 2}
      force: true
    <pad>:
      source: {kind: zero}
    <x>:
      source: {kind: model_token, model: a/one, token: "</s>"}
`),
    );
    expect(config.tokenizer).toEqual({
      source: 'union',
      pad_to_multiple_of: 64,
      tokens: {
        '<|im_start|>': { source: { kind: 'model', model: { path: 'b/two' } } },
        '<|im_end|>': { source: { kind: 'model_token', model: { path: 'a/one' }, token_id: 2 }, force: true },
        '<pad>': { source: { kind: 'zero' } },
        '<x>': { source: { kind: 'model_token', model: { path: 'a/one' }, token: '</s>' } },
      },
    });
    expect(parseMergeConfig(LINEAR('tokenizer: {pad_to_multiple_of: 8}\n')).config.tokenizer).toEqual({ source: 'union', pad_to_multiple_of: 8 });
  });

  it('tokenizer errors', () => {
    expectError(LINEAR('tokenizer_source: union\ntokenizer: {source: base}\n'), 'tokenizer', 'cannot both be given', { line: 10 });
    expectError(LINEAR('tokenizer: {pad_to_multiple_of: -8}\n'), 'tokenizer.pad_to_multiple_of', 'positive integer');
    expect(warningsOf(LINEAR('tokenizer: {pad_to_multiple_of: 0}\n'))[0].message).toMatch(/0 means no padding/);
    expectError(LINEAR('tokenizer: {pad_to_multiple_of: 6.5}\n'), 'tokenizer.pad_to_multiple_of', 'positive integer');
    const token = (source: string) => LINEAR(`tokenizer:\n  tokens:\n    <t>:\n      source: ${source}\n`);
    expectError(token('{kind: model_token, model: a/one}'), 'tokenizer.tokens["<t>"].source', 'exactly one of the two', { line: 12, column: 15 });
    expectError(token('{kind: model_token, model: a/one, token_id: 1, token: x}'), 'tokenizer.tokens["<t>"].source', 'only one of token_id and token');
    expectError(token('{kind: model_token, model: a/one, token_id: -1}'), 'tokenizer.tokens["<t>"].source.token_id', 'non-negative integer');
    expectError(token('{kind: zeros}'), 'tokenizer.tokens["<t>"].source.kind', "did you mean 'zero'");
    expectError(LINEAR('tokenizer:\n  tokens:\n    <t>: {force: maybe}\n'), 'tokenizer.tokens["<t>"].force', 'true or false');
  });
});

describe('chat_template (docs/tokenizers.md §5)', () => {
  it('built-in names, auto and literal Jinja templates', () => {
    for (const name of ['alpaca', 'chatml', 'llama3', 'mistral', 'exaone', 'auto']) {
      expect(parseMergeConfig(LINEAR(`chat_template: ${name}\n`)).config.chat_template).toBe(name);
    }
    const jinja = '{% for m in messages %}{{ m.content }}{% endfor %}';
    expect(parseMergeConfig(LINEAR(`chat_template: "${jinja}"\n`)).config.chat_template).toBe(jinja);
  });

  it('anything else is an "Invalid chat template"', () => {
    expectError(LINEAR('chat_template: chatm\n'), 'chat_template', /Invalid chat template.*did you mean 'chatml'/, { line: 9, column: 16 });
    expectError(LINEAR('chat_template: "{{ short }}"\n'), 'chat_template', 'Invalid chat template');
    expectError(LINEAR('chat_template: a long template without braces\n'), 'chat_template', 'Invalid chat template');
    expectError(LINEAR('chat_template: 3\n'), 'chat_template', 'must be a string');
  });
});
