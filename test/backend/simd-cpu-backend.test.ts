import { beforeAll, describe, expect, it, vi } from 'vitest';
import { CpuBackend, createSimdCpuBackend, SimdCpuBackend, type BackendChunk, type ChunkOps, type ComputeBackend, type Operand, type Reduction, type Vec } from '../../src/backend';
import type { ChunkInputBytes, ChunkSpec } from '../../src/backend';
import { isSparseHistogram, type ReductionToken } from '../../src/backend/reduction';
import { randomUniform, streamKey } from '../../src/backend/random';
import type { FloatDtype } from '../../src/storage/types';
import { instantiateKernels, type Kernels } from '../../src/backend/cpu/simd/wasm-kernels';

/**
 * SimdCpuBackend against the reference CpuBackend, op by op, byte for byte: every vector result
 * encoded to F32 (its exact f32 bits), BF16 and F16; every reduction partial bit for bit.
 */

// f32 bit patterns that stress the kernels: NaNs with payloads (quiet and signalling, both
// signs), ±Inf, ±0, subnormals, max finite, bf16 and f16 rounding ties, the f16 overflow edge
// (65520), the f16 subnormal range and its rounding ties.
const SPECIAL_F32 = [
  0x7fc00000, 0xffc00000, 0x7fc00001, 0x7f800001, 0xff812345, 0x7fa00000, 0xffffffff, 0x7f800000, 0xff800000,
  0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00400000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x3f808000,
  0x3f818000, 0xbf808000, 0x3f800fff, 0x3f801000, 0x3f803000, 0x477ff000, 0x477fefff, 0xc77ff000, 0x477fe000,
  0x33000000, 0x33000001, 0x32ffffff, 0x33400000, 0x33c00000, 0x38800000, 0x387fffff, 0x387fe000, 0x38000000,
  0x3f800000, 0xbf800000, 0x40000000, 0x3e99999a, 0x00800000, 0x80800000,
];
// f16 patterns: NaNs with payloads, ±Inf, ±0, subnormals, max finite.
const SPECIAL_F16 = [0x7c01, 0x7e00, 0xfc01, 0x7fff, 0x7c00, 0xfc00, 0x0000, 0x8000, 0x0001, 0x83ff, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x3c00];

/** Deterministic xorshift32. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0) / 4294967296;
  };
}

/** f32 bit patterns: mostly ordinary values with repeats (ties for top-k), sprinkled with specials. */
function f32Bits(n: number, random: () => number): Uint32Array {
  const bits = new Uint32Array(n);
  const f = new Float32Array(bits.buffer);
  const palette = Float32Array.from({ length: 7 }, () => (random() - 0.5) * 4);
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.15) bits[i] = SPECIAL_F32[Math.floor(random() * SPECIAL_F32.length)];
    else if (r < 0.3) f[i] = palette[Math.floor(random() * palette.length)] * (random() < 0.5 ? -1 : 1);
    else if (r < 0.35) bits[i] = Math.floor(random() * 4294967296);
    else f[i] = (random() - 0.5) * 2 * 10 ** Math.floor(random() * 6 - 3);
  }
  return bits;
}

function inputBytes(dtype: FloatDtype, n: number, random: () => number): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(f32Bits(n, random).buffer);
  const out = new Uint16Array(n);
  if (dtype === 'BF16') {
    const bits = f32Bits(n, random);
    for (let i = 0; i < n; i++) out[i] = bits[i] >>> 16;
  } else {
    for (let i = 0; i < n; i++) {
      const r = random();
      out[i] = r < 0.15 ? SPECIAL_F16[Math.floor(random() * SPECIAL_F16.length)] : r < 0.25 ? Math.floor(random() * 65536) : (0x3000 + Math.floor(random() * 0x1800)) | (random() < 0.5 ? 0x8000 : 0);
    }
  }
  // At an odd offset: the backends must not assume aligned input bytes.
  const shifted = new Uint8Array(out.byteLength + 1);
  shifted.set(new Uint8Array(out.buffer), 1);
  return shifted.subarray(1);
}

interface Shape {
  label: string;
  rows: number;
  cols: number;
  /** Row length of the inputs (wider: an embedding cut to `cols`). */
  inputCols?: number;
  start?: number;
  rowStart?: number;
  totalRows?: number;
}

const SHAPES: Shape[] = [
  { label: '1', rows: 1, cols: 1 },
  { label: '3', rows: 1, cols: 3 },
  { label: '5', rows: 1, cols: 5 },
  { label: '3x341 (1023)', rows: 3, cols: 341, rowStart: 3, totalRows: 9, start: 1023 },
  { label: '4097', rows: 1, cols: 4097 },
  { label: 'split 1-D piece', rows: 1, cols: 1030, start: 4294967296 - 515, totalRows: 1 },
  { label: '17x241', rows: 17, cols: 241 },
  { label: 'embedding 5x13 of 5x20', rows: 5, cols: 13, inputCols: 20, rowStart: 2, totalRows: 10, start: 26 },
];

const INPUTS = 5;

function makeChunks(shape: Shape, dtype: FloatDtype, seed: number): { spec: ChunkSpec; inputs: ChunkInputBytes[] } {
  const random = rng(seed);
  const length = shape.rows * shape.cols;
  const inputCols = shape.inputCols ?? shape.cols;
  const inputs = Array.from({ length: INPUTS }, (_, i) => ({
    bytes: inputBytes(i === 0 ? dtype : (['BF16', 'F16', 'F32'] as const)[i % 3], shape.rows * inputCols, random),
    dtype: i === 0 ? dtype : (['BF16', 'F16', 'F32'] as const)[i % 3],
    cols: inputCols,
  }));
  const spec: ChunkSpec = {
    tensorName: 'model.layers.0.self_attn.q_proj.weight',
    chunkIndex: 1,
    chunkCount: 3,
    start: shape.start ?? 0,
    length,
    rowStart: shape.rowStart ?? 0,
    rows: shape.rows,
    cols: shape.cols,
    totalRows: shape.totalRows ?? shape.rows,
    seed: 77,
  };
  return { spec, inputs };
}

type OpResult = Vec | Reduction<number | Float64Array>;
type Op = (c: ChunkOps) => OpResult;

const SCALARS = [0.3, -0, 2.5, -1e-40, Infinity, 1 / 3];
const OPS: Record<string, Op> = {};
const bin = ['add', 'sub', 'mul', 'div', 'min', 'max', 'gt', 'ge', 'eq'] as const;
for (const name of bin) {
  OPS[`${name} vv`] = (c) => c[name](c.input(0), c.input(1));
  OPS[`${name} vv same`] = (c) => c[name](c.input(2), c.input(2));
  OPS[`${name} vv nan order`] = (c) => c[name](c.input(3), c.input(0));
  for (const s of SCALARS) {
    OPS[`${name} vs ${s}`] = (c) => c[name](c.input(0), s);
    OPS[`${name} sv ${s}`] = (c) => c[name](s, c.input(1));
  }
  OPS[`${name} ss`] = (c) => c[name](0.1, 0.7);
}
for (const name of ['neg', 'abs', 'sign', 'sqrt', 'exp', 'log', 'rowRanks', 'rowMaxBroadcast', 'rowSumBroadcast'] as const) {
  OPS[name] = (c) => c[name](c.input(0));
  OPS[`${name} f16`] = (c) => c[name](c.input(2));
}
for (let i = 0; i < INPUTS; i++) OPS[`input ${i}`] = (c) => c.input(i);
OPS['where vv'] = (c) => c.where(c.input(4), c.input(0), c.input(1));
OPS['where gt'] = (c) => c.where(c.gt(c.input(0), 0), c.input(1), c.input(2));
OPS['where sv'] = (c) => c.where(c.input(0), 0.3, c.input(1));
OPS['where vs'] = (c) => c.where(c.input(0), c.input(1), -0);
OPS['where ss'] = (c) => c.where(c.input(0), 1 / 3, Infinity);
const WEIGHT_SETS: ((c: ChunkOps) => Operand)[][] = [
  [],
  [() => 0.3],
  [() => 0.3, () => 0.7],
  [() => 1 / 3, () => 1 / 3, () => 1 / 3],
  [(c) => c.input(4), () => 0.2],
  [() => 0.2, (c) => c.input(4)],
  [(c) => c.input(3), (c) => c.input(4), () => -2.5, () => 1e-30, (c) => c.input(1)],
  [() => 0.1, () => 0.2, () => 0.3, () => 0.4],
];
WEIGHT_SETS.forEach((set, k) => {
  OPS[`weightedSum ${k}`] = (c) => c.weightedSum(set.map((_, i) => c.input(i % INPUTS)), set.map((w) => w(c)));
  // Task vectors: differences the SIMD backend subtracts inside the sum, as vectors of their own
  // when another op reads them too, and a difference of a difference.
  OPS[`weightedSum ${k} of differences`] = (c) =>
    c.weightedSum(set.map((_, i) => c.sub(c.input(i % INPUTS), c.input((i + 1) % INPUTS))), set.map((w) => w(c)));
  OPS[`weightedSum ${k} of differences read elsewhere too`] = (c) => {
    const d = set.map((_, i) => c.sub(c.input((i + 2) % INPUTS), c.input(i % INPUTS)));
    const sum = c.weightedSum(d, set.map((w) => w(c)));
    return d.length === 0 ? sum : c.add(c.mul(d[0], 0.5), sum);
  };
  OPS[`weightedSum ${k} of nested differences`] = (c) =>
    c.weightedSum(set.map((_, i) => c.sub(c.sub(c.input(i % INPUTS), c.input(1)), c.input(3))), set.map((w) => w(c)));
});
OPS['weightedSum of differences, weights that are differences'] = (c) =>
  c.weightedSum([c.sub(c.input(0), c.input(1)), c.sub(c.input(2), c.input(1))], [c.sub(c.input(4), c.input(3)), 0.25]);
