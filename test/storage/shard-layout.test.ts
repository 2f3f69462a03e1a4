import { describe, expect, it } from 'vitest';
import { buildShardIndex, layoutShards, parseShardSize, shardFileName } from '../../src/storage';

describe('parseShardSize', () => {
  it('parses mergekit sizes in powers of 1000', () => {
    expect(parseShardSize('5B')).toBe(5_000_000_000);
    expect(parseShardSize('500M')).toBe(500_000_000);
    expect(parseShardSize('100k')).toBe(100_000);
    expect(parseShardSize('12345')).toBe(12_345);
    expect(parseShardSize(12_345)).toBe(12_345);
    expect(parseShardSize(' 2B ')).toBe(2_000_000_000);
  });

  it('is case-insensitive like mergekit (500m is 500 million)', () => {
    expect(parseShardSize('100K')).toBe(100_000);
    expect(parseShardSize('500m')).toBe(500_000_000);
    expect(parseShardSize('5b')).toBe(5_000_000_000);
  });

  it('accepts decimals that give whole bytes, exactly', () => {
    expect(parseShardSize('1.5B')).toBe(1_500_000_000);
    expect(parseShardSize('0.001k')).toBe(1);
    expect(parseShardSize('2.50M')).toBe(2_500_000);
  });

  it('refuses anything else with a clear message', () => {
    for (const bad of ['5G', '5GB', '5 B', 'abc', '', '-1', '1e9', '1.5', '1.2345k', 'B', '5T']) {
      expect(() => parseShardSize(bad), bad).toThrow(/shard size ".*" .*: write a number of bytes, optionally followed by k/);
    }
    expect(() => parseShardSize('99999999999B')).toThrow(/too large/);
    expect(() => parseShardSize(1.5)).toThrow(/not a whole number/);
  });
});

describe('layoutShards', () => {
  const tensors = (...sizes: number[]) => sizes.map((byteLength, i) => ({ name: `t${i}`, byteLength }));

  it('puts everything in model.safetensors when unlimited or when it fits', () => {
    expect(layoutShards(tensors(10, 20, 30), 0)).toEqual([{ file: 'model.safetensors', tensors: ['t0', 't1', 't2'], byteLength: 60 }]);
    expect(layoutShards(tensors(10, 20, 30), -1)).toHaveLength(1);
    expect(layoutShards(tensors(10, 20, 30), 60)).toHaveLength(1);
  });

  it('starts a shard when the next tensor would exceed the limit, as mergekit', () => {
    expect(layoutShards(tensors(40, 60, 1, 100, 30, 70), 100)).toEqual([
      { file: 'model-00001-of-00004.safetensors', tensors: ['t0', 't1'], byteLength: 100 },
      { file: 'model-00002-of-00004.safetensors', tensors: ['t2'], byteLength: 1 },
      { file: 'model-00003-of-00004.safetensors', tensors: ['t3'], byteLength: 100 },
      { file: 'model-00004-of-00004.safetensors', tensors: ['t4', 't5'], byteLength: 100 },
    ]);
  });

  it('gives an oversized tensor a shard of its own, never an empty shard', () => {
    expect(layoutShards(tensors(500, 10, 500), 100).map((shard) => shard.tensors)).toEqual([['t0'], ['t1'], ['t2']]);
  });

  it('lays out nothing for no tensors', () => {
    expect(layoutShards([], 100)).toEqual([]);
  });

  it('names shards with 5-digit padding on both numbers', () => {
    expect(shardFileName(0, 1)).toBe('model.safetensors');
    expect(shardFileName(11, 123)).toBe('model-00012-of-00123.safetensors');
    expect(layoutShards(tensors(...new Array(12).fill(1)), 1).at(-1)!.file).toBe('model-00012-of-00012.safetensors');
  });
});

describe('buildShardIndex', () => {
  it('writes the index as Python json.dump(indent=2) does, weight map sorted by name', () => {
    const shards = layoutShards([{ name: 'b.weight', byteLength: 8 }, { name: 'a.weight', byteLength: 8 }, { name: '10', byteLength: 4 }], 8);
    expect(buildShardIndex(shards, 20)).toBe(
      [
        '{',
        '  "metadata": {',
        '    "total_size": 20,',
        '    "mergekit_version": "0.1.4"',
        '  },',
        '  "weight_map": {',
        '    "10": "model-00003-of-00003.safetensors",',
        '    "a.weight": "model-00002-of-00003.safetensors",',
        '    "b.weight": "model-00001-of-00003.safetensors"',
        '  }',
        '}',
      ].join('\n'),
    );
  });

  it('defaults total_size to the sum of the shards and escapes non-ASCII like Python', () => {
    const text = buildShardIndex(layoutShards([{ name: 'é\u{1F600}', byteLength: 6 }], 0));
    expect(text).toContain('"total_size": 6,');
    expect(text).toContain('"\\u00e9\\ud83d\\ude00": "model.safetensors"');
    expect(JSON.parse(text).weight_map).toEqual({ 'é\u{1F600}': 'model.safetensors' });
  });
});
