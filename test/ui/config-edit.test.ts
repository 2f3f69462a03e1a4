import { describe, expect, it } from 'vitest';
import { parseMergeConfig, type MergeConfig } from '../../src/config';
import {
  addModel,
  addSliceSource,
  canConvertToModels,
  convertToModels,
  convertToSlices,
  moveSlice,
  referencedModels,
  removeModel,
  setBaseModel,
  setGlobalParameter,
  setMethod,
  setModelParameter,
  setSliceSource,
  stackModels,
} from '../../src/ui/lib/config-edit';
import { configText, editConfigText } from '../../src/ui/lib/config-text';

function fresh(): MergeConfig {
  return { merge_method: '' };
}

const layers = (n: number) => () => n;

describe('config edits', () => {
  it('adding models to a fresh config picks linear and gives each a weight', () => {
    const c = fresh();
    addModel(c, 'org/a');
    addModel(c, 'org/b');
    addModel(c, 'org/a');
    expect(c.merge_method).toBe('linear');
    expect(c.models?.map((m) => m.parameters?.weight)).toEqual([1, 1]);
    expect(() => parseMergeConfig(configText(c))).not.toThrow();
  });

  it('switching to slerp drops weights, adds t and picks a base', () => {
    const c = fresh();
    addModel(c, 'org/a');
    addModel(c, 'org/b');
    setMethod(c, 'slerp');
    expect(c.base_model?.path).toBe('org/a');
    expect(c.parameters).toEqual({ t: 0.5 });
    expect(c.models?.every((m) => m.parameters === undefined)).toBe(true);
    expect(() => parseMergeConfig(configText(c))).not.toThrow();
  });

  it('switching to ties uses the suggested base and keeps the base free of per-model parameters', () => {
    const c = fresh();
    ['org/tuned-a', 'org/base', 'org/tuned-b'].forEach((k) => addModel(c, k));
    setMethod(c, 'ties', 'org/base');
    expect(c.base_model?.path).toBe('org/base');
    const base = c.models!.find((m) => m.model.path === 'org/base')!;
    expect(base.parameters).toBeUndefined();
    expect(c.models!.filter((m) => m.parameters?.weight === 1)).toHaveLength(2);
    expect(() => parseMergeConfig(configText(c))).not.toThrow();
  });

  it('changing the base gives the former base its required parameters back', () => {
    const c = fresh();
    ['org/a', 'org/b', 'org/c'].forEach((k) => addModel(c, k));
    setMethod(c, 'ties', 'org/a');
    setBaseModel(c, 'org/b');
    expect(c.models!.find((m) => m.model.path === 'org/a')!.parameters?.weight).toBe(1);
    expect(c.models!.find((m) => m.model.path === 'org/b')!.parameters).toBeUndefined();
  });

  it('removes a model everywhere it is referenced', () => {
    const c = fresh();
    ['org/a', 'org/b'].forEach((k) => addModel(c, k));
    setMethod(c, 'slerp');
    removeModel(c, 'org/a');
    expect(referencedModels(c)).toEqual(['org/b']);
    expect(c.base_model).toBeUndefined();
  });

  it('sets and clears parameters, removing empty maps', () => {
    const c = fresh();
    addModel(c, 'org/a');
    setModelParameter(c, 'org/a', 'weight', [0, 1]);
    expect(c.models![0].parameters).toEqual({ weight: [0, 1] });
    setModelParameter(c, 'org/a', 'weight', undefined);
    expect(c.models![0].parameters).toBeUndefined();
    setGlobalParameter(c, 'normalize', 0);
    expect(c.parameters).toEqual({ normalize: 0 });
    setGlobalParameter(c, 'normalize', undefined);
    expect(c.parameters).toBeUndefined();
  });

  it('lists referenced models once, in order, with revisions', () => {
    const c = parseMergeConfig(`slices:
  - sources:
      - model: org/a@v2
        layer_range: [0, 4]
  - sources:
      - model: org/b
        layer_range: [2, 6]
      - model: org/a@v2
        layer_range: [0, 4]
merge_method: linear
parameters:
  weight: 1
`).config;
    expect(referencedModels(c)).toEqual(['org/a@v2', 'org/b']);
  });
});

describe('slices', () => {
  it('converts models to one slice and back', () => {
    const c = fresh();
    ['org/a', 'org/b'].forEach((k) => addModel(c, k));
    convertToSlices(c, layers(32));
    expect(c.models).toBeUndefined();
    expect(c.slices).toHaveLength(1);
    expect(c.slices![0].sources.map((s) => s.layer_range)).toEqual([[0, 32], [0, 32]]);
    expect(c.slices![0].sources[0].parameters).toEqual({ weight: 1 });
    expect(canConvertToModels(c)).toBe(true);
    convertToModels(c);
    expect(c.models?.map((m) => m.model.path)).toEqual(['org/a', 'org/b']);
    expect(c.models![0].parameters).toEqual({ weight: 1 });
  });

  it('builds a passthrough layer stack and edits ranges', () => {
    const text = editConfigText('', (c) => {
      stackModels(c, ['org/a', 'org/b'], layers(24));
      setSliceSource(c, 0, 0, { end: 16 });
      setSliceSource(c, 1, 0, { start: 8 });
      moveSlice(c, 1, -1);
    });
    const parsed = parseMergeConfig(text).config;
    expect(parsed.merge_method).toBe('passthrough');
    expect(parsed.slices!.map((s) => [s.sources[0].model.path, s.sources[0].layer_range])).toEqual([
      ['org/b', [8, 24]],
      ['org/a', [0, 16]],
    ]);
    expect(canConvertToModels(parsed)).toBe(false);
  });

  it('a new slice source copies the range and gets required parameters', () => {
    const c = fresh();
    c.merge_method = 'linear';
    c.slices = [{ sources: [{ model: { path: 'org/a' }, layer_range: [4, 8], parameters: { weight: 1 } }] }];
    addSliceSource(c, 0, 'org/b');
    expect(c.slices[0].sources[1]).toEqual({ model: { path: 'org/b' }, layer_range: [4, 8], parameters: { weight: 1 } });
  });
});

describe('tokenizer source', () => {
  it('writes tokenizer.source, or the legacy key when the config uses it', async () => {
    const { setTokenizerSource, tokenizerChoice } = await import('../../src/ui/lib/config-edit');
    const c = fresh();
    addModel(c, 'org/a');
    setTokenizerSource(c, 'union');
    expect(c.tokenizer).toEqual({ source: 'union' });
    setTokenizerSource(c, 'org/a');
    expect(tokenizerChoice(c)).toBe('org/a');
    setTokenizerSource(c, undefined);
    expect(c.tokenizer).toBeUndefined();
    c.tokenizer_source = 'base';
    setTokenizerSource(c, 'union');
    expect(c.tokenizer_source).toBe('union');
    expect(c.tokenizer).toBeUndefined();
    expect(() => parseMergeConfig(configText(c))).not.toThrow();
  });
});