OPS['random 0'] = (c) => c.random(0);
OPS['random 3'] = (c) => c.random(3);
OPS['perRow'] = (c) => c.perRow(Float64Array.from({ length: 16 }, (_, i) => [0.1, -0, NaN, 1e300, -1e-300, 1 / 3][i % 6] * (i + 1)));
OPS['periodic 7'] = (c) => c.periodic(Float64Array.from({ length: 7 }, (_, i) => [0.1, -0, NaN, 1e300, -1e-300, 1 / 3, 5][i]));
OPS['periodic cols'] = (c) => c.periodic(Float64Array.from({ length: c.cols }, (_, i) => Math.sin(i) * 1e-3));
OPS['sum'] = (c) => c.sum(c.input(0));
OPS['sum finite'] = (c) => c.sum(c.min(c.max(c.input(1), -1e6), 1e6));
OPS['chunkSums'] = (c) => c.chunkSums(c.input(1));
OPS['rowSums'] = (c) => c.rowSums(c.input(2));
OPS['rowSums finite'] = (c) => c.rowSums(c.min(c.max(c.input(2), -1e6), 1e6));
OPS['dot'] = (c) => c.dot(c.input(0), c.input(1));
OPS['dot finite'] = (c) => c.dot(c.min(c.max(c.input(0), -1e3), 1e3), c.min(c.max(c.input(1), -1e3), 1e3));
OPS['periodicSums 7'] = (c) => c.periodicSums(c.input(0), 7);
OPS['periodicSums cols'] = (c) => c.periodicSums(c.min(c.max(c.input(3), -1e6), 1e6), c.cols);
OPS['histogram'] = (c) => c.magnitudeHistogram(c.input(0), null);
OPS['histogram high'] = (c) => c.magnitudeHistogram(c.input(1), 0x3f80);
// The upper digit in every lane (zeros, and NaN from Inf·0), and in scattered lanes (x > 0 made 1).
OPS['histogram high, every element'] = (c) => c.magnitudeHistogram(c.mul(c.input(1), 0), 0);
OPS['histogram high, scattered'] = (c) => c.magnitudeHistogram(c.where(c.gt(c.input(0), 0), 1, c.input(0)), 0x3f80);
OPS['histogram high f16'] = (c) => c.magnitudeHistogram(c.input(2), 0x3c00);
for (const [t, before, allowed] of [[0.5, 0, 1e9], [0, 0, 3], [Infinity, 0, 0], [NaN, 0, 1]] as const) {
  OPS[`keepTop ${t} ${before} ${allowed}`] = (c) => c.keepTopMagnitude(c.input(0), t, before, allowed);
}
OPS['keepTop tie'] = (c) => {
  // A magnitude present in the data, some of its ties kept.
  const x = c.input(1);
  return c.keepTopMagnitude(x, 1, 1, 3);
};
for (const count of [1, 2, 3, 4, 5]) {
  OPS[`signConsensus ${count}`] = (c) => c.signConsensus(Array.from({ length: count }, (_, i) => c.input(i)), [0.5, 1, -0.7, 1 / 3, 2].slice(0, count), null);
  OPS[`signConsensus ${count} weights`] = (c) =>
    c.signConsensus(Array.from({ length: count }, (_, i) => c.input(i)), [0.5, 1, -0.7, 1 / 3, 2].slice(0, count), [0.3, 0.7, 1 / 3, 0, 0.25].slice(0, count));
  OPS[`signConsensus ${count} zero weights`] = (c) =>
    c.signConsensus(Array.from({ length: count }, (_, i) => c.input(i)), Array(count).fill(1), Array(count).fill(0));
}

// DARE's keep, x · (p > uniform): drawn in one sweep (keepBelow), except where a chunk crosses
// index 2^32 ('split 1-D piece'); the mask alone, read twice, or first in the product: written
// out. Last in the table, so that the ops above keep their seeds.
for (const p of [0.5, 0, 1, -0, 1e-8, Infinity, NaN]) {
  OPS[`keep below ${p}`] = (c) => c.mul(c.input(0), c.gt(p, c.random(1)));
  OPS[`keep below ${p}, of a difference`] = (c) => c.mul(c.sub(c.input(1), c.input(3)), c.gt(p, c.random(2)));
}
// A threshold equal to one of the stream's own draws: that element is dropped (p > u is false).
OPS['keep below a drawn value'] = (c) =>
  c.mul(c.input(0), c.gt(randomUniform(streamKey(77, 'model.layers.0.self_attn.q_proj.weight', 1), c.start + (c.length >> 1)), c.random(1)));
OPS['gt random'] = (c) => c.gt(0.3, c.random(2));
OPS['keep below, mask read twice'] = (c) => {
  const mask = c.gt(0.4, c.random(0));
  return c.add(c.mul(c.input(0), mask), mask);
};
OPS['keep below, mask first'] = (c) => c.mul(c.gt(0.6, c.random(4)), c.input(2));
// Sums of |x|, which the SIMD kernels add without writing |x| (NaN of either sign, -0 …), alone,
// with another sum in the same sweep, and with |x| read by another op too.
OPS['sum abs'] = (c) => c.sum(c.abs(c.input(0)));
OPS['sum abs, with other sums pending'] = (c) => {
  c.sum(c.abs(c.input(1)));
  c.sum(c.input(2));
  return c.sum(c.abs(c.sub(c.input(0), c.input(3))));
};
OPS['abs summed and read'] = (c) => {
  const a = c.abs(c.input(0));
  c.sum(a);
  return c.mul(a, 2);
};

// Weighted sums of raw bf16 inputs (0 in the BF16 runs, and 3) and of their task vectors, which
// the kernels sweep with their tests hoisted: one term, two, three and four (first sweeps and later).
const BF16_TERMS: ((c: ChunkOps) => Vec)[] = [(c) => c.input(3), (c) => c.input(0), (c) => c.input(3), (c) => c.input(0)];
const BF16_DIFFERENCES: ((c: ChunkOps) => Vec)[] = [
  (c) => c.sub(c.input(0), c.input(3)),
  (c) => c.sub(c.input(3), c.input(0)),
  (c) => c.sub(c.input(0), c.input(3)),
  (c) => c.sub(c.input(3), c.input(0)),
];
for (const count of [1, 2, 3, 4]) {
  const weights = [0.3, -1.5, 1 / 3, 1e-30].slice(0, count);
  OPS[`weightedSum of ${count} bf16 inputs`] = (c) => c.weightedSum(BF16_TERMS.slice(0, count).map((t) => t(c)), weights);
  OPS[`weightedSum of ${count} bf16 differences`] = (c) => c.weightedSum(BF16_DIFFERENCES.slice(0, count).map((t) => t(c)), weights);
}

