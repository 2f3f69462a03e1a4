import { decodeToF32, encodeFromF32 } from '../../storage';
import type { FloatDtype } from '../../storage/types';
import type { BackendChunk, ChunkInputBytes, ChunkSpec, ComputeBackend } from '../compute-backend';
import { randomUniform, streamKey } from '../random';
import type { ReductionKind, ReductionToken } from '../reduction';
import type { ChunkOps, Operand, Reduction, Vec } from '../types';

/**
 * The reference backend: plain TypeScript over Float32Array, f32 element arithmetic, f64
 * reductions. The WebGPU backend is tested against it.
 */
export class CpuBackend implements ComputeBackend {
  readonly name = 'cpu' as const;
  private readonly pool = new VectorPool();

  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk {
    return new CpuChunk(spec, inputs, this.pool);
  }

  async dispose(): Promise<void> {
    this.pool.clear();
  }
}

/**
 * Reuses the vectors of released chunks to spare the garbage collector. Buffers are allocated at
 * a power-of-two capacity and handed out as views of the needed length, so the chunks of tensors
 * with different row lengths share them; at most `MAX_POOLED_BYTES` stay pooled.
 */
class VectorPool {
  private static readonly MAX_POOLED_BYTES = 256 * 1024 * 1024;
  private readonly free = new Map<number, Float32Array[]>();
  private pooledBytes = 0;

  take(length: number): Float32Array {
    const capacity = length <= 1024 ? 1024 : 2 ** Math.ceil(Math.log2(length));
    const list = this.free.get(capacity);
    const buffer = list?.pop();
    if (buffer) {
      this.pooledBytes -= buffer.byteLength;
      return buffer.subarray(0, length);
    }
    return new Float32Array(capacity).subarray(0, length);
  }

  give(view: Float32Array): void {
    const buffer = new Float32Array(view.buffer);
    if (this.pooledBytes + buffer.byteLength > VectorPool.MAX_POOLED_BYTES) return;
    let list = this.free.get(buffer.length);
    if (!list) this.free.set(buffer.length, (list = []));
    list.push(buffer);
    this.pooledBytes += buffer.byteLength;
  }

  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}

type F32 = Float32Array;
const asVec = (a: F32): Vec => a as unknown as Vec;
const arr = (v: Vec): F32 => v as unknown as F32;
const token = <T extends number | Float64Array>(kind: ReductionKind, partial: unknown): Reduction<T> =>
  ({ kind, partial }) as ReductionToken as unknown as Reduction<T>;

class CpuChunk implements BackendChunk, ChunkOps {
  readonly ops: ChunkOps = this;
  readonly chunkIndex: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
  private readonly decoded: (F32 | undefined)[];
  private readonly owned: F32[] = [];

  constructor(
    private readonly spec: ChunkSpec,
    private readonly inputs: readonly ChunkInputBytes[],
    private readonly pool: VectorPool,
  ) {
    this.chunkIndex = spec.chunkIndex;
    this.start = spec.start;
    this.length = spec.length;
    this.rowStart = spec.rowStart;
    this.rows = spec.rows;
    this.cols = spec.cols;
    this.decoded = new Array(inputs.length);
  }

  private alloc(): F32 {
    const a = this.pool.take(this.length);
    this.owned.push(a);
    return a;
  }

  input(i: number): Vec {
    const cached = this.decoded[i];
    if (cached) return asVec(cached);
    const input = this.inputs[i];
    if (!input) throw new Error(`internal: chunk has no input ${i}`);
    const out = this.alloc();
    if (input.cols === this.cols || this.rows <= 1) {
      decodeToF32(input.bytes.subarray(0, this.length * bytesPer(input.dtype)), input.dtype, out);
    } else {
      // A wider embedding cut to the common width: decode the first `cols` values of every row.
      const rowBytes = input.cols * bytesPer(input.dtype);
      const keepBytes = this.cols * bytesPer(input.dtype);
      for (let r = 0; r < this.rows; r++) {
        decodeToF32(
          input.bytes.subarray(r * rowBytes, r * rowBytes + keepBytes),
          input.dtype,
          out.subarray(r * this.cols, (r + 1) * this.cols),
        );
      }
    }
    this.decoded[i] = out;
    return asVec(out);
  }

