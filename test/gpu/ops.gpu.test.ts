import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend, type ChunkOps, type Operand, type Vec } from '../../src/backend';
import type { WebGpuBackend } from '../../src/gpu';
import { keepLargestMagnitudes, selectLargestMagnitudes } from '../../src/methods/magnitude-select';
import type { TensorMerge } from '../../src/methods';
import { decodeToF32 } from '../../src/storage';
import type { FloatDtype } from '../../src/storage/types';
import { mulberry32 } from '../fixtures/models';
import { disposeAll, firstBitDifference, gpuBackend, maxUlpDistance, runJob, within, type JobInput, type JobSpec } from './helpers';

/**
 * Every ChunkOps operation on the WebGPU backend against the CPU backend, through the real job
 * runner, at a natural chunk size and at a 64 KiB budget (1024-element chunks), on a device with
 * the adapter's limits and on one with WebGPU's minimum limits and only 4 storage buffers per
 * stage (so that many-term operations run in several passes).
 */

type Compare = { kind: 'bits' } | { kind: 'ulps'; ulps: number };

interface OpCase {
  readonly name: string;
  readonly shape: readonly number[];
  readonly inputs: readonly JobInput[];
  readonly dtype?: FloatDtype;
  readonly compare?: Compare;
  readonly wholeRows?: boolean;
  readonly misaligned?: boolean;
  /** Statistics passes; their results must agree (histograms exactly, sums to 1e-9 relative). */
  readonly reduce?: (t: TensorMerge) => Promise<(number | Float64Array)[]>;
  /** The output pass. */
  readonly apply?: (c: ChunkOps, reduced: (number | Float64Array)[]) => Vec;
}

const BUDGETS = { natural: 1 << 24, tiny: 64 * 1024 } as const;

// ---- data ----------------------------------------------------------------------------------

const SPECIALS = [NaN, -NaN, 0, -0, Infinity, -Infinity, 1, -1, 3.4e38, -3.4e38, 1e-30, 0.5, 2, -2];

function data(n: number, seed: number, options: { specials?: boolean; quantum?: number; scale?: number } = {}): Float32Array {
  const rand = mulberry32(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = (rand() - 0.5) * 4 * (options.scale ?? 1);
    if (options.quantum) v = Math.round(v / options.quantum) * options.quantum;
    x[i] = v;
  }
  if (options.specials) for (let i = 0; i < n; i += 97) x[i] = SPECIALS[(i / 97) % SPECIALS.length];
  return x;
}

const f32 = (values: Float32Array, dtype: FloatDtype = 'F32'): JobInput => ({ values, dtype });

// ---- cases ---------------------------------------------------------------------------------

const SHAPE = [37, 129]; // 4773 elements: more than one 4096-element reduce block
const N = 37 * 129;
const X = data(N, 1, { specials: true });
const Y = data(N, 2, { specials: true });
const XY = [f32(X), f32(Y)];
const exact: Compare = { kind: 'bits' };

const cases: OpCase[] = [];
const add = (c: OpCase): void => {
  cases.push(c);
};

