import { describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { GRADIENT_SLERP_YML, LINEAR_YML, ORCAMINI_PLATY_44_YML, TIES_YML } from './examples';

describe("mergekit's example configs parse", () => {
  it('linear.yml', () => {
    const { config, warnings } = parseMergeConfig(LINEAR_YML, 'linear.yml');
    expect(warnings).toEqual([]);
    expect(config).toEqual({
      models: [
        { model: { path: 'psmathur/orca_mini_v3_13b' }, parameters: { weight: 1 } },
        { model: { path: 'WizardLM/WizardLM-13B-V1.2' }, parameters: { weight: 0.3 } },
        { model: { path: 'garage-bAInd/Platypus2-13B' }, parameters: { weight: 0.5 } },
      ],
      merge_method: 'linear',
      dtype: 'float16',
    });
  });

  it('ties.yml (gradients, filtered weights, boolean flags as 1/0)', () => {
    const { config, warnings } = parseMergeConfig(TIES_YML, 'ties.yml');
    expect(warnings).toEqual([]);
    expect(config.merge_method).toBe('ties');
    expect(config.base_model).toEqual({ path: 'TheBloke/Llama-2-13B-fp16' });
    expect(config.parameters).toEqual({ normalize: 1, int8_mask: 1 });
    expect(config.models?.[0].parameters).toEqual({ density: [1, 0.7, 0.1], weight: 1 });
    expect(config.models?.[1].parameters).toEqual({ density: 0.5, weight: [0, 0.3, 0.7, 1] });
    expect(config.models?.[2].parameters).toEqual({ density: 0.33, weight: [{ filter: 'mlp', value: 0.5 }, { value: 0 }] });
  });

  it('gradient-slerp.yml', () => {
    const { config, warnings } = parseMergeConfig(GRADIENT_SLERP_YML, 'gradient-slerp.yml');
    expect(warnings).toEqual([]);
    expect(config.slices).toEqual([
      {
        sources: [
          { model: { path: 'psmathur/orca_mini_v3_13b' }, layer_range: [0, 40] },
          { model: { path: 'garage-bAInd/Platypus2-13B' }, layer_range: [0, 40] },
        ],
      },
    ]);
    expect(config.parameters?.t).toEqual([
      { filter: 'self_attn', value: [0, 0.5, 0.3, 0.7, 1] },
      { filter: 'mlp', value: [1, 0.5, 0.7, 0.3, 0] },
      { value: 0.5 },
    ]);
  });

  it('orcamini-platy-44layer.yml (passthrough, 24 + 20 layers)', () => {
    const { config, warnings } = parseMergeConfig(ORCAMINI_PLATY_44_YML);
    expect(warnings).toEqual([]);
    expect(config.slices?.map((s) => s.sources[0].layer_range)).toEqual([
      [0, 24],
      [20, 40],
    ]);
    expect(config.dtype).toBe('float16');
  });
});