  add(a: Operand, b: Operand): Vec {
    return this.binary(a, b, (x, y) => x + y, addVV, addVS, addVS);
  }
  sub(a: Operand, b: Operand): Vec {
    return this.binary(a, b, (x, y) => x - y, subVV, subVS, subSV);
  }
  mul(a: Operand, b: Operand): Vec {
    return this.binary(a, b, (x, y) => x * y, mulVV, mulVS, mulVS);
  }
  div(a: Operand, b: Operand): Vec {
    return this.binary(a, b, (x, y) => x / y, divVV, divVS, divSV);
  }
  min(a: Operand, b: Operand): Vec {
    return this.compare(a, b, MIN);
  }
  max(a: Operand, b: Operand): Vec {
    return this.compare(a, b, MAX);
  }
  gt(a: Operand, b: Operand): Vec {
    return this.compare(a, b, GT);
  }
  ge(a: Operand, b: Operand): Vec {
    return this.compare(a, b, GE);
  }
  eq(a: Operand, b: Operand): Vec {
    return this.compare(a, b, EQ);
  }
  neg(a: Vec): Vec {
    const x = arr(a);
    const o = this.alloc();
    for (let i = 0; i < o.length; i++) o[i] = -x[i];
    return asVec(o);
  }
  abs(a: Vec): Vec {
    const x = arr(a);
    const o = this.alloc();
    for (let i = 0; i < o.length; i++) o[i] = Math.abs(x[i]);
    return asVec(o);
  }
  sign(a: Vec): Vec {
    const x = arr(a);
    const o = this.alloc();
    for (let i = 0; i < o.length; i++) {
      const v = x[i];
      o[i] = v === v ? +(v > 0) - +(v < 0) : v; // ±0 → 0, NaN → NaN
    }
    return asVec(o);
  }
  sqrt(a: Vec): Vec {
    const x = arr(a);
    const o = this.alloc();
    for (let i = 0; i < o.length; i++) o[i] = Math.sqrt(x[i]);
    return asVec(o);
  }

  where(cond: Vec, a: Operand, b: Operand): Vec {
    const c = arr(cond);
    const o = this.alloc();
    if (typeof a === 'number' && typeof b === 'number') {
      const x = Math.fround(a), y = Math.fround(b);
      for (let i = 0; i < o.length; i++) o[i] = c[i] !== 0 ? x : y;
    } else if (typeof a === 'number') {
      const x = Math.fround(a), y = arr(b as Vec);
      for (let i = 0; i < o.length; i++) o[i] = c[i] !== 0 ? x : y[i];
    } else if (typeof b === 'number') {
      const x = arr(a), y = Math.fround(b);
      for (let i = 0; i < o.length; i++) o[i] = c[i] !== 0 ? x[i] : y;
    } else {
      const x = arr(a), y = arr(b);
      for (let i = 0; i < o.length; i++) o[i] = c[i] !== 0 ? x[i] : y[i];
    }
    return asVec(o);
  }

  weightedSum(terms: readonly Vec[], weights: readonly Operand[]): Vec {
    const out = this.alloc();
    out.fill(0);
    // Accumulate in f64 per element would change results vs. GPU; both sum in f32 in term order.
    for (let t = 0; t < terms.length; t++) {
      const x = arr(terms[t]);
      const w = weights[t];
      if (typeof w === 'number') {
        for (let i = 0; i < out.length; i++) out[i] += w * x[i];
      } else {
        const wv = arr(w);
        for (let i = 0; i < out.length; i++) out[i] += wv[i] * x[i];
      }
    }
    return asVec(out);
  }

  random(stream: number): Vec {
    const key = streamKey(this.spec.seed, this.spec.tensorName, stream);
    const out = this.alloc();
    for (let i = 0; i < out.length; i++) out[i] = randomUniform(key, this.start + i);
    return asVec(out);
  }

  perRow(values: Float64Array): Vec {
    const out = this.alloc();
    for (let r = 0; r < this.rows; r++) out.fill(values[this.rowStart + r], r * this.cols, (r + 1) * this.cols);
    return asVec(out);
  }

