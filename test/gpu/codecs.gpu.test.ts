import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChunkInputBytes, ChunkSpec, ReductionToken, SparseHistogram } from '../../src/backend';
import type { WebGpuBackend } from '../../src/gpu';
import { decodeToF32, encodeFromF32 } from '../../src/storage';
import type { FloatDtype } from '../../src/storage/types';
import { mulberry32 } from '../fixtures/models';
import { disposeAll, gpuBackend, within } from './helpers';

/**
 * The WGSL codecs against src/storage/dtype.ts, bit for bit: every bf16 and f16 pattern decoded,
 * f32 patterns around every rounding boundary encoded; and the radix-select histograms against a
 * direct count of bit patterns.
 */

function spec(length: number, rows = 1, cols = length): ChunkSpec {
  return { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length, rowStart: 0, rows, cols, totalRows: rows, seed: 0 };
}

/** Decodes `bytes` (stored dtype) on the GPU and returns the f32 bit patterns. */
async function gpuDecode(gpu: WebGpuBackend, bytes: Uint8Array, dtype: FloatDtype): Promise<Uint32Array> {
  const n = bytes.length / (dtype === 'F32' ? 4 : 2);
  const input: ChunkInputBytes = { bytes, dtype, cols: n };
  const chunk = gpu.beginChunk(spec(n), [input]);
  try {
    const out = await within(chunk.encode(chunk.ops.input(0), 'F32'), 60_000, 'decode');
    return new Uint32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
  } finally {
    chunk.release();
  }
}

/** Encodes f32 bit patterns to `dtype` on the GPU. */
async function gpuEncode(gpu: WebGpuBackend, bits: Uint32Array, dtype: FloatDtype): Promise<Uint8Array> {
  const input: ChunkInputBytes = { bytes: new Uint8Array(bits.buffer), dtype: 'F32', cols: bits.length };
  const chunk = gpu.beginChunk(spec(bits.length), [input]);
  try {
    return await within(chunk.encode(chunk.ops.input(0), dtype), 60_000, 'encode');
  } finally {
    chunk.release();
  }
}

const ALL_16_BIT = new Uint8Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer);

/** Every upper half with low halves at and around the bf16 and f16 rounding points, plus noise. */
function boundaryPatterns(): Uint32Array {
  const lows = [0, 1, 0x0fff, 0x1000, 0x1001, 0x2000, 0x7fff, 0x8000, 0x8001, 0xefff, 0xf000, 0xffff];
  const rand = mulberry32(99);
  const out = new Uint32Array(65536 * (lows.length + 2));
  let k = 0;
  for (let hi = 0; hi < 65536; hi++) {
    for (const lo of lows) out[k++] = ((hi << 16) | lo) >>> 0;
    out[k++] = ((hi << 16) | Math.floor(rand() * 65536)) >>> 0;
    out[k++] = Math.floor(rand() * 2 ** 32) >>> 0;
  }
  return out;
}

function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return `index ${i}: ${a[i].toString(16)} vs ${b[i].toString(16)}`;
  }
  return null;
}

// References first (no GPU device exists yet).
const PATTERNS = boundaryPatterns();
const decodeRef = {
  BF16: new Uint32Array(decodeToF32(ALL_16_BIT, 'BF16').buffer),
  F16: new Uint32Array(decodeToF32(ALL_16_BIT, 'F16').buffer),
};
const encodeRef = { BF16: encodeFromF32(new Float32Array(PATTERNS.buffer), 'BF16'), F16: encodeFromF32(new Float32Array(PATTERNS.buffer), 'F16') };

let gpu: WebGpuBackend | undefined;
beforeAll(async () => {
  gpu = await gpuBackend();
});
afterAll(async () => {
  await disposeAll([gpu]);
});

