import { describe, expect, it } from 'vitest';
import { parseMergeConfig } from '../../src/config';
import { layerLayout, modelColors, outputLayers } from '../../src/ui/lib/layer-map';

const FRANKEN = `slices:
  - sources:
      - model: psmathur/orca_mini_v3_13b
        layer_range: [0, 24]
  - sources:
      - model: garage-bAInd/Platypus2-13B
        layer_range: [20, 40]
merge_method: passthrough
dtype: float16
`;

describe('layerLayout', () => {
  it('numbers output layers consecutively across slices (44-layer frankenmerge)', () => {
    const layout = layerLayout(parseMergeConfig(FRANKEN).config, () => 40);
    expect(layout.totalLayers).toBe(44);
    expect(layout.blocks.map((b) => [b.outputStart, b.length])).toEqual([[0, 24], [24, 20]]);
    expect(layout.blocks.every((b) => b.problems.length === 0)).toBe(true);
  });

  it('flags ranges past the last layer and unequal source lengths', () => {
    const config = parseMergeConfig(FRANKEN).config;
    const layout = layerLayout(config, (k) => (k.startsWith('garage') ? 32 : 40));
    expect(layout.blocks[1].problems[0]).toMatch(/has 32 layers/);
    config.slices![0].sources.push({ model: { path: 'x/y' }, layer_range: [0, 10] });
    expect(layerLayout(config, () => 40).blocks[0].problems[0]).toMatch(/different lengths/);
  });

  it('treats models: syntax as one slice including an unlisted base', () => {
    const config = parseMergeConfig(`models:\n  - model: a/b\n    parameters: {weight: 1, density: 0.5}\nbase_model: a/base\nmerge_method: ties\n`).config;
    const layout = layerLayout(config, () => 4);
    expect(layout.modelsSyntax).toBe(true);
    expect(layout.blocks[0].sources.map((s) => s.model)).toEqual(['a/b', 'a/base']);
  });

  it('gives every slice its own 0→1 ramp; a one-layer slice gets t = 1', () => {
    const config = parseMergeConfig(FRANKEN).config;
    config.slices!.push({ sources: [{ model: { path: 'x/y' }, layer_range: [0, 1] }] });
    const layers = outputLayers(layerLayout(config, () => 40));
    expect(layers).toHaveLength(45);
    expect(layers[0].t).toBe(0);
    expect(layers[23].t).toBe(1);
    expect(layers[24].t).toBe(0);
    expect(layers[44].t).toBe(1);
  });

  it('assigns stable colours by first appearance', () => {
    expect([...modelColors(['a', 'b', 'a', 'c'], 2).entries()]).toEqual([['a', 0], ['b', 1], ['c', 0]]);
  });
});

describe('layoutFromPlan', () => {
  it('groups consecutive layers of the same sources into blocks', async () => {
    const { layoutFromPlan } = await import('../../src/ui/lib/layer-map');
    const layers = [
      ...[0, 1, 2].map((i) => ({ outputLayer: i, sources: [{ model: 'a', layer: i }, { model: 'b', layer: i }] })),
      ...[3, 4].map((i) => ({ outputLayer: i, sources: [{ model: 'a', layer: i - 2 }] })),
    ];
    const layout = layoutFromPlan(layers);
    expect(layout.totalLayers).toBe(5);
    expect(layout.blocks.map((b) => [b.outputStart, b.length, b.sources.map((s) => `${s.model}:${s.start}-${s.end}`)])).toEqual([
      [0, 3, ['a:0-3', 'b:0-3']],
      [3, 2, ['a:1-3']],
    ]);
  });
});