type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'min' | 'max' | 'gt' | 'ge' | 'eq';
for (const op of ['add', 'sub', 'mul', 'div', 'min', 'max', 'gt', 'ge', 'eq'] as BinaryName[]) {
  const forms: [string, (c: ChunkOps) => [Operand, Operand]][] = [
    ['vv', (c) => [c.input(0), c.input(1)]],
    ['vs', (c) => [c.input(0), 1 / 3]],
    ['sv', (c) => [-0.7, c.input(1)]],
    ['ss', () => [1 / 3, 0.1]],
  ];
  for (const [form, operands] of forms) {
    // Division is corrected to the rounded quotient; subnormal quotients may be flushed to 0.
    add({ name: `${op} ${form}`, shape: SHAPE, inputs: XY, compare: op === 'div' ? { kind: 'ulps', ulps: 0 } : exact, apply: (c) => c[op](...operands(c)) });
  }
}
add({ name: 'neg', shape: SHAPE, inputs: XY, apply: (c) => c.neg(c.input(0)) });
add({ name: 'abs', shape: SHAPE, inputs: XY, apply: (c) => c.abs(c.input(0)) });
add({ name: 'sign', shape: SHAPE, inputs: XY, apply: (c) => c.sign(c.input(0)) });
// sqrt, exp and log are correctly rounded like the CPU's f64 functions rounded to f32 (the
// flush-to-zero allowance only matters for results below 2^-126).
const CORRECTLY_ROUNDED: Compare = { kind: 'ulps', ulps: 0 };
const WIDE = data(N, 3, { specials: true }).map((v, i) => v * 2 ** ((i % 61) - 30));
add({ name: 'sqrt', shape: SHAPE, inputs: [f32(WIDE)], compare: CORRECTLY_ROUNDED, apply: (c) => c.sqrt(c.input(0)) });
const EXP_INPUT = data(N, 4).map((v, i) => (i % 3 === 0 ? v * 48 : v * 4));
add({ name: 'exp', shape: SHAPE, inputs: [f32(EXP_INPUT)], compare: CORRECTLY_ROUNDED, apply: (c) => c.exp(c.input(0)) });
add({ name: 'exp of specials', shape: SHAPE, inputs: XY, compare: CORRECTLY_ROUNDED, apply: (c) => c.exp(c.input(0)) });
add({ name: 'log', shape: SHAPE, inputs: [f32(WIDE)], compare: CORRECTLY_ROUNDED, apply: (c) => c.log(c.input(0)) });
const NEAR_ONE = data(N, 5).map((v) => 1 + v * 2 ** -10);
add({ name: 'log near 1', shape: SHAPE, inputs: [f32(NEAR_ONE)], compare: CORRECTLY_ROUNDED, apply: (c) => c.log(c.input(0)) });
add({ name: 'where vv', shape: SHAPE, inputs: XY, apply: (c) => c.where(c.gt(c.input(0), 0), c.input(0), c.input(1)) });
add({ name: 'where vs', shape: SHAPE, inputs: XY, apply: (c) => c.where(c.input(1), c.input(0), 0.25) });
add({ name: 'where sv', shape: SHAPE, inputs: XY, apply: (c) => c.where(c.input(0), -3, c.input(1)) });
add({ name: 'where ss', shape: SHAPE, inputs: XY, apply: (c) => c.where(c.ge(c.input(0), c.input(1)), 1 / 3, -2) });

const TERMS = Array.from({ length: 9 }, (_, k) => f32(data(N, 10 + k)));
for (const count of [1, 2, 3, 5, 9]) {
  // f64 weights: the CPU's f64 product and sum rounded to f32 is a double rounding that the GPU
  // reproduces in all but about 0.2% of steps (1 ulp of the partial sum then).
  add({
    name: `weightedSum of ${count} scalar-weighted terms`,
    shape: SHAPE,
    compare: { kind: 'ulps', ulps: count },
    inputs: TERMS.slice(0, count),
    apply: (c) => c.weightedSum(TERMS.slice(0, count).map((_, k) => c.input(k)), TERMS.slice(0, count).map((_, k) => (k % 2 ? -1 / (k + 2) : 0.3 + k / 7))),
  });
  add({
    name: `weightedSum of ${count} terms, some vector-weighted`,
    shape: SHAPE,
    inputs: TERMS.slice(0, count),
    apply: (c) => c.weightedSum(TERMS.slice(0, count).map((_, k) => c.input(k)), TERMS.slice(0, count).map((_, k) => (k % 2 ? c.input((k + 1) % count) : 0.25))),
  });
}
add({ name: 'weightedSum of nothing', shape: SHAPE, inputs: XY, apply: (c) => c.weightedSum([], []) });

