import { describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { setModelAdapter, splitAdapterKey, withAdapter } from '../../src/ui/lib/adapter-edit';
import { configText } from '../../src/ui/lib/config-text';

describe('a model row’s adapter in the YAML (model+adapter)', () => {
  it('splits a key into the model and the adapter as written after +', () => {
    expect(splitAdapterKey('org/base@v1+org/lora@abc')).toEqual({ model: 'org/base@v1', adapter: { path: 'org/lora', revision: 'abc' }, adapterName: 'org/lora@abc' });
    expect(splitAdapterKey('./base+./my-lora')).toEqual({ model: './base', adapter: { path: './my-lora' }, adapterName: './my-lora' });
    expect(splitAdapterKey('org/base')).toEqual({ model: 'org/base' });
    expect(withAdapter('org/base+old/lora', { path: 'new/lora', revision: 'r1' })).toBe('org/base+new/lora@r1');
    expect(withAdapter('org/base+old/lora', undefined)).toBe('org/base');
  });

  it('sets the adapter on every reference to the model (models, base_model, slices) and takes it off again', () => {
    const yaml = [
      'slices:',
      '  - sources:',
      '      - model: org/base',
      '        layer_range: [0, 2]',
      '      - model: org/ft',
      '        layer_range: [0, 2]',
      'merge_method: slerp',
      'base_model: org/base',
      'parameters: {t: 0.5}',
      '',
    ].join('\n');
    const { config } = parseMergeConfig(yaml);
    expect(setModelAdapter(config, 'org/base', { path: 'org/lora', revision: 'v2' })).toBe('org/base+org/lora@v2');
    const text = configText(config);
    expect(text).toContain('- model: org/base+org/lora@v2\n');
    expect(text).toContain('base_model: org/base+org/lora@v2\n');
    expect(text).toContain('- model: org/ft\n');
    const again = parseMergeConfig(text).config;
    expect(setModelAdapter(again, 'org/base+org/lora@v2', undefined)).toBe('org/base');
    const back = configText(again);
    expect(back).not.toContain('+');
    expect(back).toContain('base_model: org/base\n');
  });
});
