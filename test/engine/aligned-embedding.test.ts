import { describe, expect, it } from 'vitest';
import { AlignedEmbeddingReader, type AlignedRows } from '../../src/engine/aligned-embedding';
import type { TensorJob } from '../../src/plan';
import { decodeToF32, encodeFromF32, MemoryByteSource } from '../../src/storage';
import type { ByteSource, FloatDtype } from '../../src/storage/types';

const COLS = 3;

/** A tensor of `rows` rows whose row r is [r + 0.25, -r, 100 + r] (exact in bf16 for small r). */
function tensor(rows: number, dtype: FloatDtype, prefix = 16): { bytes: Uint8Array; values: Float32Array } {
  const values = new Float32Array(rows * COLS);
  for (let r = 0; r < rows; r++) values.set([r + 0.25, -r, 100 + r], r * COLS);
  const data = encodeFromF32(values, dtype);
  const bytes = new Uint8Array(prefix + data.length);
  bytes.set(data, prefix);
  return { bytes, values: decodeToF32(data, dtype) };
}

function setup() {
  const a = tensor(5, 'F32');
  const b = tensor(4, 'BF16');
  // output vocabulary of 6 tokens padded to 8: a has tokens 0..4 (reversed order in its file),
  // b has tokens 1, 2, 5; token 3 is nobody else's (zero default), token 5 only b's.
  const job: TensorJob = {
    name: 'embed',
    shape: [8, COLS],
    dtype: 'F32',
    method: 'linear',
    baseIndex: -1,
    params: {},
    isEmbed: true,
    byteLength: 8 * COLS * 4,
    inputs: [
      { model: 'a', tensor: { name: 'e', dtype: 'F32', shape: [5, COLS], file: 'a', offset: 16, byteLength: 5 * COLS * 4 }, params: {}, rowMap: Int32Array.from([4, 3, 2, -1, 0, -1]) },
      { model: 'b', tensor: { name: 'e', dtype: 'BF16', shape: [4, COLS], file: 'b', offset: 16, byteLength: 4 * COLS * 2 }, params: {}, rowMap: Int32Array.from([-1, 0, 1, -1, -1, 3]) },
    ],
    alignment: {
      tokens: 6,
      defaults: {
        rows: Int32Array.from([0, 1, 3, 4, 5]),
        start: Int32Array.from([0, 1, 3, 3, 4, 5]),
        // row 0: a's 4; row 1: mean(a 3, b 0); row 3: zeros; row 4: a's 0; row 5: b's 3
        input: Int32Array.from([0, 0, 1, 0, 1]),
        row: Int32Array.from([4, 3, 0, 0, 3]),
      },
    },
  };
  let read = 0;
  const sources: Promise<ByteSource>[] = [Promise.resolve(new MemoryByteSource('a', a.bytes)), Promise.resolve(new MemoryByteSource('b', b.bytes))];
  return { job, sources, a: a.values, b: b.values, reads: () => read, onRead: (n: number) => (read += n) };
}

const valuesOf = (rows: AlignedRows): Float32Array => decodeToF32(rows.bytes, rows.dtype);

const rowOf = (values: Float32Array, r: number): number[] => Array.from(values.subarray(r * COLS, (r + 1) * COLS));