// Histograms and top-k of task vectors, which the kernels subtract in their sweeps: raw bf16 −
// raw bf16 (BF16 runs), f32 − f32, mixed; x − x for upper digits and ties every element has
// (0, and the NaN of Inf − Inf and NaN inputs).
const DIFFERENCES: [string, (c: ChunkOps) => Vec][] = [
  ['bf16', (c) => c.sub(c.input(0), c.input(3))],
  ['f32', (c) => c.sub(c.input(2), c.input(1))],
  ['mixed', (c) => c.sub(c.input(1), c.input(3))],
  ['x - x', (c) => c.sub(c.input(0), c.input(0))],
];
for (const [name, d] of DIFFERENCES) {
  OPS[`histogram of a ${name} difference`] = (c) => c.magnitudeHistogram(d(c), null);
  for (const high of [0, 0x3f80, 0x7fc0]) OPS[`histogram high ${high} of a ${name} difference`] = (c) => c.magnitudeHistogram(d(c), high);
  for (const [t, before, allowed] of [[0.5, 0, 1e9], [0, 1, 3], [Infinity, 0, 0], [NaN, 0, 1]] as const) {
    OPS[`keepTop ${t} ${before} ${allowed} of a ${name} difference`] = (c) => c.keepTopMagnitude(d(c), t, before, allowed);
  }
}

// DARE's rescale (l1RescaleFactors): |d| summed, then d kept below a draw, so that keepBelow writes
// d as it subtracts it; the sum, and d and the kept values read afterwards. Raw bf16 − raw bf16 (in
// the BF16 runs), f16 − bf16 and x − x; the sum pending alone and beside the kept values' sum.
for (const [name, d] of [['bf16', (c: ChunkOps) => c.sub(c.input(0), c.input(3))], ['f16 − bf16', (c: ChunkOps) => c.sub(c.input(1), c.input(3))], ['x − x', (c: ChunkOps) => c.sub(c.input(0), c.input(0))]] as const) {
  OPS[`sum of |${name} difference| kept below after`] = (c) => {
    const delta = d(c);
    const sum = c.sum(c.abs(delta));
    c.mul(delta, c.gt(0.5, c.random(1)));
    return sum;
  };
  OPS[`sums of |${name} difference| and of |kept|`] = (c) => {
    const delta = d(c);
    c.sum(c.abs(delta));
    return c.sum(c.abs(c.mul(delta, c.gt(0.3, c.random(2)))));
  };
  OPS[`${name} difference written by its keep, read after`] = (c) => {
    const delta = d(c);
    c.sum(c.abs(delta));
    const kept = c.mul(delta, c.gt(0.7, c.random(3)));
    return c.sub(delta, kept);
  };
}

// Thresholds whose keep test h < ⌈t·2^24⌉ (keepBelow compares the 24-bit hashes) rounds up or
// is exact, and thresholds next to one of the stream's own draws u: the next float up keeps that
// element, u itself and the next float down drop it.
const f32Step = (v: number, step: number): number => new Float32Array(new Uint32Array([new Uint32Array(new Float32Array([v]).buffer)[0] + step]).buffer)[0];
for (const p of [1 / 3, 2 ** -24, 1 - 2 ** -24, 5e-8, 1.5]) OPS[`keep below ${p}`] = (c) => c.mul(c.input(0), c.gt(p, c.random(1)));
for (const [name, step] of [['up', 1], ['down', -1]] as const) {
  OPS[`keep below the float ${name} from a drawn value`] = (c) =>
    c.mul(c.input(0), c.gt(f32Step(randomUniform(streamKey(77, 'model.layers.0.self_attn.q_proj.weight', 1), c.start + (c.length >> 1)), step), c.random(1)));
}

// DARE's output pass: the consensus of task vectors kept by masks already packed (here by the
// products that drew them), which signConsensusKept reads without writing them: raw bf16
// differences (in the BF16 runs), f32 ones (f32 − decoded f16), and a mix (written out first).
const KEPT_DIFFERENCES: Record<string, ((c: ChunkOps) => Vec)[]> = {
  bf16: [(c) => c.sub(c.input(0), c.input(3)), (c) => c.sub(c.input(3), c.input(0)), (c) => c.sub(c.input(0), c.input(3))],
  f32: [(c) => c.sub(c.input(2), c.input(1)), (c) => c.sub(c.input(1), c.input(2)), (c) => c.sub(c.input(2), c.input(4))],
  mixed: [(c) => c.sub(c.input(0), c.input(3)), (c) => c.sub(c.input(2), c.input(1)), (c) => c.sub(c.input(1), c.input(3))],
};
function keptConsensus(kind: string, count: number, weights: number[] | null): (c: ChunkOps) => Vec {
  return (c) => {
    const masks = Array.from({ length: count }, (_, j) => c.gt([0.5, 0.3, 0.8][j], c.random(j + 1)));
    for (const m of masks) c.sum(c.mul(c.input(4), m));
    const terms = KEPT_DIFFERENCES[kind].slice(0, count).map((d, j) => c.mul(d(c), masks[j]));
    return c.signConsensus(terms, [0.5, -0.7, 1 / 3].slice(0, count), weights && weights.slice(0, count));
  };
}
for (const kind of Object.keys(KEPT_DIFFERENCES)) {
  for (const count of [2, 3]) {
    OPS[`signConsensus ${count} of kept ${kind} differences`] = keptConsensus(kind, count, null);
    OPS[`signConsensus ${count} of kept ${kind} differences, weights`] = keptConsensus(kind, count, [0.3, 0, 0.7]);
  }
}

let simd: ComputeBackend;
let simdBackend: SimdCpuBackend;
const cpu = new CpuBackend();
beforeAll(async () => {
  simd = simdBackend = await createSimdCpuBackend();
});

function isVec(r: OpResult): r is Vec {
  return !('kind' in (r as object));
}

function f64Bits(values: ArrayLike<number>): string {
  return Array.from(values, (v) => {
    const b = new Uint32Array(new Float64Array([v]).buffer);
    return `${b[1].toString(16)}:${b[0].toString(16)}`;
  }).join(',');
}

interface Outcome {
  readonly words: Uint32Array | Uint16Array;
}

async function results(chunk: BackendChunk, r: OpResult): Promise<Record<string, Outcome>> {
  if (isVec(r)) {
    const out: Record<string, Outcome> = {};
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      const bytes = (await chunk.encode(r, dtype)).slice();
      out[dtype] = { words: dtype === 'F32' ? new Uint32Array(bytes.buffer) : new Uint16Array(bytes.buffer) };
    }
    return out;
  }
  const [partial] = await chunk.readPartials([r as unknown as ReductionToken]);
  // A histogram compares as its bins then its counts (both backends report the non-empty bins).
  const values = typeof partial === 'number' ? [partial] : isSparseHistogram(partial) ? [...partial.bins, ...partial.counts] : Array.from(partial);
  return { [(r as unknown as ReductionToken).kind]: { words: new Uint32Array(Float64Array.from(values).buffer) } };
}

const isNaNBits = (v: number): boolean => (v & 0x7fffffff) > 0x7f800000;

/**
 * '' when equal, else the first differences with the inputs' f32 bits at those elements.
 * `quietInsensitive`: a signalling NaN may come out quieted. The reference's `where` passes a
 * signalling NaN through unchanged once V8 optimises it but quiets it while interpreted, so no
 * implementation can match both; only the F32 bytes can show it (BF16/F16 encoding sets the bit).
 */
function differences(name: string, expected: Record<string, Outcome>, actual: Record<string, Outcome>, inputs: Float32Array[], quietInsensitive = false): string {
  const lines: string[] = [];
  for (const key of Object.keys(expected)) {
    const e = expected[key].words;
    const a = actual[key]?.words;
    if (!a || a.length !== e.length) {
      lines.push(`${name} ${key}: length ${a?.length} instead of ${e.length}`);
      continue;
    }
    for (let i = 0; i < e.length && lines.length < 6; i++) {
      if (e[i] === a[i]) continue;
      if (quietInsensitive && key === 'F32' && isNaNBits(e[i]) && isNaNBits(a[i]) && (e[i] | 0x400000) === (a[i] | 0x400000)) continue;
      const at = key === 'F32' || key === 'BF16' || key === 'F16' ? i : -1;
      const ins = at >= 0 ? inputs.map((x) => hex(new Uint32Array(x.buffer)[at])).join(' ') : '';
      lines.push(`${name} ${key}[${i}]: ${hex(a[i])} instead of ${hex(e[i])}  inputs ${ins}`);
    }
  }
  return lines.join('\n');
}

const hex = (v: number | undefined): string => (v === undefined ? '-' : (v >>> 0).toString(16).padStart(8, '0'));