  sum(a: Vec): Reduction<number> {
    const x = arr(a);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i];
    return token('sum', s);
  }

  rowSums(a: Vec): Reduction<Float64Array> {
    const x = arr(a);
    const sums = new Float64Array(this.rows);
    for (let r = 0; r < this.rows; r++) {
      let s = 0;
      for (let i = r * this.cols; i < (r + 1) * this.cols; i++) s += x[i];
      sums[r] = s;
    }
    return token('rowSums', sums);
  }

  chunkSums(a: Vec): Reduction<Float64Array> {
    const x = arr(a);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i];
    return token('chunkSums', s);
  }

  magnitudeHistogram(a: Vec, high: number | null): Reduction<Float64Array> {
    const bits = new Uint32Array(arr(a).buffer, arr(a).byteOffset, this.length);
    const hist = new Uint32Array(65536);
    if (high === null) {
      for (let i = 0; i < bits.length; i++) hist[(bits[i] & 0x7fffffff) >>> 16]++;
    } else {
      for (let i = 0; i < bits.length; i++) {
        const b = bits[i] & 0x7fffffff;
        if (b >>> 16 === high) hist[b & 0xffff]++;
      }
    }
    return token('histogram', hist);
  }

  keepTopMagnitude(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec {
    const x = arr(a);
    const out = this.alloc();
    const t = Math.fround(threshold);
    let ties = tiesBefore;
    // `+(cond)` instead of `cond ? v : 0`: V8 then emits no branch, which random data mispredicts.
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const m = Math.abs(v);
      out[i] = v * +(m > t);
      if (m === t) out[i] = ties++ < tiesAllowed ? v : 0;
    }
    return asVec(out);
  }

  signConsensus(terms: readonly Vec[], scales: readonly number[], weights: readonly number[] | null): Vec {
    const out = this.alloc();
    const xs = terms.map(arr);
    const s = scales.map(Math.fround);
    const w = weights ? weights.map(Math.fround) : scales.map(() => 0);
    const normalize = weights !== null;
    if (xs.length === 2) {
      // The common two-model case, unrolled and branch-free (see keepTopMagnitude).
      const [x0, x1] = xs;
      const [s0, s1] = s;
      const [w0, w1] = w;
      for (let i = 0; i < out.length; i++) {
        const a = Math.fround(s0 * x0[i]);
        const b = Math.fround(s1 * x1[i]);
        const sign = +(Math.fround(a + b) >= 0) * 2 - 1;
        const ka = +(a * sign > 0);
        const kb = +(b * sign > 0);
        const mixed = ka * a + kb * b;
        const divisor = ka * w0 + kb * w1;
        out[i] = normalize ? mixed / (divisor + +(divisor === 0)) : mixed;
      }
      return asVec(out);
    }
    const n = xs.length;
    const weighted = new Float32Array(n);
    for (let i = 0; i < out.length; i++) {
      let total = 0;
      for (let j = 0; j < n; j++) total += weighted[j] = s[j] * xs[j][i];
      const sign = +(Math.fround(total) >= 0) * 2 - 1;
      let mixed = 0;
      let divisor = 0;
      for (let j = 0; j < n; j++) {
        const k = +(weighted[j] * sign > 0);
        mixed += k * weighted[j];
        divisor += k * w[j];
      }
      out[i] = normalize ? mixed / (divisor + +(divisor === 0)) : mixed;
    }
    return asVec(out);
  }

  async readPartials(tokens: readonly ReductionToken[]): Promise<(number | ArrayLike<number>)[]> {
    return tokens.map((t) => t.partial as number | ArrayLike<number>);
  }

  async encode(v: Vec, dtype: FloatDtype): Promise<Uint8Array> {
    return encodeFromF32(arr(v), dtype);
  }

  release(): void {
    for (const a of this.owned) this.pool.give(a);
    this.owned.length = 0;
    this.decoded.fill(undefined);
  }

  private binary(
    a: Operand,
    b: Operand,
    scalar: (x: number, y: number) => number,
    vv: (o: F32, x: F32, y: F32) => void,
    vs: (o: F32, x: F32, y: number) => void,
    sv: (o: F32, x: number, y: F32) => void,
  ): Vec {
    const out = this.alloc();
    if (typeof a === 'number') {
      if (typeof b === 'number') out.fill(scalar(a, b));
      else sv(out, a, arr(b));
    } else if (typeof b === 'number') vs(out, arr(a), b);
    else vv(out, arr(a), arr(b));
    return asVec(out);
  }

  /** Comparisons and min/max; a scalar operand is first broadcast into a vector. */
  private compare(a: Operand, b: Operand, op: CompareOp): Vec {
    const out = this.alloc();
    const x = typeof a === 'number' ? out.fill(a) : arr(a);
    if (typeof b === 'number') compareScalar(out, x, Math.fround(b), op);
    else compareVector(out, x, arr(b), op);
    return asVec(out);
  }
}

