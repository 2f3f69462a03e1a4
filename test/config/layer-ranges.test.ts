import { describe, expect, it } from 'vitest';
import { layerRangeProblems } from '../../src/config';

describe('layerRangeProblems', () => {
  it('finds invalid ranges, unequal lengths against the first valid source, and ranges past the last layer', () => {
    expect(
      layerRangeProblems([
        { start: 5, end: 2 },
        { start: 0, end: 8, layers: 32 },
        { start: 4, end: 10, layers: 32 },
        { start: 30, end: 38, layers: 32 },
        { start: 1.5, end: 3 },
        { start: NaN, end: 4 },
      ]),
    ).toEqual([
      { kind: 'invalid', source: 0 },
      { kind: 'invalid', source: 4 },
      { kind: 'length', source: 2, first: 1, count: 6, firstCount: 8 },
      { kind: 'past-end', source: 3, layers: 32 },
    ]);
  });

  it('has nothing to say about equal ranges inside their models, or unknown layer counts', () => {
    expect(layerRangeProblems([{ start: 0, end: 24, layers: 24 }, { start: 8, end: 32 }])).toEqual([]);
    expect(layerRangeProblems([])).toEqual([]);
  });
});
