import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuMatrixOps, type AttentionShape, type GatedActivationKind, type MatrixOps } from '../../src/backend';
import { GpuMatrixOps, type WebGpuBackend } from '../../src/gpu';
import { disposeAll, firstBitDifference, gpuBackend, within } from './helpers';

/**
 * The WebGPU matrix ops (src/shaders/matrix.wgsl) against the CPU reference on awkward data —
 * NaN, ±Inf, subnormals, zero rows, sizes that are not multiples of the 16×16 tile — within the tolerances
 * of docs/model.md §7. NaN must meet NaN and ±Inf the same infinity; finite values are bounded
 * per element by a bound computed from the operands. Every CPU result is computed before the
 * device exists (helpers.ts).
 */
const U = 2 ** -24;
/** Room for subnormals a GPU may flush to zero. */
const TINY = 1e-30;

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

function values(n: number, seed: number, scale = 1): Float32Array {
  const r = random(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
}

/** Checks every element: NaN ↔ NaN, equal infinities, else |gpu − cpu| ≤ bound(i). */
function expectWithin(gpu: Float32Array, cpu: Float32Array, bound: (i: number) => number, what: string): void {
  expect(gpu.length, what).toBe(cpu.length);
  for (let i = 0; i < cpu.length; i++) {
    const g = gpu[i];
    const c = cpu[i];
    if (Number.isNaN(c) || !Number.isFinite(c)) {
      if (!Object.is(g, c) && !(Number.isNaN(g) && Number.isNaN(c))) throw new Error(`${what}[${i}]: webgpu ${g}, cpu ${c}`);
      continue;
    }
    const limit = bound(i);
    if (!(Math.abs(g - c) <= limit)) throw new Error(`${what}[${i}]: webgpu ${g}, cpu ${c}, |Δ| ${Math.abs(g - c)} > ${limit}`);
  }
}

interface Case<T> {
  readonly name: string;
  readonly args: T;
  run(ops: MatrixOps, args: T): Promise<Float32Array>;
  bound(args: T, cpu: Float32Array): (i: number) => number;
  cpu?: Float32Array;
}

/** matmul bound: (K + 2)·u·Σ_k |a_k·b_k| + u·|bias| (recursive f32 summation against f64). */
function productBound(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transposed: boolean, bias?: Float32Array) {
  return (i: number): number => {
    const r = Math.floor(i / n);
    const c = i % n;
    let s = 0;
    for (let p = 0; p < k; p++) s += Math.abs(a[r * k + p] * (transposed ? b[c * k + p] : b[p * n + c]));
    return (k + 2) * U * s + U * Math.abs(bias?.[c] ?? 0) + TINY;
  };
}

interface MatmulArgs {
  a: Float32Array;
  b: Float32Array;
  m: number;
  k: number;
  n: number;
  transposed: boolean;
  bias?: Float32Array;
}

function matmulCase(name: string, m: number, k: number, n: number, transposed: boolean, withBias: boolean, seed: number, poison = false): Case<MatmulArgs> {
  const a = values(m * k, seed);
  const b = values(k * n, seed + 1);
  if (poison) {
    // Row 0 of A meets a NaN, row 1 a +Inf (signs of B mix: ±Inf or NaN), row 2 is zeros against an Inf of B.
    a[0] = Number.NaN;
    if (m > 1) a[k + 1] = Number.POSITIVE_INFINITY;
    if (m > 2) a.fill(0, 2 * k, 3 * k);
    b[transposed ? (n - 1) * k : n - 1] = Number.NEGATIVE_INFINITY;
    // Subnormal operands: a GPU may flush them (the bound's TINY slack covers that). Not against
    // the Inf of row 1 (k = 1): a flushed subnormal times Inf is NaN, not ±Inf (docs/model.md §7).
    a[a.length - 1] = 1e-40;
    b[transposed ? 2 : 2 * n] = -3e-41;
  }
  const bias = withBias ? values(n, seed + 2) : undefined;
  return {
    name,
    args: { a, b, m, k, n, transposed, bias },
    run: (ops, x) => (x.transposed ? ops.matmulTransposed(x.a, x.m, x.k, x.b, x.n, x.bias) : ops.matmul(x.a, x.b, x.m, x.k, x.n)),
    bound: (x) => productBound(x.a, x.b, x.m, x.k, x.n, x.transposed, x.bias),
  };
}

interface NormArgs {
  x: Float32Array;
  rows: number;
  dim: number;
  w: Float32Array;
  offset: number;
}

function normCase(name: string, rows: number, dim: number, offset: number, seed: number): Case<NormArgs> {
  const x = values(rows * dim, seed, 3);
  x.fill(0, 0, dim); // a zero row: only eps keeps it finite
  if (rows > 2) x[dim + 3] = Number.NaN;
  if (rows > 3) x[2 * dim + 1] = Number.POSITIVE_INFINITY;
  const w = values(dim, seed + 1);
  return {
    name,
    args: { x, rows, dim, w, offset },
    run: (ops, v) => ops.rmsNorm(v.x, v.rows, v.dim, v.w, 1e-6, v.offset),
    // Σx² in f32 (strided, then a tree) against f64, then sqrt and a division: relative 2⁻¹⁶.
    bound: (_, cpu) => (i) => 2 ** -16 * Math.abs(cpu[i]) + TINY,
  };
}

interface RopeArgs {
  x: Float32Array;
  tokens: number;
  heads: number;
  headDim: number;
  positions: number[];
  invFreq: Float32Array;
  scaling: number;
}

function ropeCase(name: string, tokens: number, heads: number, headDim: number, half: number, seed: number): Case<RopeArgs> {
  const x = values(tokens * heads * headDim, seed);
  const invFreq = Float32Array.from({ length: half }, (_, k) => 10000 ** (-k / half));
  const positions = Array.from({ length: tokens }, (_, t) => (t === tokens - 1 ? 4093 : t * 3));
  return {
    name,
    args: { x, tokens, heads, headDim, positions, invFreq, scaling: 1.1 },
    run: (ops, v) => ops.rope(v.x, v.tokens, v.heads, v.headDim, v.positions, v.invFreq, v.scaling),
    // Two f32 products and a sum against f64: 3 units of |a|+|b| scaled.
    bound: (v) => (i) => {
      const j = i % v.headDim;
      const base = i - j;
      const k = j % half;
      return j >= 2 * half ? 0 : 3 * U * v.scaling * (Math.abs(v.x[base + k]) + Math.abs(v.x[base + k + half])) + TINY;
    },
  };
}

interface GatedArgs {
  gate: Float32Array;
  up: Float32Array;
  activation: GatedActivationKind;
}

function gatedCase(activation: GatedActivationKind): Case<GatedArgs> {
  const gate = Float32Array.from([
    ...values(37, 5, 8),
    -100, 100, 0, -0, 1e-8, -1e-8, 30, -30, -3, 3, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
  ]);
  const up = values(gate.length, 6, 2);
  return {
    name: `gated ${activation} over 50 values with NaN, ±Inf, ±0, ±100`,
    args: { gate, up, activation },
    run: (ops, v) => ops.gatedActivation(v.gate, v.up, v.activation),
    // exp, tanh and erf in f32: 2⁻²⁰ of |up|·max(1, |x|) (absolute: GELU near −3 cancels).
    bound: (v) => (i) => 2 ** -20 * Math.abs(v.up[i]) * Math.max(1, Math.abs(v.gate[i])) + TINY,
  };
}

interface AttentionArgs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  valid: Uint8Array;
  shape: AttentionShape;
}