describe('SimdCpuBackend equals CpuBackend byte for byte', () => {
  for (const shape of SHAPES) {
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      it(`every op, ${shape.label}, ${dtype} input 0`, async () => {
        let seed = 1 + shape.rows * 31 + shape.cols;
        const failures: string[] = [];
        for (const [name, op] of Object.entries(OPS)) {
          const { spec, inputs } = makeChunks(shape, dtype, seed++);
          const a = cpu.beginChunk(spec, inputs);
          const b = simd.beginChunk(spec, inputs);
          const expected = await results(a, op(a.ops));
          const actual = await results(b, op(b.ops));
          const decoded: Float32Array[] = [];
          for (let i = 0; i < INPUTS; i++) decoded.push(new Float32Array((await a.encode(a.ops.input(i), 'F32')).slice().buffer));
          a.release();
          b.release();
          failures.push(differences(name, expected, actual, decoded, name.startsWith('where')));
        }
        expect(failures.filter((f) => f).join('\n')).toBe('');
      });
    }
  }

  it('chunks that are alive at the same time keep their own memory, and memory is reused', async () => {
    const { spec, inputs } = makeChunks({ label: '', rows: 8, cols: 1000 }, 'BF16', 5);
    const first = simd.beginChunk(spec, inputs);
    const second = simd.beginChunk(spec, inputs);
    const x = first.ops.add(first.ops.input(0), first.ops.input(1));
    const y = second.ops.mul(second.ops.input(0), 3);
    const expectedX = await encodeRef(spec, inputs, (c) => c.add(c.input(0), c.input(1)));
    const expectedY = await encodeRef(spec, inputs, (c) => c.mul(c.input(0), 3));
    second.release();
    expect(Buffer.from(await first.encode(x, 'F32')).equals(Buffer.from(expectedX))).toBe(true);
    first.release();
    const third = simd.beginChunk(spec, inputs);
    const z = third.ops.mul(third.ops.input(0), 3);
    expect(Buffer.from(await third.encode(z, 'F32')).equals(Buffer.from(expectedY))).toBe(true);
    third.release();
    void y;
  });

  it('encodes into the buffer of recycled output bytes, with the same bytes as the reference', async () => {
    const big = makeChunks({ label: '', rows: 8, cols: 1000 }, 'BF16', 7);
    const small = makeChunks({ label: '', rows: 5, cols: 1000 }, 'BF16', 8);
    const tiny = makeChunks({ label: '', rows: 1, cols: 1000 }, 'BF16', 9);
    const op = (c: ChunkOps): Vec => c.sub(c.input(0), c.input(1));
    const encode = async ({ spec, inputs }: typeof big, dtype: FloatDtype): Promise<Uint8Array> => {
      const chunk = simd.beginChunk(spec, inputs);
      try {
        return await chunk.encode(op(chunk.ops), dtype);
      } finally {
        chunk.release();
      }
    };
    const first = await encode(big, 'F32');
    simdBackend.recycle(first);
    // A chunk of 5 rows of bf16 (10 000 bytes) fits the 32 000 of the first only within twice its size: a new buffer.
    const other = await encode(small, 'BF16');
    expect(other.buffer).not.toBe(first.buffer);
    // 5 rows of f32 (20 000 bytes) go into the recycled buffer, at its start.
    const reused = await encode(small, 'F32');
    expect(reused.buffer).toBe(first.buffer);
    expect(reused.byteOffset).toBe(0);
    expect(reused.byteLength).toBe(20000);
    expect(Buffer.from(reused).equals(Buffer.from(await encodeRef(small.spec, small.inputs, op)))).toBe(true);
    // Taken: the next chunk gets a buffer of its own.
    expect((await encode(tiny, 'F32')).buffer).not.toBe(first.buffer);
    simdBackend.recycle(reused);
    simdBackend.recycle(reused); // twice: still one spare
    expect((await encode(big, 'F32')).buffer).toBe(first.buffer);
    expect((await encode(big, 'F32')).buffer).not.toBe(first.buffer);
  });

  it('keeps a vector past its chunk without a copy, under two keepers, until the last one drops it', async () => {
    const { spec, inputs } = makeChunks({ label: '', rows: 8, cols: 1000 }, 'BF16', 6);
    const sum = (c: ChunkOps): Vec => c.add(c.input(0), c.input(1));
    const expected = await encodeRef(spec, inputs, sum);
    const first = simd.beginChunk(spec, inputs);
    const kept = simdBackend.keep(first.ops, sum(first.ops));
    const again = simdBackend.keep(first.ops, simdBackend.use(first.ops, kept)); // the same block, a second keeper
    expect(again.ptr).toBe(kept.ptr);
    first.release();
    // A chunk made after the release writes its own vectors elsewhere: the kept values stay.
    const overwrite = simd.beginChunk(spec, inputs);
    for (let i = 0; i < 4; i++) overwrite.ops.mul(overwrite.ops.input(2), -7);
    const reader = simd.beginChunk(spec, inputs);
    const read = simdBackend.use(reader.ops, kept);
    expect(Buffer.from(await reader.encode(read, 'F32')).equals(Buffer.from(expected))).toBe(true);
    // A vector made from the kept one computes as the original would.
    const doubled = reader.ops.mul(read, 2);
    expect(Buffer.from(await reader.encode(doubled, 'F32')).equals(Buffer.from(await encodeRef(spec, inputs, (c) => c.mul(sum(c), 2))))).toBe(true);
    reader.release();
    overwrite.release();
    simdBackend.drop(kept);
    const still = simd.beginChunk(spec, inputs);
    expect(Buffer.from(await still.encode(simdBackend.use(still.ops, again), 'F32')).equals(Buffer.from(expected))).toBe(true);
    still.release();
    simdBackend.drop(again);
    expect(() => simdBackend.drop(again)).toThrow(/dropped twice/);
    // Dropped blocks return to the heap: keeping and dropping a vector per chunk never grows the memory.
    const memory = (): number => (simdBackend as unknown as { kernels: { memory: WebAssembly.Memory } }).kernels.memory.buffer.byteLength;
    const before = memory();
    for (let i = 0; i < 200; i++) {
      const chunk = simd.beginChunk(spec, inputs);
      const k = simdBackend.keep(chunk.ops, sum(chunk.ops));
      chunk.release();
      simdBackend.drop(k);
    }
    expect(memory()).toBe(before);
  });

  it('keeps a bf16 input as its raw bytes, decoded or not: later chunks compute from it as from the input', async () => {
    for (const shape of [{ rows: 1, cols: 1 }, { rows: 1, cols: 17 }, { rows: 17, cols: 241 }]) {
      const { spec, inputs } = makeChunks({ label: '', ...shape }, 'BF16', shape.cols + 11);
      const ops: [string, (c: ChunkOps, x: Vec) => Vec][] = [
        ['as it is', (_c, x) => x],
        ['in a task vector summed', (c, x) => c.weightedSum([c.sub(x, c.input(3)), c.input(3)], [0.3, -2])],
        ['decoded by an op', (c, x) => c.sqrt(x)],
      ];
      for (const decodedFirst of [false, true]) {
        const first = simd.beginChunk(spec, inputs);
        if (decodedFirst) first.ops.exp(first.ops.input(0)); // an op that writes the decoded values out
        const kept = simdBackend.keep(first.ops, first.ops.input(0));
        expect(kept.bytes).toBe(spec.length * 2);
        first.release();
        for (const [name, op] of ops) {
          const reader = simd.beginChunk(spec, inputs);
          for (let i = 0; i < 3; i++) reader.ops.mul(reader.ops.input(2), -7); // vectors written where the first chunk's were
          const got = Buffer.from(await reader.encode(op(reader.ops, simdBackend.use(reader.ops, kept)), 'F32'));
          expect(got.equals(Buffer.from(await encodeRef(spec, inputs, (c) => op(c, c.input(0))))), `${shape.rows}x${shape.cols} ${name}${decodedFirst ? ', decoded first' : ''}`).toBe(true);
          reader.release();
        }
        simdBackend.drop(kept);
      }
    }
  });

  it('keeps a 0/1 mask as one bit per element: a later chunk reads the same bytes, and dropping it frees its block', async () => {
    for (const shape of [{ rows: 1, cols: 1 }, { rows: 1, cols: 15 }, { rows: 1, cols: 17 }, { rows: 17, cols: 241 }, { rows: 1, cols: 4097 }]) {
      const { spec, inputs } = makeChunks({ label: '', ...shape }, 'F32', shape.cols);
      // NaN, ±0, ±Inf and subnormals of input 0 make both bits, and both kinds of mask.
      for (const mask of [(c: ChunkOps) => c.gt(c.input(0), c.input(1)), (c: ChunkOps) => c.gt(0.5, c.random(3))]) {
        const expected = await encodeRef(spec, inputs, mask);
        const first = simd.beginChunk(spec, inputs);
        const kept = simdBackend.keep(first.ops, mask(first.ops), true);
        expect(kept.bytes).toBe(Math.ceil(spec.length / 16) * 2);
        first.release();
        const reader = simd.beginChunk(spec, inputs);
        for (let i = 0; i < 3; i++) reader.ops.mul(reader.ops.input(2), -7); // vectors written where the chunk's were
        expect(Buffer.from(await reader.encode(simdBackend.use(reader.ops, kept), 'F32')).equals(Buffer.from(expected)), `${shape.rows}x${shape.cols}`).toBe(true);
        reader.release();
        simdBackend.drop(kept);
        expect(() => simdBackend.drop(kept)).toThrow(/dropped twice/);
      }
    }
  });

  it("keeps vectors by a packed mask (keepBits), and packs the mask DARE's keep draws (keepBelow), with the reference's bytes", async () => {
    // Kept: raw bf16, f16/f32 inputs, and task vectors subtracted in the sweep (bf16 − bf16, mixed, f32 − f16).
    const kept: [string, (c: ChunkOps) => Vec][] = [
      ['input 0', (c) => c.input(0)],
      ['bf16 input', (c) => c.input(3)],
      ['bf16 − input 0', (c) => c.sub(c.input(3), c.input(0))],
      ['f16 − bf16', (c) => c.sub(c.input(1), c.input(3))],
      ['f32 − f16', (c) => c.sub(c.input(2), c.input(1))],
    ];
    const masks: [string, (c: ChunkOps) => Vec][] = [
      ['compared', (c) => c.gt(c.input(0), c.input(1))],
      ['drawn', (c) => c.gt(0.5, c.random(3))],
      ['drawn, NaN threshold', (c) => c.gt(NaN, c.random(1))],
    ];
    const failures: string[] = [];
    for (const shape of [{ rows: 1, cols: 1 }, { rows: 1, cols: 15 }, { rows: 1, cols: 17 }, { rows: 3, cols: 341 }, { rows: 17, cols: 241 }, { rows: 1, cols: 4097 }]) {
      for (const dtype of ['BF16', 'F16', 'F32'] as const) {
        const { spec, inputs } = makeChunks({ label: '', ...shape }, dtype, shape.rows * shape.cols + 3);
        for (const [maskName, mask] of masks) {
          const label = `${shape.rows}x${shape.cols} ${dtype} ${maskName}`;
          const same = async (what: string, c: BackendChunk, v: Vec, op: (c: ChunkOps) => Vec): Promise<void> => {
            if (!Buffer.from(await c.encode(v, 'F32')).equals(Buffer.from(await encodeRef(spec, inputs, op)))) failures.push(`${label}: ${what}`);
          };
          // The mask is drawn and packed by the product that reads it first (keepBelow), then kept.
          const first = simd.beginChunk(spec, inputs);
          const m = mask(first.ops);
          const product = first.ops.mul(kept[2][1](first.ops), m);
          const bits = simdBackend.keep(first.ops, m, true);
          await same('product that packs', first, product, (c) => c.mul(kept[2][1](c), mask(c)));
          first.release();
          for (const [name, x] of kept) {
            const reader = simd.beginChunk(spec, inputs);
            await same(`${name} · kept mask`, reader, reader.ops.mul(x(reader.ops), simdBackend.use(reader.ops, bits)), (c) => c.mul(x(c), mask(c)));
            reader.release();
          }
          const reader = simd.beginChunk(spec, inputs);
          await same('kept mask', reader, simdBackend.use(reader.ops, bits), mask);
          reader.release();
          simdBackend.drop(bits);
        }
      }
    }
    expect(failures.join('\n')).toBe('');
  });

  it('reads the terms of a consensus kept by packed masks in its sweep where they are alike (bf16 or f32 differences), else writes them first', async () => {
    // A backend of its own on kernels of their own, whose fused consensus counts its calls.
    const kernels = await instantiateKernels();
    let calls = 0;
    const counting = new SimdCpuBackend({ ...kernels, signConsensusKept: (...args: Parameters<Kernels['signConsensusKept']>) => (calls++, kernels.signConsensusKept(...args)) });
    for (const [kind, dtype, fused] of [['bf16', 'BF16', true], ['bf16', 'F32', false], ['f32', 'BF16', true], ['mixed', 'BF16', false]] as const) {
      for (const count of [2, 3]) {
        const { spec, inputs } = makeChunks({ label: '', rows: 3, cols: 341 }, dtype, 5);
        const chunk = counting.beginChunk(spec, inputs);
        calls = 0;
        const got = await chunk.encode(keptConsensus(kind, count, null)(chunk.ops), 'F32');
        chunk.release();
        expect(calls, `${count} ${kind} differences, ${dtype} input 0`).toBe(fused ? 1 : 0);
        expect(Buffer.from(got).equals(Buffer.from(await encodeRef(spec, inputs, keptConsensus(kind, count, null)))), `${count} ${kind} ${dtype}`).toBe(true);
      }
    }
  });

  it('grows its memory for a large chunk and still matches', async () => {
    const shape = { label: '', rows: 64, cols: 40000 };
    const { spec, inputs } = makeChunks(shape, 'BF16', 9);
    const op: Op = (c) => c.weightedSum([c.input(0), c.input(1), c.input(2)], [0.4, 0.3, 0.3]);
    const expected = await encodeRef(spec, inputs, op as (c: ChunkOps) => Vec, 'BF16');
    const chunk = simd.beginChunk(spec, inputs);
    const actual = await chunk.encode(op(chunk.ops) as Vec, 'BF16');
    chunk.release();
    expect(Buffer.from(actual).equals(Buffer.from(expected))).toBe(true);
  });

  it('decodes and encodes every bf16 and f16 bit pattern exactly as the reference', async () => {
    for (const dtype of ['BF16', 'F16'] as const) {
      const all = new Uint16Array(65536).map((_, i) => i);
      const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: 65536, rowStart: 0, rows: 1, cols: 65536, totalRows: 1, seed: 0 };
      const inputs = [{ bytes: new Uint8Array(all.buffer), dtype, cols: 65536 }];
      for (const out of ['F32', 'BF16', 'F16'] as const) {
        const expected = await encodeRef(spec, inputs, (c) => c.input(0), out);
        const chunk = simd.beginChunk(spec, inputs);
        const actual = await chunk.encode(chunk.ops.input(0), out);
        chunk.release();
        expect(Buffer.from(actual).equals(Buffer.from(expected)), `${dtype} -> ${out}`).toBe(true);
      }
    }
  });

  it('encodes f32 patterns across every exponent to bf16 and f16 as the reference', async () => {
    const random = rng(3);
    const n = 1 << 18;
    const bits = new Uint32Array(n);
    // Every exponent and sign with random mantissas, plus mantissas at and around the rounding ties.
    for (let i = 0; i < n; i++) {
      const mant = i % 4 === 0 ? Math.floor(random() * 0x800000) : ((Math.floor(random() * 0x400) << 13) | [0x1000, 0x0fff, 0x1001, 0x8000, 0x7fff][i % 5]) & 0x7fffff;
      bits[i] = (((i >>> 2) & 0x1ff) << 23) | mant;
    }
    const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: n, rowStart: 0, rows: 1, cols: n, totalRows: 1, seed: 0 };
    const inputs = [{ bytes: new Uint8Array(bits.buffer), dtype: 'F32' as const, cols: n }];
    for (const out of ['BF16', 'F16'] as const) {
      const expected = await encodeRef(spec, inputs, (c) => c.input(0), out);
      const chunk = simd.beginChunk(spec, inputs);
      const actual = await chunk.encode(chunk.ops.input(0), out);
      chunk.release();
      expect(Buffer.from(actual).equals(Buffer.from(expected)), out).toBe(true);
    }
  });
});