const MIN = 0, MAX = 1, GT = 2, GE = 3, EQ = 4;
type CompareOp = typeof MIN | typeof MAX | typeof GT | typeof GE | typeof EQ;

// One loop per operation (no per-element callbacks: those stop V8 from inlining).
function compareScalar(o: F32, x: F32, y: number, op: CompareOp): void {
  switch (op) {
    case MIN: for (let i = 0; i < o.length; i++) o[i] = x[i] < y || x[i] !== x[i] ? x[i] : y; break;
    case MAX: for (let i = 0; i < o.length; i++) o[i] = x[i] > y || x[i] !== x[i] ? x[i] : y; break;
    case GT: for (let i = 0; i < o.length; i++) o[i] = +(x[i] > y); break;
    case GE: for (let i = 0; i < o.length; i++) o[i] = +(x[i] >= y); break;
    case EQ: for (let i = 0; i < o.length; i++) o[i] = +(x[i] === y); break;
  }
}
function compareVector(o: F32, x: F32, y: F32, op: CompareOp): void {
  switch (op) {
    case MIN: for (let i = 0; i < o.length; i++) o[i] = x[i] < y[i] || x[i] !== x[i] ? x[i] : y[i]; break;
    case MAX: for (let i = 0; i < o.length; i++) o[i] = x[i] > y[i] || x[i] !== x[i] ? x[i] : y[i]; break;
    case GT: for (let i = 0; i < o.length; i++) o[i] = +(x[i] > y[i]); break;
    case GE: for (let i = 0; i < o.length; i++) o[i] = +(x[i] >= y[i]); break;
    case EQ: for (let i = 0; i < o.length; i++) o[i] = +(x[i] === y[i]); break;
  }
}

function bytesPer(dtype: FloatDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

// Monomorphic loops for the hot binary operations (scalars are rounded to f32 like on the GPU).
function addVV(o: F32, x: F32, y: F32): void {
  for (let i = 0; i < o.length; i++) o[i] = x[i] + y[i];
}
function addVS(o: F32, x: F32 | number, y: F32 | number): void {
  const [v, s] = typeof x === 'number' ? [y as F32, Math.fround(x)] : [x, Math.fround(y as number)];
  for (let i = 0; i < o.length; i++) o[i] = v[i] + s;
}
function subVV(o: F32, x: F32, y: F32): void {
  for (let i = 0; i < o.length; i++) o[i] = x[i] - y[i];
}
function subVS(o: F32, x: F32, y: number): void {
  const s = Math.fround(y);
  for (let i = 0; i < o.length; i++) o[i] = x[i] - s;
}
function subSV(o: F32, x: number, y: F32): void {
  const s = Math.fround(x);
  for (let i = 0; i < o.length; i++) o[i] = s - y[i];
}
function mulVV(o: F32, x: F32, y: F32): void {
  for (let i = 0; i < o.length; i++) o[i] = x[i] * y[i];
}
function mulVS(o: F32, x: F32 | number, y: F32 | number): void {
  const [v, s] = typeof x === 'number' ? [y as F32, Math.fround(x)] : [x, Math.fround(y as number)];
  for (let i = 0; i < o.length; i++) o[i] = v[i] * s;
}
function divVV(o: F32, x: F32, y: F32): void {
  for (let i = 0; i < o.length; i++) o[i] = x[i] / y[i];
}
function divVS(o: F32, x: F32, y: number): void {
  const s = Math.fround(y);
  for (let i = 0; i < o.length; i++) o[i] = x[i] / s;
}
function divSV(o: F32, x: number, y: F32): void {
  const s = Math.fround(x);
  for (let i = 0; i < o.length; i++) o[i] = s / y[i];
}