function attentionCase(name: string, softcap: number | null, poison: boolean): Case<AttentionArgs> {
  const shape: AttentionShape = { batch: 2, tokens: 5, heads: 4, kvHeads: 2, headDim: 6, scale: 1 / Math.sqrt(6), softcap };
  const cells = shape.batch * shape.tokens;
  const q = values(cells * shape.heads * shape.headDim, 11, 2);
  const k = values(cells * shape.kvHeads * shape.headDim, 12, 2);
  const v = values(cells * shape.kvHeads * shape.headDim, 13);
  // Sequence 1 is left-padded by two cells.
  const valid = Uint8Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1]);
  // A NaN value at token 3, kv head 1, dimension 2: queries t ≥ 3 of heads 2–3 get NaN there only.
  if (poison) v[(3 * shape.kvHeads + 1) * shape.headDim + 2] = Number.NaN;
  return {
    name,
    args: { q, k, v, valid, shape },
    run: (ops, x) => ops.attention(x.q, x.k, x.v, x.valid, x.shape),
    // Scores in f32 against f64, exp, then a weighted mean of |v| ≤ 1: absolute 2⁻¹⁸.
    bound: () => () => 2 ** -18,
  };
}

const cases: Case<never>[] = [
  matmulCase('matmulTransposed 5×37 · (19×37)ᵀ + bias (no dimension a tile multiple)', 5, 37, 19, true, true, 1),
  matmulCase('matmulTransposed 17×16 · (33×16)ᵀ (one past a tile)', 17, 16, 33, true, false, 2),
  matmulCase('matmulTransposed 1×1 · (1×1)ᵀ', 1, 1, 1, true, false, 3),
  matmulCase('matmulTransposed with NaN, ±Inf and a zero row', 4, 21, 9, true, true, 4, true),
  matmulCase('matmul 7×3 · 3×45 (a LoRA product: rank 3)', 7, 3, 45, false, false, 5),
  matmulCase('matmul 18×40 · 40×17', 18, 40, 17, false, false, 6),
  matmulCase('matmul with NaN, ±Inf and a zero row', 4, 5, 6, false, false, 7, true),
  normCase('rmsNorm 4 rows × 300 (strided rows, zero, NaN and Inf rows), Gemma offset', 4, 300, 1, 8),
  normCase('rmsNorm 3 rows × 7', 3, 7, 0, 9),
  ropeCase('rope 3 tokens × 2 heads × 10, partial rotary (8 of 10), position 4093', 3, 2, 10, 4, 10),
  ropeCase('rope 2 tokens × 3 heads × 8, full rotary', 2, 3, 8, 4, 11),
  gatedCase('silu'),
  gatedCase('gelu_tanh'),
  gatedCase('gelu'),
  attentionCase('attention: 2 sequences × 5, GQA 4/2 heads, left padding', null, false),
  attentionCase('attention with a soft cap and a NaN value', 0.7, true),
] as Case<never>[];

