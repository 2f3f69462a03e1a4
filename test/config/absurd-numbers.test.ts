import { describe, expect, it } from 'vitest';
import { validateConfigText } from '../../src/config';
import { expectError } from './helpers';

const SLICES = (range: string) =>
  `slices:\n  - sources:\n      - {model: a/one, layer_range: ${range}}\n      - {model: b/two, layer_range: ${range}}\nmerge_method: slerp\nbase_model: a/one\nparameters: {t: 0.5}\n`;

describe('absurd numbers in a config are config errors with their YAML path', () => {
  it('a layer_range past any model (the planner checks the real layer count)', () => {
    expectError(SLICES('[0, 100000000]'), 'slices[0].sources[0].layer_range', 'layer_range [0, 100000000] goes past layer 100000, more than any model has', { line: 3, column: 37 });
    expectError(SLICES('[0, 1e300]'), 'slices[0].sources[1].layer_range', /goes past layer 100000/);
    expect(validateConfigText(SLICES('[0, 100000]')).ok).toBe(true);
  });

  it('a pad_to_multiple_of larger than any vocabulary', () => {
    const yaml = (n: number) => `models:\n  - {model: a/one, parameters: {weight: 1}}\nmerge_method: linear\ntokenizer: {source: union, pad_to_multiple_of: ${n}}\n`;
    expectError(yaml(1e12), 'tokenizer.pad_to_multiple_of', 'pad_to_multiple_of 1000000000000 is larger than any vocabulary needs (at most 65536)', { line: 4, column: 48 });
    expect(validateConfigText(yaml(65536)).ok).toBe(true);
  });
});

describe('weights that sum to 0 with normalizing on: refused as the merge would refuse them', () => {
  const linear = (w1: string, w2: string, extra = '') =>
    `models:\n  - {model: a/one, parameters: {weight: ${w1}}}\n  - {model: b/two, parameters: {weight: ${w2}}}\nmerge_method: linear\n${extra}`;
  const fix = 'so normalizing would divide by zero. Change the weights or set `normalize: false`.';

  it('every weight 0, or weights that cancel', () => {
    expectError(linear('0', '0'), 'models[0].parameters.weight', `linear: the weights sum to 0 (every weight is 0), ${fix}`, { line: 2, column: 41 });
    expectError(linear('1', '-1'), 'models[0].parameters.weight', `linear: the weights sum to 0, ${fix}`);
    // Gradients that cross: [1, -1] + [-1, 1] is 0 at t = 0.5 (the middle layer).
    expectError(linear('[1, 0]', '[0, 0]', 'parameters: {normalize: true}\n'), 'models[0].parameters.weight', /sum to 0 \(at layer position t = 1\)/);
  });

  it('accepts weights that do not sum to 0, normalize off, filtered weights, and methods that divide by 1 instead', () => {
    expect(validateConfigText(linear('1', '0')).ok).toBe(true);
    expect(validateConfigText(linear('0', '0', 'parameters: {normalize: false}\n')).ok).toBe(true);
    expect(validateConfigText(linear('[{filter: mlp, value: 1}, {value: 1}]', '-1')).ok).toBe(true);
    const ta = 'models:\n  - {model: a/one, parameters: {weight: 0}}\nbase_model: b/two\nmerge_method: task_arithmetic\nparameters: {normalize: true}\n';
    expect(validateConfigText(ta).ok).toBe(true);
  });

  it('multislerp: normalize_weights', () => {
    const yaml = 'models:\n  - {model: a/one, parameters: {weight: 0}}\n  - {model: b/two, parameters: {weight: 0}}\nmerge_method: multislerp\n';
    expectError(yaml, 'models[0].parameters.weight', 'multislerp: the weights sum to 0 (every weight is 0), so normalizing would divide by zero. Change the weights or set `normalize_weights: false`.');
  });
});