add({ name: 'random', shape: SHAPE, inputs: XY, apply: (c) => c.add(c.random(0), c.mul(c.random(5), 2)) });
add({ name: 'random on another tensor name', shape: [3, 3000], inputs: [f32(data(9000, 4))], apply: (c) => c.random(1) });
const ROWS_F64 = Float64Array.from({ length: 37 }, (_, r) => Math.sin(r) / 3);
add({ name: 'perRow', shape: SHAPE, inputs: XY, apply: (c) => c.mul(c.input(0), c.perRow(ROWS_F64)) });
for (const period of [1, 7, 129, 500]) {
  const values = Float64Array.from({ length: period }, (_, j) => Math.cos(j) / 7);
  add({ name: `periodic ${period}`, shape: SHAPE, inputs: XY, apply: (c) => c.periodic(values) });
}

// Reductions (inputs without Inf/NaN so that the sums are finite).
const A = data(N, 20), B = data(N, 21, { scale: 0.01 });
const AB = [f32(A), f32(B)];
add({
  name: 'sum, rowSums, chunkSums, dot',
  shape: SHAPE,
  inputs: AB,
  reduce: async (t) => t.reduce((c) => [c.sum(c.input(0)), c.rowSums(c.input(1)), c.chunkSums(c.input(0)), c.dot(c.input(0), c.input(1))]),
});
for (const period of [1, 7, 129, 2000]) {
  add({ name: `periodicSums ${period}`, shape: SHAPE, inputs: AB, reduce: async (t) => t.reduce((c) => [c.periodicSums(c.input(0), period)]) });
}
add({
  name: 'periodicSums along dim 0 of a 3-D tensor',
  shape: [3, 40, 50],
  inputs: [f32(data(6000, 22))],
  reduce: async (t) => t.reduce((c) => [c.periodicSums(c.input(0), 2000)]),
});
add({
  name: 'magnitude histograms (radix select digits) accumulate over chunks',
  shape: SHAPE,
  inputs: [f32(X), f32(data(N, 23, { quantum: 1 / 64 }))],
  reduce: async (t) => {
    const upper = await t.reduce((c) => [c.magnitudeHistogram(c.input(0), null), c.magnitudeHistogram(c.input(1), null)]);
    const busiest = (h: Float64Array): number => h.indexOf(Math.max(...h));
    const lower = await t.reduce((c) => [
      c.magnitudeHistogram(c.input(0), busiest(upper[0])),
      c.magnitudeHistogram(c.input(1), busiest(upper[1])),
    ]);
    return [...upper, ...lower];
  },
});

// Exact top-k with many ties at the threshold (values on a coarse grid).
let keepCuts: Awaited<ReturnType<typeof selectLargestMagnitudes>> = [];
const TIED = data(6000, 30, { quantum: 0.25 });
for (const density of [0.05, 0.5, 0.93]) {
  add({
    name: `keepTopMagnitude, density ${density}, many ties`,
    shape: [6000],
    inputs: [f32(TIED), f32(data(6000, 31, { quantum: 0.5 }))],
    reduce: async (t) => {
      const k = Math.floor(density * 6000);
      const cuts = await selectLargestMagnitudes(t, (c) => [c.input(0), c.input(1)], [k, k]);
      keepCuts = cuts;
      return [];
    },
    apply: (c) => c.add(keepLargestMagnitudes(c, c.input(0), keepCuts[0]), c.mul(keepLargestMagnitudes(c, c.input(1), keepCuts[1]), 3)),
  });
}
add({ name: 'keepTopMagnitude keeping every tie', shape: SHAPE, inputs: [f32(TIED.subarray(0, N))], apply: (c) => c.keepTopMagnitude(c.input(0), 1, 0, Infinity) });
add({ name: 'keepTopMagnitude keeping no tie', shape: SHAPE, inputs: [f32(TIED.subarray(0, N))], apply: (c) => c.keepTopMagnitude(c.input(0), 1, 5, 5) });
add({ name: 'keepTopMagnitude below zero', shape: SHAPE, inputs: XY, apply: (c) => c.keepTopMagnitude(c.input(0), -1, 0, 0) });