describe('AlignedEmbeddingReader', () => {
  it('assembles own rows, default rows and padding rows, substituted ones in f32', async () => {
    const { job, sources, a, b, onRead } = setup();
    const reader = new AlignedEmbeddingReader(job, sources, onRead, 1 << 20);
    const rowsA = await reader.read(0, 0, 8);
    expect(rowsA.dtype).toBe('F32');
    const gotA = valuesOf(rowsA);
    const mean1 = rowOf(a, 3).map((v, c) => Math.fround((Math.fround(v + rowOf(b, 0)[c])) / 2));
    const tokenRowsA = [rowOf(a, 4), rowOf(a, 3), rowOf(a, 2), [0, 0, 0], rowOf(a, 0), rowOf(b, 3)];
    expect(Array.from({ length: 6 }, (_, r) => rowOf(gotA, r))).toEqual(tokenRowsA);
    const padA = [0, 1, 2].map((c) => Math.fround(tokenRowsA.reduce((s, row) => s + row[c], 0) / 6));
    expect(rowOf(gotA, 6)).toEqual(padA);
    expect(rowOf(gotA, 7)).toEqual(padA);

    // b is stored in bf16, but the rows it takes from a (f32) are not rounded to bf16: mergekit
    // builds them in the merge dtype.
    const rowsB = await reader.read(1, 0, 8);
    expect(rowsB.dtype).toBe('F32');
    const gotB = valuesOf(rowsB);
    const tokenRowsB = [rowOf(a, 4), rowOf(b, 0), rowOf(b, 1), [0, 0, 0], rowOf(a, 0), rowOf(b, 3)];
    expect(Array.from({ length: 6 }, (_, r) => rowOf(gotB, r))).toEqual(tokenRowsB);
    expect(mean1).not.toEqual(rowOf(gotA, 1)); // row 1: a has the token, so its own row
    const padB = [0, 1, 2].map((c) => Math.fround(tokenRowsB.reduce((s, row) => s + row[c], 0) / 6));
    expect(rowOf(gotB, 7)).toEqual(padB);
    // b's padding row is not a bf16 value: rounding it to b's storage dtype would be seen
    const bf16 = (xs: number[]) => Array.from(decodeToF32(encodeFromF32(Float32Array.from(xs), 'BF16'), 'BF16'));
    expect(bf16(padB)).not.toEqual(padB);
  });

  it('a range of only own rows keeps the stored bytes and dtype', async () => {
    const { job, sources, b, onRead } = setup();
    const reader = new AlignedEmbeddingReader(job, sources, onRead, 1 << 20);
    const rows = await reader.read(1, 1, 3);
    expect(rows.dtype).toBe('BF16');
    expect(rows.bytes.length).toBe(2 * COLS * 2);
    expect(Array.from(valuesOf(rows))).toEqual([...rowOf(b, 0), ...rowOf(b, 1)]);
  });

  it('the mean of several owners, computed in f32', async () => {
    const { job, sources, a, b, onRead } = setup();
    // input a lacks token 1 too: it then takes the mean of a's row 3 and b's row 0
    const inputs = [{ ...job.inputs[0], rowMap: Int32Array.from([4, -1, 2, -1, 0, -1]) }, job.inputs[1]];
    const reader = new AlignedEmbeddingReader({ ...job, inputs }, sources, onRead, 1 << 20);
    const got = valuesOf(await reader.read(0, 1, 2));
    expect(Array.from(got)).toEqual(rowOf(a, 3).map((v, c) => Math.fround(Math.fround(v + rowOf(b, 0)[c]) / 2)));
  });

  it('any row range and any block size give the same rows', async () => {
    const { job, sources, onRead } = setup();
    for (const i of [0, 1]) {
      const whole = valuesOf(await new AlignedEmbeddingReader(job, sources, onRead, 1 << 20).read(i, 0, 8));
      const reader = new AlignedEmbeddingReader(job, sources, onRead, 1);
      for (const [r0, r1] of [[0, 3], [3, 7], [7, 8], [5, 8], [1, 3]]) {
        const got = valuesOf(await reader.read(i, r0, r1));
        expect(Array.from(got), `input ${i} rows ${r0}..${r1}`).toEqual(Array.from(whole.subarray(r0 * COLS, r1 * COLS)));
      }
    }
  });

  it('reads neighbouring rows in one read', async () => {
    const { job, sources, reads, onRead } = setup();
    const reader = new AlignedEmbeddingReader(job, sources, onRead, 1 << 20);
    await reader.read(0, 0, 3);
    // rows 4, 3, 2 of a, in one read of 3 rows; no default row is needed
    expect(reads()).toBe(3 * COLS * 4);
  });
});
