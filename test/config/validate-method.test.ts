import { describe, expect, it } from 'vitest';
import { parseMergeConfig, validateConfig, type MergeConfig } from '../../src/config';
import { errorsOf, expectError, warningsOf } from './helpers';

describe('base model policy', () => {
  it("'required' methods need base_model (top level or in every slice)", () => {
    expectError('models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: ties\n', 'base_model', "merge method 'ties' needs a base_model");
    const slices = `slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
      - {model: b, layer_range: [0, 2]}
    base_model: a
  - sources:
      - {model: a, layer_range: [2, 4]}
      - {model: b, layer_range: [2, 4]}
merge_method: slerp
parameters: {t: 0.5}
`;
    expectError(slices, 'slices[1].base_model', 'this slice has none', { line: 6, column: 5 });
    expect(() => parseMergeConfig(`${slices}base_model: b\n`)).not.toThrow();
  });

  it('with slices, the base must be one of the slice sources', () => {
    const yaml = `slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
      - {model: b, layer_range: [0, 2]}
merge_method: ties
base_model: c
parameters: {weight: 1}
`;
    expectError(yaml, 'slices[0].sources', 'is not among this slice', { line: 3, column: 7 });
    // slerp copies a lone source, so a one-source slice does not need the base
    expect(() =>
      parseMergeConfig('slices:\n  - sources:\n      - {model: a, layer_range: [0, 2]}\nmerge_method: slerp\nbase_model: c\nparameters: {t: 0.5}\n'),
    ).not.toThrow();
  });
});

describe('number of models', () => {
  it('slerp: exactly 2 models, counting an unlisted base_model', () => {
    const ok = 'models:\n  - model: a\nmerge_method: slerp\nbase_model: b\nparameters: {t: 0.5}\n';
    expect(() => parseMergeConfig(ok)).not.toThrow();
    expectError('models:\n  - model: a\nmerge_method: slerp\nbase_model: a\nparameters: {t: 0.5}\n', 'models', 'exactly 2 models');
    expectError(
      'models:\n  - model: a\n  - model: b\nmerge_method: slerp\nbase_model: c\nparameters: {t: 0.5}\n',
      'base_model',
      'set base_model to one of them',
      { line: 5, column: 13 },
    );
    expectError(
      'models:\n  - model: a\n  - model: b\n  - model: c\nmerge_method: slerp\nbase_model: c\nparameters: {t: 0.5}\n',
      'models',
      'at most 2 models',
    );
  });

  it('passthrough: exactly one source per slice, or one model', () => {
    expectError(
      'slices:\n  - sources:\n      - {model: a, layer_range: [0, 2]}\n      - {model: b, layer_range: [0, 2]}\nmerge_method: passthrough\n',
      'slices[0].sources',
      'exactly one model per slice',
      { line: 3, column: 7 },
    );
    expectError('models:\n  - model: a\n  - model: b\nmerge_method: passthrough\n', 'models', 'exactly one model');
    expectError('models:\n  - model: a\nmerge_method: passthrough\nbase_model: b\n', 'base_model', 'remove base_model');
    expect(() => parseMergeConfig('models:\n  - model: a\nmerge_method: passthrough\nbase_model: a\n')).not.toThrow();
  });

  it('a model listed twice warns', () => {
    const warnings = warningsOf('models:\n  - model: a\n  - model: a\nmerge_method: linear\nparameters: {weight: 1}\n');
    expect(warnings[0]).toMatchObject({ path: 'models[1]', line: 3 });
    expect(warnings[0].message).toMatch(/more than once/);
  });
});

describe('required parameters', () => {
  it("global: slerp's t at the top level or in every slice", () => {
    expectError('models:\n  - model: a\nmerge_method: slerp\nbase_model: b\n', 'parameters.t', "needs parameter 't'", { line: 1, column: 1 });
    const two = `slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
      - {model: b, layer_range: [0, 2]}
    parameters: {t: 0.3}
  - sources:
      - {model: a, layer_range: [2, 4]}
      - {model: b, layer_range: [2, 4]}
merge_method: slerp
base_model: a
`;
    expectError(two, 'slices[1].parameters.t', 'set neither here nor in the top-level parameters', { line: 6, column: 5 });
    expect(() => parseMergeConfig(two.replace('  - sources:\n      - {model: a, layer_range: [2, 4]}', '  - parameters: {t: 1}\n    sources:\n      - {model: a, layer_range: [2, 4]}'))).not.toThrow();
  });

  it('global parameter set only on a model is ignored (and still missing)', () => {
    const yaml = 'models:\n  - model: a\n    parameters: {t: 0.5}\nmerge_method: slerp\nbase_model: b\n';
    expectError(yaml, 'parameters.t', "needs parameter 't'");
  });

  it('a filtered list without a catch-all warns', () => {
    const warnings = warningsOf('models:\n  - model: a\nmerge_method: slerp\nbase_model: b\nparameters:\n  t: [{filter: mlp, value: 0.5}]\n');
    expect(warnings[0]).toMatchObject({ path: 'parameters.t', line: 6 });
    expect(warnings[0].message).toMatch(/catch-all/);
  });

  it('per-model: weight for every non-base model (source, slice or top level)', () => {
    const yaml = `models:
  - model: a
    parameters: {weight: 1}
  - model: b
  - model: base
merge_method: task_arithmetic
base_model: base
`;
    expectError(yaml, 'models[1]', 'task_arithmetic needs a weight for b', { line: 4, column: 5 });
    expect(errorsOf(yaml)).toHaveLength(1); // the base needs none
    expect(() => parseMergeConfig(`${yaml}parameters: {weight: 0.5}\n`)).not.toThrow();
    const slices = `slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
      - {model: base, layer_range: [0, 2]}
    parameters: {weight: 0.5}
merge_method: ties
base_model: base
`;
    expect(() => parseMergeConfig(slices)).not.toThrow();
  });

  it('linear: the base is an ordinary member and needs a weight too', () => {
    expectError('models:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\nmerge_method: linear\nbase_model: b\n', 'models[1]', 'linear needs a weight for b');
    expectError(
      'models:\n  - model: a\n    parameters: {weight: 1}\nmerge_method: linear\nbase_model: c\n',
      'base_model',
      'linear merges base_model c like any other model, so it needs a weight too',
      { line: 5, column: 13 },
    );
  });
});