const SIGNED = Array.from({ length: 9 }, (_, k) => f32(data(N, 40 + k, { quantum: k % 3 === 0 ? 0.5 : 0 })));
for (const count of [1, 2, 3, 4, 7, 9]) {
  for (const normalize of [false, true]) {
    add({
      name: `signConsensus of ${count} terms${normalize ? ', normalized' : ''}`,
      shape: SHAPE,
      // The CPU divides f64 sums and rounds to f32; the GPU's double-float quotient agrees but
      // for rare double-rounding ties.
      compare: normalize ? { kind: 'ulps', ulps: 1 } : exact,
      inputs: SIGNED.slice(0, count),
      apply: (c) =>
        c.signConsensus(
          SIGNED.slice(0, count).map((_, k) => c.input(k)),
          SIGNED.slice(0, count).map((_, k) => 0.2 + k / 11),
          normalize ? SIGNED.slice(0, count).map((_, k) => (k % 3 === 2 ? 0 : 0.5 + k / 5)) : null,
        ),
    });
  }
}
// 0.7·0.01953125 rounds to exactly 0.013671875 = −0.5·(−0.02734375): the elected sign depends on
// summing the rounded products (as the CPU does), not the exact ones.
const CANCEL = [0.01953125, -0.02734375, 0].map((v, k) => f32(Float32Array.from({ length: N }, (_, i) => (k === 2 ? (i % 5) / 256 : v * (1 + (i % 3))))));
add({
  name: 'signConsensus where the rounded products cancel exactly',
  shape: SHAPE,
  inputs: CANCEL,
  apply: (c) => c.signConsensus([0, 1, 2].map((k) => c.input(k)), [0.7, 0.5, 0.3], [0.7, 0.5, 0.3]),
});
add({ name: 'signConsensus of nothing', shape: SHAPE, inputs: XY, apply: (c) => c.signConsensus([], [], [1].slice(1)) });

for (const shape of [[13, 257], [3, 2048], [2, 5000], [5, 1], [9000]]) {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = data(n, 50, { quantum: 0.125, specials: true });
  add({ name: `rowRanks [${shape.join(', ')}]`, shape, inputs: [f32(x)], wholeRows: true, apply: (c) => c.rowRanks(c.input(0)) });
}
for (const shape of [[13, 257], [2, 5000]]) {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = data(n, 51);
  x[3] = NaN;
  for (let i = shape[1]; i < 2 * shape[1]; i++) x[i] = -0;
  add({ name: `rowMaxBroadcast [${shape.join(', ')}]`, shape, inputs: [f32(x)], wholeRows: true, apply: (c) => c.rowMaxBroadcast(c.input(0)) });
  x[3] = 1;
  add({ name: `rowSumBroadcast [${shape.join(', ')}]`, shape, inputs: [f32(x)], wholeRows: true, apply: (c) => c.rowSumBroadcast(c.input(0)) });
}

// Inputs in their stored dtypes: odd row lengths (byte lengths that are not whole words),
// misaligned source views, and embeddings wider than the output (cut to the output's columns).
for (const dtype of ['BF16', 'F16', 'F32'] as FloatDtype[]) {
  const wide = data(41 * 130, 60, { specials: true });
  add({
    name: `decode ${dtype}, odd rows, misaligned, cut to 101 of 130 columns`,
    shape: [41, 101],
    inputs: [{ values: wide, dtype, shape: [41, 130] }, f32(data(41 * 101, 61))],
    misaligned: true,
    apply: (c) => c.add(c.input(0), c.mul(c.input(1), 0)),
  });
  for (const out of ['BF16', 'F16', 'F32'] as FloatDtype[]) {
    add({ name: `encode ${dtype} → ${out}`, shape: [7, 333], dtype: out, inputs: [{ values: data(7 * 333, 62, { specials: true }), dtype }], apply: (c) => c.input(0) });
  }
}

