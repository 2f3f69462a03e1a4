import { describe, expect, it } from 'vitest';
import { keepLargestMagnitudes, selectMagnitudeCuts } from '../../src/methods/magnitude-select';
import type { MergeMethod, TensorMerge } from '../../src/methods';
import { mulberry32 } from '../fixtures/models';
import { runMethod } from '../helpers/run-method';

/** A test method: output = the elements ranked (k1, k2] by magnitude, counting its statistics passes. */
function bandMethod(k1: number, k2: number, maxPerChunkEntries: number | undefined, passes: { count: number }): MergeMethod {
  return {
    name: 'band', prettyName: 'band', description: '', whenToUse: '', params: [], base: 'optional', shapes: 'strict',
    sliceInputs: { loneSource: 'copied', baseInSources: false },
    async merge(t: TensorMerge) {
      const counted: TensorMerge = Object.create(t, {
        reduce: { value: (...args: Parameters<TensorMerge['reduce']>) => (passes.count++, t.reduce(...args)) },
      });
      const [[inner, outer]] = await selectMagnitudeCuts(counted, (c) => [c.input(0)], [[k1, k2]], { maxPerChunkEntries });
      await t.apply((c) => c.sub(keepLargestMagnitudes(c, c.input(0), outer), keepLargestMagnitudes(c, c.input(0), inner)));
    },
  };
}

/** Descending |x|, equal magnitudes in index order: positions (k1, k2] are kept. */
function bandRef(x: Float32Array, k1: number, k2: number): number[] {
  const order = Array.from(x.keys()).sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b);
  const out = new Array<number>(x.length).fill(0);
  for (const i of order.slice(k1, k2)) out[i] = x[i];
  return out;
}

describe('selectMagnitudeCuts', () => {
  const n = 30_000;
  const rand = mulberry32(9);
  const x = Float32Array.from({ length: n }, () => (Math.floor(rand() * 41) - 20) / 16 + (rand() < 0.3 ? rand() * 1e-3 : 0));

  it('finds two nested cuts with index-order ties in two passes, for every chunk size', async () => {
    for (const [k1, k2] of [[100, 15_000], [0, 7], [4_321, 29_999], [29_000, 30_000]]) {
      const expected = bandRef(x, k1, k2);
      for (const budgetBytes of [4096, 1 << 24]) {
        const passes = { count: 0 };
        const { values } = await runMethod('band', [{ values: x }], { method: bandMethod(k1, k2, undefined, passes), budgetBytes });
        const bad = expected.findIndex((e, i) => e !== values[i]);
        expect(bad, `k ${k1}..${k2}, budget ${budgetBytes}: at ${bad} got ${values[bad]} want ${expected[bad]}`).toBe(-1);
        expect(passes.count).toBe(2);
      }
    }
  });

  it('counts ties in a third pass when the per-chunk histograms would be too large, with the same result', async () => {
    const passes = { count: 0 };
    const { values } = await runMethod('band', [{ values: x }], { method: bandMethod(100, 15_000, 0, passes), budgetBytes: 4096 });
    expect(Array.from(values)).toEqual(bandRef(x, 100, 15_000));
    expect(passes.count).toBe(3);
  });
});
