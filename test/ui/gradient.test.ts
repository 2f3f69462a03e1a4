import { describe, expect, it } from 'vitest';
import { parseMergeConfig, type ParameterSetting } from '../../src/config';
import { controlPointLayers, convertSetting, settingKind, settingSeries, ticks, valueDomain } from '../../src/ui/lib/gradient';
import { layerLayout, outputLayers } from '../../src/ui/lib/layer-map';

const GRADIENT_SLERP = `slices:
  - sources:
      - model: psmathur/orca_mini_v3_13b
        layer_range: [0, 40]
      - model: garage-bAInd/Platypus2-13B
        layer_range: [0, 40]
merge_method: slerp
base_model: psmathur/orca_mini_v3_13b
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
dtype: float16
`;

describe('settings', () => {
  it('recognises the three shapes', () => {
    expect(settingKind(0.5)).toBe('value');
    expect(settingKind([0, 1])).toBe('gradient');
    expect(settingKind([{ filter: 'mlp', value: 1 }])).toBe('filtered');
  });

  it('converts between shapes keeping what it can', () => {
    expect(convertSetting(0.3, 'gradient', 0)).toEqual([0.3, 0.3]);
    expect(convertSetting([0.2, 0.8], 'value', 0)).toBe(0.2);
    expect(convertSetting([0.2, 0.8], 'filtered', 0)).toEqual([
      { filter: 'self_attn', value: [0.2, 0.8] },
      { filter: 'mlp', value: [0.2, 0.8] },
      { value: [0.2, 0.8] },
    ]);
    expect(convertSetting([{ filter: 'mlp', value: 1 }, { value: [0, 1, 0] }], 'gradient', 0)).toEqual([0, 1, 0]);
    expect(convertSetting(undefined, 'value', 0.5)).toBe(0.5);
  });
});

describe('settingSeries', () => {
  it('matches the spec value for layer 10 of the gradient-slerp example (0.494872)', () => {
    const config = parseMergeConfig(GRADIENT_SLERP).config;
    const layers = outputLayers(layerLayout(config, () => 40));
    const series = settingSeries(config.parameters!.t, layers);
    expect(series.map((s) => s.label)).toEqual(['self_attn', 'mlp', 'everything else']);
    expect(series[0].values[10]).toBeCloseTo(0.494872, 6);
    expect(series[0].values[0]).toBe(0);
    expect(series[0].values[39]).toBe(1);
    expect(series[1].values[0]).toBe(1);
    expect(series[2].values.every((v) => v === 0.5)).toBe(true);
    expect(series[2].prePost).toBe(0.5);
    expect(series.some((s) => s.shadowed)).toBe(false);
  });

  it('flags entries that an earlier entry shadows', () => {
    const setting: ParameterSetting = [
      { filter: 'self_attn', value: 0 },
      { filter: 'self_attn.q_proj', value: 1 },
      { value: 0.5 },
      { filter: 'mlp', value: 1 },
    ];
    const layers = outputLayers(layerLayout(parseMergeConfig(GRADIENT_SLERP).config, () => 40));
    const series = settingSeries(setting, layers);
    expect(series.map((s) => s.shadowed)).toEqual([false, true, false, true]);
    expect(series[1].values[0]).toBe(0);
  });

  it('a plain gradient gives one line; embeddings use its first value', () => {
    const layers = outputLayers(layerLayout(parseMergeConfig(GRADIENT_SLERP).config, () => 40));
    const [line] = settingSeries([0.2, 1], layers);
    expect(line.values[0]).toBeCloseTo(0.2);
    expect(line.values[39]).toBeCloseTo(1);
    expect(line.prePost).toBeCloseTo(0.2);
  });
});

describe('chart helpers', () => {
  it('spans the declared range, widened by the values', () => {
    expect(valueDomain([{ label: '', values: [0.2, 0.4] }], { min: 0, max: 1 })).toEqual([0, 1]);
    expect(valueDomain([{ label: '', values: [-0.5, 2] }], { min: 0, max: 1 })).toEqual([-0.5, 2]);
    expect(valueDomain([{ label: '', values: [3, 3] }], {})).toEqual([0, 3]);
  });
  it('makes round ticks', () => {
    expect(ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(0, 40, 4)).toEqual([0, 10, 20, 30, 40]);
  });
  it('places control points at t = k/(n-1) in every slice', () => {
    const config = parseMergeConfig(`slices:\n  - sources:\n      - model: a/a\n        layer_range: [0, 5]\n  - sources:\n      - model: a/a\n        layer_range: [0, 3]\nmerge_method: passthrough\n`).config;
    const layers = outputLayers(layerLayout(config, () => 8));
    expect(controlPointLayers(3, layers)).toEqual([
      { index: 0, layer: 0 },
      { index: 1, layer: 2 },
      { index: 2, layer: 4 },
      { index: 0, layer: 5 },
      { index: 1, layer: 6 },
      { index: 2, layer: 7 },
    ]);
  });
});