// ---- running -------------------------------------------------------------------------------

interface Outcome {
  values: Float32Array | null;
  reduced: (number | Float64Array)[];
}

async function runCase(backend: CpuBackend | WebGpuBackend, c: OpCase, budgetBytes: number): Promise<Outcome> {
  const dtype = c.dtype ?? 'F32';
  const spec: JobSpec = { shape: c.shape, inputs: c.inputs, dtype, budgetBytes, wholeRows: c.wholeRows, misaligned: c.misaligned };
  const { result, bytes } = await runJob(backend, spec, async (t) => {
    const reduced = c.reduce ? await c.reduce(t) : [];
    const applyFn = c.apply;
    if (applyFn) await t.apply((chunk) => applyFn(chunk, reduced));
    return reduced;
  });
  return { values: c.apply ? decodeToF32(bytes, dtype) : null, reduced: result };
}

function compareOutcome(c: OpCase, gpu: Outcome, cpu: Outcome): void {
  if (cpu.values) {
    const compare = c.compare ?? exact;
    if (compare.kind === 'bits' || (c.dtype && c.dtype !== 'F32')) {
      expect(firstBitDifference(gpu.values!, cpu.values), c.name).toBeNull();
    } else {
      expect(maxUlpDistance(gpu.values!, cpu.values, true), c.name).toBeLessThanOrEqual(compare.ulps);
    }
  }
  expect(gpu.reduced.length).toBe(cpu.reduced.length);
  cpu.reduced.forEach((expected, i) => {
    const actual = gpu.reduced[i];
    const list = typeof expected === 'number' ? [expected] : Array.from(expected);
    const got = typeof actual === 'number' ? [actual] : Array.from(actual as Float64Array);
    expect(got.length, `${c.name} reduction ${i} length`).toBe(list.length);
    for (let j = 0; j < list.length; j++) {
      const tolerance = 1e-9 * Math.max(1, Math.abs(list[j]));
      if (!(Math.abs(got[j] - list[j]) <= tolerance)) {
        expect.fail(`${c.name} reduction ${i}[${j}]: ${got[j]} vs ${list[j]}`);
      }
    }
  });
}

const references = new Map<string, Outcome>();
const key = (c: OpCase, budget: string): string => `${c.name}@${budget}`;

beforeAll(async () => {
  // CPU first, before any GPU device exists (blocking the thread while Dawn works is fragile).
  const cpu = new CpuBackend();
  for (const c of cases) {
    for (const [budget, bytes] of Object.entries(BUDGETS)) references.set(key(c, budget), await runCase(cpu, c, bytes));
  }
});

const configs = [
  { name: 'adapter limits', options: {} },
  // The other rowRanks sort than the adapter's default (bitonic here, on a software adapter), and
  // 2-D grids even for small chunks (at most 3 workgroups per dimension).
  {
    name: 'minimum limits, 4 storage buffers per stage, 2-D grids',
    options: { limits: 'minimum' as const, maxStorageBuffersPerStage: 4, rowRanks: 'bitonic' as const, maxWorkgroupsPerDimension: 3 },
  },
];

for (const config of configs) {
  describe(`WebGPU ops = CPU ops (${config.name})`, () => {
    let gpu: WebGpuBackend | undefined;
    beforeAll(async () => {
      gpu = await gpuBackend({ ...config.options, budgetBytes: 1 << 26 });
    });
    afterAll(async () => {
      await disposeAll([gpu]);
    });
    for (const c of cases) {
      it(c.name, async () => {
        for (const [budget, bytes] of Object.entries(BUDGETS)) {
          const outcome = await within(runCase(gpu!, c, bytes), 120_000, `${c.name} at the ${budget} budget`);
          compareOutcome({ ...c, name: `${c.name} (${budget} budget)` }, outcome, references.get(key(c, budget))!);
        }
      });
    }
  });
}