describe('several dots and sums of one chunk, computed together when the partials are read', () => {
  // Values whose products' f64 sum depends on the order of the additions: magnitudes from 2^-70
  // to 2^20, subnormal and zero factors, both signs. `special` adds NaNs with payloads (quiet and
  // signalling, both signs) and ±Inf.
  function dotValues(n: number, random: () => number, special: boolean): Float32Array {
    const f = new Float32Array(n);
    const bits = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      const r = random();
      if (special && r < 0.02) bits[i] = [0x7fc00000, 0xffc00001, 0x7fa00000, 0xff812345, 0x7fc0beef][Math.floor(random() * 5)];
      else if (special && r < 0.04) f[i] = random() < 0.5 ? Infinity : -Infinity;
      else if (r < 0.08) bits[i] = Math.floor(random() * 0x800000) | (random() < 0.5 ? 0x80000000 : 0); // subnormal or ±0
      else f[i] = (random() < 0.5 ? -1 : 1) * (1 + random()) * 2 ** Math.floor(random() * 91 - 70);
    }
    return f;
  }

  /**
   * Input `index` as bytes of `dtype` (bf16: the high halves of the f32 bits; f16: the low halves
   * as f16 patterns, finite unless `special`). Its first two elements are +2^40 (f16: 2^15), the
   * second times −1 for an odd index: in the dot of inputs 2j and 2j+1 the first two products
   * cancel exactly and dwarf the others, which another order of the sum would partly absorb.
   */
  function inputOf(index: number, n: number, dtype: FloatDtype, random: () => number, special: boolean): Uint8Array {
    const values = dotValues(n, random, special);
    if (n >= 2) {
      values[0] = 2 ** 40;
      values[1] = index % 2 === 0 ? 2 ** 40 : -(2 ** 40);
    }
    if (dtype === 'F32') return new Uint8Array(values.buffer);
    const bits = new Uint32Array(values.buffer);
    if (dtype === 'BF16') return new Uint8Array(Uint16Array.from(bits, (b) => b >>> 16).buffer);
    const half = Uint16Array.from(bits, (b) => b & 0xffff);
    for (let i = 0; i < n; i++) if (!special && (half[i] & 0x7c00) === 0x7c00) half[i] ^= 0x4000;
    if (n >= 2) {
      half[0] = 0x7800;
      half[1] = index % 2 === 0 ? 0x7800 : 0xf800;
    }
    return new Uint8Array(half.buffer);
  }

  const DTYPES = ['F32', 'BF16', 'F32', 'F16'] as const;
  const VECTORS = 18;

  function chunkOf(n: number, seed: number, special: boolean): { spec: ChunkSpec; inputs: ChunkInputBytes[] } {
    const random = rng(seed);
    const inputs = Array.from({ length: VECTORS }, (_, i) => {
      const dtype = DTYPES[i % DTYPES.length];
      return { bytes: inputOf(i, n, dtype, random, special), dtype, cols: n };
    });
    const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: n, rowStart: 0, rows: 1, cols: n, totalRows: 1, seed: 0 };
    return { spec, inputs };
  }

  type Mode = 'shared' | 'distinct' | 'mixed' | 'sums' | 'gram';
  const MODES: Mode[] = ['shared', 'distinct', 'mixed', 'sums', 'gram'];

  /**
   * `count` reductions. `shared`: dots as a Gram matrix's entries over a few vectors (self dots
   * and operands used by several dots, plus a vector made by an op after some dots were asked
   * for). `distinct`: every dot on two vectors of its own. `mixed`: dots, sums of products (as
   * slerp) and sums of inputs in turn. `sums`: sums only. `gram`: dots of task vectors, as
   * model_stock asks for them, the Gram matrix in row order of differences with one subtrahend
   * (the gram kernel): of 2 from bf16 inputs (3 dots), f32 ones (5: and plain dots after), with
   * y·x for x·y (4); of 3 from bf16 inputs (6), mixed dtypes (7), with x written out by a sum
   * first (9); and only part of one (1, 2: f16 inputs).
   */
  function reductionsOf(c: ChunkOps, count: number, mode: Mode): Reduction<number>[] {
    const out: Reduction<number>[] = [];
    if (mode === 'gram') {
      // Inputs by dtype (DTYPES): 0, 2, 4 are f32; 1, 5, 9, 13 bf16; 3, 7 f16.
      const indices = { 2: [1, 3, 7], 5: [0, 2, 4], 6: [1, 5, 9, 13], 7: [0, 3, 5, 2], 9: [1, 5, 9, 13] }[count] ?? [1, 5, 9];
      const base = c.input(indices[0]);
      const v = indices.slice(1).map((i) => c.sub(c.input(i), base));
      if (count === 9) out.push(c.sum(v[0]));
      for (let i = 0; i < v.length; i++) for (let j = i; j < v.length; j++) out.push(count === 4 && j > i ? c.dot(v[j], v[i]) : c.dot(v[i], v[j]));
      for (let k = 0; out.length < count; k++) out.push(c.dot(c.input(10 + (k % 4)), c.input(14 + (k % 4))));
      return out.slice(0, count);
    }
    if (mode === 'distinct') {
      for (let j = 0; j < count; j++) out.push(c.dot(c.input(2 * j), c.input(2 * j + 1)));
      return out;
    }
    if (mode === 'mixed' || mode === 'sums') {
      for (let j = 0; j < count; j++) {
        // Sums of |x| (the SIMD kernels mask the sign as they add): of an input, and of a difference.
        const kind = mode === 'sums' ? 1 + (j % 4) : j % 5;
        const [x, y] = [c.input(2 * j), c.input(2 * j + 1)];
        const sums = [() => c.sum(c.mul(x, y)), () => c.sum(x), () => c.sum(c.abs(x)), () => c.sum(c.abs(c.sub(x, y)))];
        out.push(kind === 0 ? c.dot(x, y) : sums[kind - 1]());
      }
      return out;
    }
    const v = [c.input(0), c.input(1), c.input(3), c.input(5)];
    for (let i = 0; i < v.length && out.length < count; i++) {
      for (let j = i; j < v.length && out.length < count; j++) {
        out.push(c.dot(v[i], v[j]));
        if (out.length === 3) v[3] = c.sub(c.input(7), c.input(6)); // a vector made between dots
      }
    }
    return out;
  }

  const f64Hex = (v: number): string => f64Bits([v]);

  /** The f64 sums of the products in wrong orders: in 4 interleaved lanes combined at the end, and backwards. */
  function wrongOrderSums(x: Float32Array, y: Float32Array): number[] {
    const lanes = [0, 0, 0, 0];
    let backwards = 0;
    for (let i = 0; i < x.length; i++) lanes[i % 4] += Math.fround(x[i] * y[i]);
    for (let i = x.length - 1; i >= 0; i--) backwards += Math.fround(x[i] * y[i]);
    return [lanes[0] + lanes[1] + lanes[2] + lanes[3], backwards];
  }

  for (const n of [0, 1, 2, 3, 5, 6, 4096, 4099]) {
    for (const special of [false, true]) {
      it(`equal the reference bit for bit: 1-9 dots and sums, ${n} elements${special ? ', NaN and ±Inf' : ''}`, async () => {
        const failures: string[] = [];
        let orderSensitive = 0;
        for (const count of [1, 2, 3, 4, 5, 6, 7, 9]) {
          for (const [m, mode] of MODES.entries()) {
            const { spec, inputs } = chunkOf(n, 1000 * n + 10 * count + m + (special ? 5 : 0), special);
            const a = cpu.beginChunk(spec, inputs);
            const b = simd.beginChunk(spec, inputs);
            const expectedTokens = reductionsOf(a.ops, count, mode);
            const actualTokens = reductionsOf(b.ops, count, mode);
            expect(actualTokens.length).toBe(count);
            const expected = await a.readPartials(expectedTokens as unknown as ReductionToken[]);
            const actual = await b.readPartials(actualTokens as unknown as ReductionToken[]);
            for (let j = 0; j < count; j++) {
              const e = expected[j] as number;
              const got = actual[j] as number;
              if (f64Hex(e) !== f64Hex(got)) failures.push(`${count} ${mode} #${j}: ${got} (${f64Hex(got)}) instead of ${e} (${f64Hex(e)})`);
            }
            if (!special && mode === 'distinct') {
              // The data must tell the reference's order from others: each dot sums differently in lanes and backwards.
              for (let j = 0; j < count; j++) {
                const x = new Float32Array((await a.encode(a.ops.input(2 * j), 'F32')).slice().buffer);
                const y = new Float32Array((await a.encode(a.ops.input(2 * j + 1), 'F32')).slice().buffer);
                if (wrongOrderSums(x, y).every((w) => f64Hex(w) !== f64Hex(expected[j] as number))) orderSensitive++;
              }
            }
            a.release();
            b.release();
          }
        }
        expect(failures.join('\n')).toBe('');
        // Of the 1 + 2 + … + 7 + 9 distinct dots, all on long chunks; on 5 or 6 elements a zero or
        // tiny product after the cancelling pair can leave the wrong orders right.
        if (!special && n >= 4096) expect(orderSensitive).toBe(37);
        else if (!special && n >= 5) expect(orderSensitive).toBeGreaterThanOrEqual(25);
      });
    }
  }

  it('give Gram matrices of task vectors the NaN payloads of the reference, in the sweep and its last partial group', async () => {
    // x = a − s, y = b − s and z = c − s end with NaNs of different payloads: the products there
    // are the dots' last NaNs, whose payloads the sums keep, and they depend on the order of the
    // operands of ×. On 8 elements they are in the 4-wide sweep, on 7 in the partial group after
    // it. The matrices: of x, y; of x, y, z; of x, y, z with y·x for x·y, with y of another
    // subtrahend, and with x written out first (these three computed as any dots are).
    const variants = ['x y', 'x y z', 'y·x', 'other subtrahend', 'written'] as const;
    for (const n of [7, 8]) {
      const values = (last: number, middle: number): Float32Array => {
        const v = Float32Array.from({ length: n }, (_, i) => 0.25 * (i + 1));
        new Uint32Array(v.buffer)[n - 1] = last;
        new Uint32Array(v.buffer)[3] = middle;
        return v;
      };
      const columns = [
        values(0x7fc00123, 0x3f800000),
        values(0xffc00456, 0x7fc00789),
        values(0x7fc0abcd, 0xff800000),
        values(0x3f800000, 0x3f800000),
        values(0x40000000, 0x7fc00042),
      ];
      for (const dtype of ['F32', 'BF16'] as const) {
        const bytes = (v: Float32Array): Uint8Array =>
          dtype === 'F32' ? new Uint8Array(v.buffer.slice(0)) : new Uint8Array(Uint16Array.from(new Uint32Array(v.buffer), (x) => x >>> 16).buffer);
        const inputs = columns.map((v) => ({ bytes: bytes(v), dtype, cols: n }));
        const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: n, rowStart: 0, rows: 1, cols: n, totalRows: 1, seed: 0 };
        for (const variant of variants) {
          const gram = async (backend: ComputeBackend): Promise<string[]> => {
            const chunk = backend.beginChunk(spec, inputs);
            const c = chunk.ops;
            const base = c.input(3);
            const v = [0, 1, 2].slice(0, variant === 'x y' ? 2 : 3).map((i) => c.sub(c.input(i), variant === 'other subtrahend' && i === 1 ? c.input(4) : base));
            const tokens = variant === 'written' ? [c.sum(v[0])] : [];
            for (let i = 0; i < v.length; i++) for (let j = i; j < v.length; j++) tokens.push(variant === 'y·x' && j > i ? c.dot(v[j], v[i]) : c.dot(v[i], v[j]));
            const partials = await chunk.readPartials(tokens as unknown as ReductionToken[]);
            chunk.release();
            return partials.map((p) => f64Hex(p as number));
          };
          expect(await gram(simd), `${n} ${dtype} ${variant}`).toEqual(await gram(cpu));
        }
      }
    }
  });

  // DARE's rescale (l1RescaleFactors): Σ|d| and Σ|d · mask| of each task vector d, the mask drawn
  // below its density, which keepBelowSums adds in sweeps of up to three without writing d or the
  // kept values, packing the masks. Of 1-5 task vectors of raw bf16 inputs, of f32 ones, and of
  // mixed ones (f16 − bf16 and f32 − bf16: left to keepBelow and the chains); then each one's kept
  // values, read by the mask it packed (keepBits), and its mask kept and read by a later chunk.
  const RESCALE_TERMS = [
    { kind: 'bf16', base: 1, minuends: [5, 9, 13, 17, 5], fused: true },
    { kind: 'f32', base: 0, minuends: [2, 4, 6, 8, 10], fused: true },
    { kind: 'mixed', base: 1, minuends: [3, 2, 7, 0, 11], fused: false },
  ];
  const DENSITIES = [0.5, 0.3, 0.9, 1e-3, 0.7];
  for (const n of [1, 5, 17, 4096, 4099]) {
    it(`equal the reference bit for bit: DARE's rescale sums of 1-5 task vectors, their kept values and masks, ${n} elements`, async () => {
      // A backend of its own on kernels of their own, whose fused sums count their terms, and
      // which counts the masks packed on their own (none where the sums packed them).
      const kernels = await instantiateKernels();
      let fusedTerms = 0;
      let packedAlone = 0;
      const counting = new SimdCpuBackend({
        ...kernels,
        keepBelowSums: (...args: Parameters<Kernels['keepBelowSums']>) => ((fusedTerms += args[1]), kernels.keepBelowSums(...args)),
        packMask: (...args: Parameters<Kernels['packMask']>) => (packedAlone++, kernels.packMask(...args)),
      });
      const failures: string[] = [];
      for (const { kind, base, minuends, fused } of RESCALE_TERMS) {
        for (const count of [1, 2, 3, 4, 5]) {
          for (const special of [false, true]) {
            const label = `${kind} ×${count}${special ? ', NaN and ±Inf' : ''}`;
            const { spec, inputs } = chunkOf(n, 7000 + 10 * count + n + (special ? 5 : 0), special);
            const terms = (c: ChunkOps): { kept: Vec[]; masks: Vec[]; sums: Reduction<number>[] } => {
              const deltas = minuends.slice(0, count).map((i) => c.sub(c.input(i), c.input(base)));
              const masks = deltas.map((_, j) => c.gt(DENSITIES[j], c.random(j)));
              const kept = deltas.map((d, j) => c.mul(d, masks[j]));
              return { kept, masks, sums: deltas.flatMap((d, j) => [c.sum(c.abs(d)), c.sum(c.abs(kept[j]))]) };
            };
            const outcome = async (backend: ComputeBackend): Promise<{ sums: string; kept: string[]; masks: string[] }> => {
              const chunk = backend.beginChunk(spec, inputs);
              const { kept, masks, sums } = terms(chunk.ops);
              // The pool keeps the masks for the output pass before it reads the sums.
              const packed = backend === counting ? masks.map((m) => counting.keep(chunk.ops, m, true)) : null;
              const values = f64Bits((await chunk.readPartials(sums as unknown as ReductionToken[])) as number[]);
              const hex = async (c: BackendChunk, v: Vec): Promise<string> => Buffer.from(await c.encode(v, 'F32')).toString('hex');
              const keptBytes = [];
              for (const v of kept) keptBytes.push(await hex(chunk, v));
              chunk.release();
              const maskBytes = [];
              if (packed) {
                const reader = counting.beginChunk(spec, inputs);
                for (const m of packed) maskBytes.push(await hex(reader, counting.use(reader.ops, m)));
                reader.release();
                packed.forEach((m) => counting.drop(m));
              } else {
                const reader = cpu.beginChunk(spec, inputs);
                for (const m of terms(reader.ops).masks) maskBytes.push(await hex(reader, m));
                reader.release();
              }
              return { sums: values, kept: keptBytes, masks: maskBytes };
            };
            const [before, packedBefore] = [fusedTerms, packedAlone];
            const [expected, actual] = [await outcome(cpu), await outcome(counting)];
            if (actual.sums !== expected.sums) failures.push(`${label}: sums ${actual.sums} instead of ${expected.sums}`);
            expected.kept.forEach((e, j) => e !== actual.kept[j] && failures.push(`${label}: kept values of term ${j}`));
            expected.masks.forEach((e, j) => e !== actual.masks[j] && failures.push(`${label}: mask of term ${j}`));
            if (fusedTerms - before !== (fused ? count : 0)) failures.push(`${label}: ${fusedTerms - before} terms summed by keepBelowSums`);
            if (packedAlone !== packedBefore) failures.push(`${label}: ${packedAlone - packedBefore} masks packed on their own`);
          }
        }
      }
      expect(failures.join('\n')).toBe('');
    });
  }

  it('reads dots asked for after an earlier read, in any token order, with vectors made in between', async () => {
    const { spec, inputs } = chunkOf(4099, 42, false);
    const run = async (backend: ComputeBackend): Promise<string[]> => {
      const chunk = backend.beginChunk(spec, inputs);
      const c = chunk.ops;
      const first = [c.dot(c.input(0), c.input(1)), c.dot(c.input(2), c.input(2)), c.dot(c.input(3), c.input(0))];
      const early = await chunk.readPartials([first[2], first[0]] as unknown as ReductionToken[]);
      const later = [c.dot(c.mul(c.input(4), 3), c.input(5)), c.sum(c.input(1)), c.dot(c.input(6), c.input(7)), c.dot(c.input(8), c.input(8))];
      const encoded = await chunk.encode(c.add(c.input(9), c.input(10)), 'BF16');
      const all = await chunk.readPartials([...later, ...first] as unknown as ReductionToken[]);
      const again = await chunk.readPartials([later[3], first[1]] as unknown as ReductionToken[]);
      chunk.release();
      return [...early, ...all, ...again].map((v) => f64Hex(v as number)).concat(Buffer.from(encoded).toString('hex'));
    };
    const expected = await run(cpu);
    expect(await run(simd)).toEqual(expected);
    // The partials are real sums: the later dots differ from each other and from zero.
    expect(new Set(expected.slice(2, 6)).size).toBe(4);
  });

  it('refuses to read a dot of a released chunk', async () => {
    const { spec, inputs } = chunkOf(8, 3, false);
    const chunk = simd.beginChunk(spec, inputs);
    const token = chunk.ops.dot(chunk.ops.input(0), chunk.ops.input(1));
    chunk.release();
    await expect(chunk.readPartials([token as unknown as ReductionToken])).rejects.toThrow(/internal: a reduction of chunk 0 of t read after release/);
  });
});

