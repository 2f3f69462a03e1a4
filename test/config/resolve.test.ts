import { describe, expect, it } from 'vitest';
import { evaluateSetting, layerT, PRE_POST_LAYER_T, resolveParameter } from '../../src/config';

const overLayers = (values: number[], layers: number) =>
  Array.from({ length: layers }, (_, i) => evaluateSetting(values, 'model.layers.0.mlp.up_proj.weight', layerT(i, layers)) as number);

describe('gradients (docs/config.md §6)', () => {
  it('[1, 0.7, 0.1] over 4 layers', () => {
    const got = overLayers([1, 0.7, 0.1], 4);
    [1, 0.8, 0.5, 0.1].forEach((want, i) => expect(got[i]).toBeCloseTo(want, 12));
  });

  it('[0, 0.3, 0.7, 1] over 4 layers hits the control points', () => {
    const got = overLayers([0, 0.3, 0.7, 1], 4);
    [0, 0.3, 0.7, 1].forEach((want, i) => expect(got[i]).toBeCloseTo(want, 12));
  });

  it('[0, 0.5, 0.3, 0.7, 1] over 40 layers', () => {
    const got = overLayers([0, 0.5, 0.3, 0.7, 1], 40);
    expect(got[0]).toBe(0);
    expect(got[1]).toBeCloseTo(0.051282, 6);
    expect(got[10]).toBeCloseTo(0.494872, 6);
    expect(got[20]).toBeCloseTo(0.320513, 6);
    expect(got[30]).toBeCloseTo(0.723077, 6);
    expect(got[39]).toBe(1);
  });

  it('a one-layer slice gets the last value, embeddings the first', () => {
    expect(layerT(0, 1)).toBe(1);
    expect(evaluateSetting([0.2, 0.4, 0.9], 'model.layers.5.self_attn.q_proj.weight', layerT(0, 1))).toBe(0.9);
    expect(PRE_POST_LAYER_T).toBe(0);
    expect(evaluateSetting([0.2, 0.4, 0.9], 'model.embed_tokens.weight', PRE_POST_LAYER_T)).toBe(0.2);
    expect(evaluateSetting([0.2, 0.4, 0.9], 'lm_head.weight', PRE_POST_LAYER_T)).toBe(0.2);
  });

  it('a one-element gradient is a constant; scalars pass through', () => {
    expect(evaluateSetting([0.7], 'x', 0.3)).toBe(0.7);
    expect(evaluateSetting(0.25, 'x', 0.9)).toBe(0.25);
  });
});

describe('filtered lists', () => {
  const t = [
    { filter: 'self_attn', value: [0, 0.5, 0.3, 0.7, 1] },
    { filter: 'mlp', value: [1, 0.5, 0.7, 0.3, 0] },
    { value: 0.5 },
  ];

  it('gradient-slerp.yml: the first matching filter wins, the catch-all takes the rest', () => {
    expect(evaluateSetting(t, 'model.layers.10.self_attn.o_proj.weight', layerT(10, 40))).toBeCloseTo(0.494872, 6);
    expect(evaluateSetting(t, 'model.layers.0.mlp.down_proj.weight', 0)).toBe(1);
    expect(evaluateSetting(t, 'model.layers.3.input_layernorm.weight', 0.4)).toBe(0.5);
    expect(evaluateSetting(t, 'model.embed_tokens.weight', PRE_POST_LAYER_T)).toBe(0.5);
    expect(evaluateSetting(t, 'lm_head.weight', PRE_POST_LAYER_T)).toBe(0.5);
  });

  it('order matters: an earlier broader filter shadows a later one', () => {
    const setting = [{ filter: 'layers.1', value: 1 }, { filter: 'layers.12', value: 2 }];
    expect(evaluateSetting(setting, 'model.layers.12.mlp.weight', 0)).toBe(1);
    expect(evaluateSetting(setting, 'model.layers.2.mlp.weight', 0)).toBeUndefined();
  });

  it('filters are case-sensitive substrings; * and null match everything', () => {
    expect(evaluateSetting([{ filter: 'MLP', value: 1 }], 'model.layers.0.mlp.up_proj.weight', 0)).toBeUndefined();
    expect(evaluateSetting([{ filter: 'p_pr', value: 1 }], 'model.layers.0.mlp.up_proj.weight', 0)).toBe(1);
    expect(evaluateSetting([{ filter: '*', value: 3 }], 'anything', 0)).toBe(3);
    expect(evaluateSetting([{ filter: null, value: 4 }], 'anything', 0)).toBe(4);
    expect(evaluateSetting([{ filter: 'mlp.*', value: 5 }], 'model.layers.0.mlp.up_proj', 0)).toBeUndefined(); // no globbing
  });
});

describe('resolveParameter precedence', () => {
  const top = { weight: 0.1, density: [{ filter: 'mlp', value: 0.9 }] };
  const slice = { weight: [0.2, 0.4] };
  const source = { weight: [{ filter: 'self_attn', value: 0.3 }] };

  it('per-model: [source, slice, module, top], first level with a value wins', () => {
    const levels = [source, slice, undefined, top];
    expect(resolveParameter('weight', levels, 'model.layers.0.self_attn.q_proj.weight', 0)).toBe(0.3);
    // the source's filter does not match → next level (the slice's gradient)
    expect(resolveParameter('weight', levels, 'model.layers.0.mlp.up_proj.weight', 1)).toBeCloseTo(0.4, 12);
    expect(resolveParameter('weight', [source, undefined, undefined, top], 'model.layers.0.mlp.up_proj.weight', 1)).toBe(0.1);
  });

  it('global: [slice, module, top]; unset everywhere → undefined', () => {
    expect(resolveParameter('density', [slice, undefined, top], 'model.layers.0.mlp.up_proj.weight', 0)).toBe(0.9);
    expect(resolveParameter('density', [slice, undefined, top], 'model.norm.weight', 0)).toBeUndefined();
    expect(resolveParameter('lambda', [slice, undefined, top], 'model.norm.weight', 0)).toBeUndefined();
  });

  it('module parameters sit between the slice and the top level', () => {
    expect(resolveParameter('t', [{}, { t: 0.6 }, { t: 0.2 }], 'x', 0)).toBe(0.6);
  });
});