let backend: WebGpuBackend | undefined;

beforeAll(async () => {
  for (const c of cases) c.cpu = await c.run(cpuMatrixOps, c.args);
  backend = await gpuBackend();
}, 120_000);

afterAll(() => disposeAll([backend]), 60_000);

describe('WebGPU matrix ops against the CPU reference', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const gpu = await within(c.run(backend!.matrix, c.args), 60_000, c.name);
      expectWithin(gpu, c.cpu!, c.bound(c.args, c.cpu!), c.name);
    }, 90_000);
  }

  it('the poisoned cases really hold NaN and ±Inf in the reference results', () => {
    const poisoned = cases.filter((c) => /NaN/.test(c.name));
    for (const c of poisoned) expect(c.cpu!.some((x) => Number.isNaN(x)), c.name).toBe(true);
    expect(cases[3].cpu!.some((x) => x === Number.POSITIVE_INFINITY || x === Number.NEGATIVE_INFINITY)).toBe(true);
  });
});

describe('operands larger than a storage binding are split, with the same bits', () => {
  // A binding limit of 1024 values: each case's activations need two or more calls.
  const LIMIT = 1024;
  const split: { name: string; run: (ops: MatrixOps) => Promise<Float32Array> }[] = [
    { name: 'matmulTransposed 100×20 · (12×20)ᵀ in row bands', run: (ops) => ops.matmulTransposed(values(2000, 21), 100, 20, values(240, 22), 12, values(12, 23)) },
    { name: 'matmul 90×8 · 8×12 in row bands', run: (ops) => ops.matmul(values(720, 24), values(96, 25), 90, 8, 12) },
    { name: 'rmsNorm 40 rows × 50', run: (ops) => ops.rmsNorm(values(2000, 26), 40, 50, values(50, 27), 1e-6, 0) },
    { name: 'gatedActivation over 2500 values', run: (ops) => ops.gatedActivation(values(2500, 28, 5), values(2500, 29), 'gelu_tanh') },
    {
      name: 'rope 30 tokens × 2 heads × 20',
      run: (ops) => ops.rope(values(1200, 30), 30, 2, 20, Array.from({ length: 30 }, (_, t) => t * 7), Float32Array.from({ length: 8 }, (_, k) => 10000 ** (-k / 8)), 1),
    },
    {
      name: 'attention of 4 sequences × 5 tokens × 4 heads × 16 (three sequences per call)',
      run: (ops) =>
        ops.attention(values(1280, 31), values(640, 32), values(640, 33), Uint8Array.from({ length: 20 }, (_, i) => (i === 5 ? 0 : 1)), {
          batch: 4, tokens: 5, heads: 4, kvHeads: 2, headDim: 16, scale: 0.25, softcap: null,
        }),
    },
  ];
  for (const c of split) {
    it(c.name, async () => {
      const whole = await within(c.run(backend!.matrix), 60_000, c.name);
      const b = backend!;
      const small = new GpuMatrixOps({
        device: b.device, pool: b.pool, kernels: b.kernels, maxBindingBytes: 4 * LIMIT, maxGroupsPerDimension: 65535,
        check: () => b.check(), guard: (p) => b.guard(p),
      });
      try {
        expect(small.maxElements).toBe(LIMIT);
        expect(whole.length).toBeGreaterThan(LIMIT);
        const parts = await within(c.run(small), 60_000, `${c.name}, split`);
        expect(firstBitDifference(parts, whole)).toBeNull();
      } finally {
        small.dispose();
      }
    }, 90_000);
  }
});