describe('rowRanks in WebAssembly', () => {
  // Hand-worked: magnitudes ascending, equal magnitudes by descending index, NaN above Inf.
  it('ranks magnitudes with ties by descending index', async () => {
    const values = [0.5, -0.5, 2, NaN, -Infinity, 0, -0, 0.5];
    const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: 8, rowStart: 0, rows: 1, cols: 8, totalRows: 1, seed: 0 };
    const inputs = [{ bytes: new Uint8Array(Float32Array.from(values).buffer), dtype: 'F32' as const, cols: 8 }];
    const chunk = simd.beginChunk(spec, inputs);
    const ranks = Array.from(new Float32Array((await chunk.encode(chunk.ops.rowRanks(chunk.ops.input(0)), 'F32')).buffer));
    chunk.release();
    expect(ranks).toEqual([5, 4, 6, 8, 7, 2, 1, 3]);
  });

  // Rows that exercise each digit plan: constant rows (no varying bit), a single varying bit,
  // short rows (8-bit digits) and long rows (11-bit digits), many ties and both signs.
  // Row kinds by row index mod 4: constant; two magnitudes; magnitudes that differ only in low
  // mantissa bits across 4 binades (crowded first-digit buckets, sorted further on the low bits);
  // coarse eighths; many NaN (several payloads), ±Inf, zeros and subnormals (the Inf/NaN bucket
  // sorted on its own); magnitudes over the whole f32 range (long rows need more buckets there).
  const nanBits = new Uint32Array(1);
  const row = (kind: number, random: () => number): number => {
    const sign = random() < 0.5 ? -1 : 1;
    if (kind === 0) return 0.25;
    if (kind === 1) return sign * (random() < 0.5 ? 1 : 1.5);
    if (kind === 2) return sign * (1 + Math.floor(random() * 64) * 2 ** -20) * 2 ** Math.floor(random() * 4);
    if (kind === 4) {
      const pick = Math.floor(random() * 6);
      nanBits[0] = 0x7f800001 + Math.floor(random() * 4) * 0x100000;
      return [new Float32Array(nanBits.buffer)[0], Infinity, -Infinity, 0, sign * 1e-45, sign * 3.5][pick];
    }
    if (kind === 5) return sign * Math.fround(2 ** Math.floor(random() * 250 - 125)) * (random() < 0.5 ? 1 : 1.25);
    return Math.round((random() - 0.5) * 64) / 8;
  };
  for (const [rows, cols] of [[6, 7], [6, 300], [6, 4096], [6, 9000]] as const) {
    it(`equals the reference on ${rows}x${cols} rows of ties`, async () => {
      const random = rng(rows * cols);
      const f = new Float32Array(rows * cols);
      for (let i = 0; i < f.length; i++) f[i] = row(Math.floor(i / cols) % 6, random);
      const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: f.length, rowStart: 0, rows, cols, totalRows: rows, seed: 0 };
      const inputs = [{ bytes: new Uint8Array(f.buffer), dtype: 'F32' as const, cols }];
      const expected = await encodeRef(spec, inputs, (c) => c.rowRanks(c.input(0)));
      const chunk = simd.beginChunk(spec, inputs);
      const actual = await chunk.encode(chunk.ops.rowRanks(chunk.ops.input(0)), 'F32');
      chunk.release();
      expect(Buffer.from(actual).equals(Buffer.from(expected))).toBe(true);
    });
  }

  // gt(steps(rowRanks(x)), y), DELLA's keep test: the kernels decide most elements from the range
  // of ranks their bucket spans, and count or rank only where y falls inside the range it maps to.
  // Chains that rise, fall, give every rank its own value, cross 0·Inf (a NaN inside a bucket's
  // range), carry NaN, exceed the steps a chain keeps lazily, or divide by the ranks (not monotone:
  // written out); y from the chain's own values (ties at the threshold, and crowded rows that
  // fall back to ranking the whole row) and awkward values.
  const CHAINS: Record<string, (c: ChunkOps, r: Vec, cols: number) => Vec> = {
    della: (c, r, n) => c.add(c.mul(c.sub(r, 1), 0.2 / (n - 1)), 0.4),
    falling: (c, r, n) => c.sub(0.9, c.mul(r, 0.5 / n)),
    'rank by rank': (c, r, n) => c.div(r, n),
    'negative divisor': (c, r) => c.div(c.add(r, -3), -7),
    'through 0 times Inf': (c, r) => c.add(c.mul(c.sub(r, 3), Infinity), 0.5),
    'times 0': (c, r) => c.mul(r, 0),
    'NaN scalar': (c, r) => c.add(r, NaN),
    'scalar first': (c, r, n) => c.add(0.1, c.mul(0.8 / n, r)),
    'nine steps': (c, r, n) => Array.from({ length: 9 }, (_, k) => k).reduce((v, k) => c.add(v, k / n), r),
    'scalar over ranks': (c, r) => c.div(1, r),
  };
  const thresholds = (p: Float32Array, cols: number, random: () => number): Float32Array =>
    p.map((own, i) => {
      const pick = random();
      if (pick < 0.3) return own;
      if (pick < 0.6) return p[i - (i % cols) + Math.floor(random() * cols)];
      if (pick < 0.7) return [NaN, Infinity, -Infinity, 0, 1][Math.floor(random() * 5)];
      return random();
    });
  for (const [name, chain] of Object.entries(CHAINS)) {
    for (const [rows, cols] of [[6, 7], [6, 300], [6, 4096], [3, 9000]] as const) {
      it(`gt of ${name} ranks equals the reference on ${rows}x${cols} rows`, async () => {
        const random = rng(rows * cols + name.length);
        const f = new Float32Array(rows * cols);
        for (let i = 0; i < f.length; i++) f[i] = row(Math.floor(i / cols) % 6, random);
        const spec: ChunkSpec = { tensorName: 't', chunkIndex: 0, chunkCount: 1, start: 0, length: f.length, rowStart: 0, rows, cols, totalRows: rows, seed: 0 };
        const x = { bytes: new Uint8Array(f.buffer), dtype: 'F32' as const, cols };
        const p = new Float32Array((await encodeRef(spec, [x], (c) => chain(c, c.rowRanks(c.input(0)), cols))).buffer);
        const inputs = [x, { bytes: new Uint8Array(thresholds(p, cols, random).buffer), dtype: 'F32' as const, cols }];
        const ops = (c: ChunkOps): Vec[] => {
          const stepped = chain(c, c.rowRanks(c.input(0)), cols);
          // The chain read by another op too: written out with the ops' own bytes.
          return [c.gt(stepped, c.input(1)), c.mul(chain(c, c.rowRanks(c.input(0)), cols), c.input(1))];
        };
        for (const k of [0, 1]) {
          const expected = await encodeRef(spec, inputs, (c) => ops(c)[k]);
          const chunk = simd.beginChunk(spec, inputs);
          const actual = await chunk.encode(ops(chunk.ops)[k], 'F32');
          chunk.release();
          expect(Buffer.from(actual).equals(Buffer.from(expected)), `${name}, op ${k}`).toBe(true);
        }
      });
    }
  }
});

async function encodeRef(spec: ChunkSpec, inputs: readonly ChunkInputBytes[], op: (c: ChunkOps) => Vec, dtype: FloatDtype = 'F32'): Promise<Uint8Array> {
  const chunk = cpu.beginChunk(spec, inputs);
  const bytes = await chunk.encode(op(chunk.ops), dtype);
  chunk.release();
  return bytes;
}

describe('createCpuBackend', () => {
  it('runs the SIMD kernels where WebAssembly SIMD exists, else the JavaScript reference', async () => {
    const { createCpuBackend, SimdCpuBackend, hasWasmSimd } = await import('../../src/backend');
    expect(hasWasmSimd()).toBe(true); // Node 20+ has it
    expect(await createCpuBackend()).toBeInstanceOf(SimdCpuBackend);
    const validate = vi.spyOn(WebAssembly, 'validate').mockReturnValue(false);
    try {
      expect(hasWasmSimd()).toBe(false);
      expect(await createCpuBackend()).toBeInstanceOf(CpuBackend);
      await expect(createSimdCpuBackend()).rejects.toThrow(/no WebAssembly SIMD/);
    } finally {
      validate.mockRestore();
    }
  });
});
