import { describe, expect, it } from 'vitest';
import { ConfigError, parseMergeConfig, toOutputSlices, type ModelReference } from '../../src/config';
import { GRADIENT_SLERP_YML, TIES_YML } from './examples';

const layers = (counts: Record<string, number>) => (ref: ModelReference) => counts[ref.path] ?? 40;

describe('toOutputSlices', () => {
  it('models: one slice over all layers, base_model appended without parameters', () => {
    const { config } = parseMergeConfig(TIES_YML);
    const slices = toOutputSlices(config, () => 40);
    expect(slices).toHaveLength(1);
    expect(slices[0].sources.map((s) => [s.model.path, s.layer_range, s.parameters !== undefined])).toEqual([
      ['psmathur/orca_mini_v3_13b', [0, 40], true],
      ['garage-bAInd/Platypus2-13B', [0, 40], true],
      ['WizardLM/WizardMath-13B-V1.0', [0, 40], true],
      ['TheBloke/Llama-2-13B-fp16', [0, 40], false],
    ]);
    expect(slices[0].sources[0].parameters).toEqual({ density: [1, 0.7, 0.1], weight: 1 });
    expect(slices[0].base_model).toBeUndefined();
  });

  it('a listed base_model is not duplicated', () => {
    const { config } = parseMergeConfig('models:\n  - model: a\n  - model: b\nmerge_method: slerp\nbase_model: a\nparameters: {t: 0.5}\n');
    expect(toOutputSlices(config, () => 8)[0].sources.map((s) => s.model.path)).toEqual(['a', 'b']);
  });

  it('all models must have the same number of layers', () => {
    const { config } = parseMergeConfig(TIES_YML);
    let caught: unknown;
    try {
      toOutputSlices(config, layers({ 'garage-bAInd/Platypus2-13B': 32 }));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const issue = (caught as ConfigError).issues[0];
    expect(issue.path).toBe('models');
    expect(issue.message).toMatch(/psmathur\/orca_mini_v3_13b has 40, garage-bAInd\/Platypus2-13B has 32/);
  });

  it('slices: returned as is', () => {
    const { config } = parseMergeConfig(GRADIENT_SLERP_YML);
    expect(toOutputSlices(config, () => 1)).toBe(config.slices);
  });

  it('modules: not supported yet', () => {
    const { config } = parseMergeConfig('modules:\n  text_decoder:\n    models:\n      - model: a\nmerge_method: passthrough\n');
    expect(() => toOutputSlices(config, () => 4)).toThrow(/multi-module \(modules:\) merges are not supported by Alloy yet/);
  });
});