describe('parameters the method does not declare', () => {
  it('warn "… is ignored by <method>", with "did you mean"', () => {
    const warnings = warningsOf(
      'models:\n  - model: a\n    parameters: {weight: 1, density: 0.5, wieght: 2}\nmerge_method: linear\n',
    );
    expect(warnings.map((w) => w.path)).toEqual(['models[0].parameters.density', 'models[0].parameters.wieght']);
    expect(warnings[0].message).toMatch(/parameter 'density' is ignored by linear/);
    expect(warnings[0]).toMatchObject({ line: 3, column: 29 });
    expect(warnings[1].message).toMatch(/did you mean 'weight'/);
  });

  it('per-model parameters of the base model are ignored', () => {
    const warnings = warningsOf(
      'models:\n  - model: a\n    parameters: {weight: 1}\n  - model: base\n    parameters: {weight: 1}\nmerge_method: ties\nbase_model: base\n',
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ path: 'models[1].parameters.weight', line: 5 });
    expect(warnings[0].message).toMatch(/base model is ignored by ties/);
  });

  it('out-of-range values warn', () => {
    const warnings = warningsOf(
      'models:\n  - model: a\n    parameters: {weight: 1, density: [1, 1.5]}\nmerge_method: ties\nbase_model: b\n',
    );
    expect(warnings[0].message).toMatch(/density 1.5 is outside the usual range \[0, 1\]/);
  });
});

describe('ties: density 0', () => {
  const ties = (density: string) => `models:
  - model: a
    parameters:
      weight: 1
      density: ${density}
merge_method: ties
base_model: base
`;
  it('is an error as a scalar, inside a gradient and inside a filter value', () => {
    expectError(ties('0'), 'models[0].parameters.density', 'needs density > 0', { line: 5, column: 16 });
    expectError(ties('[1, 0.5, 0]'), 'models[0].parameters.density', 'density 0 keeps no element');
    expectError(ties('[{filter: mlp, value: [0.5, 0]}, {value: 1}]'), 'models[0].parameters.density', 'density 0');
    expectError(`${ties('0.5')}parameters: {density: 0}\n`, 'parameters.density', 'density 0');
    expect(() => parseMergeConfig(ties('0.01'))).not.toThrow();
  });
  it('is fine for task_arithmetic (no pruning) and on the base model', () => {
    expect(() => parseMergeConfig(ties('0').replace('ties', 'task_arithmetic'))).not.toThrow();
    expect(() => parseMergeConfig(`${ties('0.5')}`.replace('  - model: a', '  - model: base\n    parameters: {density: 0}\n  - model: a'))).not.toThrow();
  });
});

describe('validateConfig on a config object (the app form)', () => {
  it('reports the same rules, with paths and without positions', () => {
    const config: MergeConfig = {
      merge_method: 'ties',
      models: [{ model: { path: 'a' }, parameters: { density: 0 } }],
      base_model: { path: 'b', lora: { path: 'l' } },
      tokenizer_source: 'union',
      tokenizer: { source: 'base' },
    };
    const issues = validateConfig(config).filter((i) => i.severity === 'error');
    // model+lora is mergeable now (docs/lora.md); the app's worker refuses adapters when it binds models.
    expect(issues.map((i) => i.path).sort()).toEqual(['models[0]', 'models[0].parameters.density', 'tokenizer']);
    expect(issues.every((i) => i.line === undefined && !('target' in i))).toBe(true);
  });

  it('an empty merge_method and layout are reported', () => {
    const issues = validateConfig({ merge_method: '' });
    expect(issues.map((i) => i.path)).toEqual(['', 'merge_method']);
  });
});