describe('WGSL codecs = src/storage/dtype.ts, bit for bit', () => {
  for (const dtype of ['BF16', 'F16'] as const) {
    it(`decodes all 65536 ${dtype} patterns (NaN payloads, subnormals, ±0, ±Inf)`, async () => {
      expect(firstMismatch(await gpuDecode(gpu!, ALL_16_BIT, dtype), decodeRef[dtype])).toBeNull();
    });
    it(`encodes ${PATTERNS.length} f32 patterns at every rounding boundary to ${dtype}`, async () => {
      expect(firstMismatch(await gpuEncode(gpu!, PATTERNS, dtype), encodeRef[dtype])).toBeNull();
    });
  }

  it('moves f32 patterns (NaN payloads, subnormals) through decode and encode unchanged', async () => {
    const bits = PATTERNS.subarray(0, 200_000);
    expect(firstMismatch(await gpuDecode(gpu!, new Uint8Array(bits.slice().buffer), 'F32'), bits)).toBeNull();
    expect(firstMismatch(new Uint32Array((await gpuEncode(gpu!, bits, 'F32')).buffer), bits)).toBeNull();
  });

  it('decodes byte ranges that start at odd offsets and end mid-word', async () => {
    for (const n of [1, 2, 3, 5, 1001]) {
      const backing = new Uint8Array(2 * n + 3);
      backing.set(ALL_16_BIT.subarray(1000, 1000 + 2 * n), 1);
      const bytes = backing.subarray(1, 1 + 2 * n);
      for (const dtype of ['BF16', 'F16'] as const) {
        const expected = new Uint32Array(decodeToF32(bytes, dtype).buffer);
        expect(firstMismatch(await gpuDecode(gpu!, bytes, dtype), expected), `${dtype} × ${n}`).toBeNull();
      }
    }
  });

  it('decodes only the first cols of each row of a wider (cut) embedding', async () => {
    const rows = 7, inCols = 33, cols = 20;
    const wide = Float32Array.from({ length: rows * inCols }, (_, i) => i * 0.5 - 40);
    const bytes = encodeFromF32(wide, 'BF16');
    const chunk = gpu!.beginChunk(spec(rows * cols, rows, cols), [{ bytes, dtype: 'BF16', cols: inCols }]);
    try {
      const out = decodeToF32(await chunk.encode(chunk.ops.input(0), 'F32'), 'F32');
      const expected = Float32Array.from({ length: rows * cols }, (_, i) => wide[Math.floor(i / cols) * inCols + (i % cols)]);
      expect(Array.from(out)).toEqual(Array.from(expected));
    } finally {
      chunk.release();
    }
  });
});

describe('radix-select magnitude histograms', () => {
  it('count |x| bit patterns by upper and by lower 16 bits, chunk by chunk', async () => {
    const rand = mulberry32(5);
    const n = 70_000;
    const bits = Uint32Array.from({ length: n }, () => {
      const r = rand();
      if (r < 0.01) return 0x7fc00000 | Math.floor(rand() * 1000); // NaNs
      if (r < 0.02) return 0x80000000; // -0
      // magnitudes clustered on a few upper bins, like model weights
      return (((rand() < 0.5 ? 0x80000000 : 0) | (0x3c000000 + Math.floor(rand() * 0x800000))) >>> 0);
    });
    const high = 0x3c20;
    const upperRef = new Float64Array(65536);
    const lowerRef = new Float64Array(65536);
    for (const b of bits) {
      const m = b & 0x7fffffff;
      upperRef[m >>> 16]++;
      if (m >>> 16 === high) lowerRef[m & 0xffff]++;
    }
    const chunks = 3;
    const upper = new Float64Array(65536);
    const lower = new Float64Array(65536);
    const per = Math.ceil(n / chunks);
    for (let c = 0; c < chunks; c++) {
      const part = bits.subarray(c * per, Math.min(n, (c + 1) * per));
      const chunk = gpu!.beginChunk(
        { ...spec(part.length), chunkIndex: c, chunkCount: chunks, start: c * per },
        [{ bytes: new Uint8Array(part.slice().buffer), dtype: 'F32', cols: part.length }],
      );
      try {
        const x = chunk.ops.input(0);
        const tokens = [chunk.ops.magnitudeHistogram(x, null), chunk.ops.magnitudeHistogram(x, high)] as unknown as ReductionToken[];
        const [u, l] = (await within(chunk.readPartials(tokens), 60_000, 'histograms')) as SparseHistogram[];
        u.bins.forEach((b, j) => (upper[b] += u.counts[j]));
        l.bins.forEach((b, j) => (lower[b] += l.counts[j]));
      } finally {
        chunk.release();
      }
    }
    expect(firstMismatch(upper, upperRef)).toBeNull();
    expect(firstMismatch(lower, lowerRef)).toBeNull();
  });
});
