import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../fixtures/models';
import { onCpuChunk } from '../helpers/cpu-chunk';

/** Sort-based reference: ascending |x|, equal magnitudes with the earlier element ranking higher. */
function ranksRef(row: Float32Array): number[] {
  const order = Array.from(row.keys()).sort((a, b) => Math.abs(row[a]) - Math.abs(row[b]) || b - a);
  const ranks = new Array<number>(row.length);
  order.forEach((i, r) => (ranks[i] = r + 1));
  return ranks;
}

describe('rowRanks (CPU backend)', () => {
  it('ranks |x| within each row, 1 = smallest', async () => {
    const ranks = await onCpuChunk([[0.1, -0.4, 0.2, 0.3, 5, -1, 0, 2]], 2, 4, (c) => c.rowRanks(c.input(0)));
    expect(Array.from(ranks)).toEqual([1, 4, 2, 3, 4, 2, 1, 3]);
  });

  it('orders equal magnitudes by index, the earlier ranking higher (−0 equals +0)', async () => {
    const ranks = await onCpuChunk([[2, -2, 1, 2, -0, 0]], 1, 6, (c) => c.rowRanks(c.input(0)));
    expect(Array.from(ranks)).toEqual([6, 5, 3, 4, 2, 1]);
  });

  it('ranks NaN above +∞', async () => {
    const ranks = await onCpuChunk([[NaN, Infinity, -3]], 1, 3, (c) => c.rowRanks(c.input(0)));
    expect(Array.from(ranks)).toEqual([3, 2, 1]);
  });

  it('matches a sort on random rows with many ties', async () => {
    const rand = mulberry32(7);
    const rows = 13, cols = 257;
    const x = Float32Array.from({ length: rows * cols }, () => Math.round((rand() - 0.5) * 20) / 4);
    const ranks = await onCpuChunk([x], rows, cols, (c) => c.rowRanks(c.input(0)));
    for (let r = 0; r < rows; r++) {
      expect(Array.from(ranks.subarray(r * cols, (r + 1) * cols))).toEqual(ranksRef(x.subarray(r * cols, (r + 1) * cols)));
    }
  });

  it('a row of one element has rank 1', async () => {
    const ranks = await onCpuChunk([[3, -7, 0]], 3, 1, (c) => c.rowRanks(c.input(0)));
    expect(Array.from(ranks)).toEqual([1, 1, 1]);
  });
});

describe('rowRanks on long rows', () => {
  it('matches a sort on a 60000-element row spanning many magnitudes, with ties', async () => {
    const rand = mulberry32(11);
    const n = 60_000;
    const x = Float32Array.from({ length: n }, () => {
      const v = (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 8);
      return rand() < 0.2 ? Math.fround(Math.round(v * 1e3) / 1e3) : v;
    });
    const ranks = await onCpuChunk([x], 1, n, (c) => c.rowRanks(c.input(0)));
    expect(Array.from(ranks)).toEqual(ranksRef(x));
  });
});
