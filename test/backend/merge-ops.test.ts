import { describe, expect, it } from 'vitest';
import { CpuBackend, type ChunkOps, type Operand, type Vec } from '../../src/backend';
import { combinePartial, emptyTotal, type Partial, type ReductionToken, type SparseHistogram } from '../../src/backend/reduction';
import { onCpuChunk } from '../helpers/cpu-chunk';
import { randomArray } from '../helpers/random-arrays';

/** Runs `fn` on one chunk and returns the resolved partials of the reductions it returns. */
async function partials(
  inputs: ArrayLike<number>[],
  rows: number,
  cols: number,
  fn: (c: ChunkOps) => unknown[],
  start = 0,
): Promise<Partial[]> {
  const chunk = new CpuBackend().beginChunk(
    { tensorName: 't', chunkIndex: 0, chunkCount: 1, start, length: rows * cols, rowStart: 0, rows, cols, totalRows: rows, seed: 0 },
    inputs.map((v) => ({ bytes: new Uint8Array(Float32Array.from(v).buffer), dtype: 'F32' as const, cols })),
  );
  try {
    return await chunk.readPartials(fn(chunk.ops) as ReductionToken[]);
  } finally {
    chunk.release();
  }
}

describe('CPU ops for the spherical, fusion and SCE methods', () => {
  it('exp and log in f32', async () => {
    const x = [0, 1, -1, 100, -Infinity, NaN, -0];
    const e = await onCpuChunk([x], 1, x.length, (c) => c.exp(c.input(0)));
    expect(Array.from(e)).toEqual([1, Math.fround(Math.E), Math.fround(1 / Math.E), Infinity, 0, NaN, 1]);
    const y = [1, Math.E, 0, -0, -1, Infinity];
    const l = await onCpuChunk([y], 1, y.length, (c) => c.log(c.input(0)));
    expect(Array.from(l)).toEqual([0, Math.fround(Math.log(Math.fround(Math.E))), -Infinity, -Infinity, NaN, Infinity]);
  });

  it('dot is exactly sum(mul(a, b))', async () => {
    const a = randomArray(1000, 1);
    const b = randomArray(1000, 2);
    const [fused, composed] = await partials([a, b], 10, 100, (c) => [c.dot(c.input(0), c.input(1)), c.sum(c.mul(c.input(0), c.input(1)))]);
    expect(fused).toBe(composed);
  });

  it('rowMaxBroadcast and rowSumBroadcast reduce each row and fill it', async () => {
    const x = [1, -5, 3, NaN, 0, 2, -0, -1, -2];
    const max = await onCpuChunk([x], 3, 3, (c) => c.rowMaxBroadcast(c.input(0)));
    expect(Array.from(max.slice(0, 6))).toEqual([3, 3, 3, NaN, NaN, NaN]);
    expect(Array.from(max.slice(6)).every((v) => v === 0)).toBe(true); // the sign of a zero maximum is unspecified
    const y = [1, 2, 3, 1e8, 1, -1e8];
    const sum = await onCpuChunk([y], 2, 3, (c) => c.rowSumBroadcast(c.input(0)));
    expect(Array.from(sum)).toEqual([6, 6, 6, 0, 0, 0].map((v, i) => (i >= 3 ? 1 : v))); // f64 accumulation keeps the 1
  });

  it('periodicSums and periodic follow the flat index from the chunk start', async () => {
    const x = Array.from({ length: 12 }, (_, i) => i + 1);
    // chunk starting at flat index 5, period 4: indices 5..16 → residues 1,2,3,0,1,2,3,0,...
    const [sums] = await partials([x], 2, 6, (c) => [c.periodicSums(c.input(0), 4)], 5);
    const expected = [0, 0, 0, 0];
    x.forEach((v, k) => (expected[(5 + k) % 4] += v));
    expect(Array.from(sums as ArrayLike<number>)).toEqual(expected);
    const p = await onCpuChunk([x], 2, 6, (c) => c.periodic(Float64Array.from([10, 20, 30, 0.1])), { start: 5 });
    expect(Array.from(p)).toEqual(Array.from({ length: 12 }, (_, k) => Math.fround([10, 20, 30, 0.1][(5 + k) % 4])));
    // totals: the first partial sizes the total, later ones add
    const place = { chunkIndex: 0, chunkCount: 2, rowStart: 0, totalRows: 2 };
    let total = emptyTotal('periodicSums', place);
    total = combinePartial('periodicSums', total, [1, 2, 3], place);
    total = combinePartial('periodicSums', total, [10, 20, 30], { ...place, chunkIndex: 1 });
    expect(Array.from(total as Float64Array)).toEqual([11, 22, 33]);
  });

  it('a histogram partial is its non-empty bins in ascending order, and totals add them up', async () => {
    // |x| bits >> 16: 1 and -1 → 0x3f80, 2 → 0x4000, 0 and -0 → 0, 0.5 → 0x3f00, NaN → 0x7fc0
    const x = [1, -1, 2, 0, -0, 0.5, 2, NaN, 1];
    const [hist] = await partials([x], 1, x.length, (c) => [c.magnitudeHistogram(c.input(0), null)]);
    const { bins, counts } = hist as SparseHistogram;
    expect(Array.from(bins)).toEqual([0, 0x3f00, 0x3f80, 0x4000, 0x7fc0]);
    expect(Array.from(counts)).toEqual([2, 1, 3, 2, 1]);
    // the lower 16 bits within one upper bin: 1.0 (0x3f800000) three times, 1 + 2^-16 … only 1.0 here
    const [lower] = await partials([[1, 1.0000152587890625, 3, 1]], 1, 4, (c) => [c.magnitudeHistogram(c.input(0), 0x3f80)]);
    expect(Array.from((lower as SparseHistogram).bins)).toEqual([0, 0x80]);
    expect(Array.from((lower as SparseHistogram).counts)).toEqual([2, 1]);
    const place = { chunkIndex: 0, chunkCount: 2, rowStart: 0, totalRows: 1 };
    let total = emptyTotal('histogram', place);
    total = combinePartial('histogram', total, hist, place);
    total = combinePartial('histogram', total, lower, { ...place, chunkIndex: 1 });
    const dense = total as Float64Array;
    expect(dense.length).toBe(65536);
    expect([dense[0], dense[0x80], dense[0x3f00], dense[0x3f80], dense[0x4000], dense[0x7fc0]]).toEqual([4, 1, 1, 3, 2, 1]);
    expect(dense.reduce((a, b) => a + b, 0)).toBe(12);
  });

  it('weightedSum rounds to f32 after each term, in term order, for any mix of weights', async () => {
    const n = 257;
    const xs = [1, 2, 3, 4, 5].map((s) => randomArray(n, s, 10 ** s));
    const vw = [6, 7, 8, 9, 10].map((s) => randomArray(n, s));
    const scalars = [0.1, -3.7, 1e-3, 2.5, 1 / 3];
    for (let terms = 1; terms <= 5; terms++) {
      for (let mask = 0; mask < 1 << terms; mask++) {
        const useVector = (k: number): boolean => ((mask >> k) & 1) === 1;
        const expected = new Float32Array(n);
        for (let k = 0; k < terms; k++) {
          for (let i = 0; i < n; i++) expected[i] = expected[i] + (useVector(k) ? vw[k][i] : scalars[k]) * xs[k][i];
        }
        const got = await onCpuChunk([...xs.slice(0, terms), ...vw.slice(0, terms)], 1, n, (c) => {
          const ts: Vec[] = [];
          const ws: Operand[] = [];
          for (let k = 0; k < terms; k++) {
            ts.push(c.input(k));
            ws.push(useVector(k) ? c.input(terms + k) : scalars[k]);
          }
          return c.weightedSum(ts, ws);
        });
        expect(Array.from(got), `${terms} terms, vector weights ${mask.toString(2)}`).toEqual(Array.from(expected));
      }
    }
    const empty = await onCpuChunk([[1, 2]], 1, 2, (c) => c.weightedSum([], []));
    expect(Array.from(empty)).toEqual([0, 0]);
  });
});
