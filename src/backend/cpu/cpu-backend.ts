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
  /** Float32Arrays of released chunks, reused by length to spare the garbage collector. */
  private readonly free = new Map<number, Float32Array[]>();

  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk {
    return new CpuChunk(spec, inputs, this.free);
  }

  async dispose(): Promise<void> {
    this.free.clear();
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
    private readonly free: Map<number, F32[]>,
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
    const list = this.free.get(this.length);
    const a = list?.pop() ?? new Float32Array(this.length);
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
    return this.generic(a, b, (x, y) => (x < y || Number.isNaN(x) ? x : y));
  }
  max(a: Operand, b: Operand): Vec {
    return this.generic(a, b, (x, y) => (x > y || Number.isNaN(x) ? x : y));
  }
  gt(a: Operand, b: Operand): Vec {
    return this.generic(a, b, (x, y) => (x > y ? 1 : 0));
  }
  ge(a: Operand, b: Operand): Vec {
    return this.generic(a, b, (x, y) => (x >= y ? 1 : 0));
  }
  eq(a: Operand, b: Operand): Vec {
    return this.generic(a, b, (x, y) => (x === y ? 1 : 0));
  }
  neg(a: Vec): Vec {
    return this.unary(a, (x) => -x);
  }
  abs(a: Vec): Vec {
    return this.unary(a, Math.abs);
  }
  sign(a: Vec): Vec {
    return this.unary(a, (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : x));
  }
  sqrt(a: Vec): Vec {
    return this.unary(a, Math.sqrt);
  }

  where(cond: Vec, a: Operand, b: Operand): Vec {
    const c = arr(cond);
    const out = this.alloc();
    const av = typeof a === 'number' ? null : arr(a);
    const bv = typeof b === 'number' ? null : arr(b);
    const as = typeof a === 'number' ? a : 0;
    const bs = typeof b === 'number' ? b : 0;
    for (let i = 0; i < out.length; i++) out[i] = c[i] !== 0 ? (av ? av[i] : as) : bv ? bv[i] : bs;
    return asVec(out);
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

  topMagnitudeMask(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec {
    const x = arr(a);
    const out = this.alloc();
    let ties = tiesBefore;
    for (let i = 0; i < x.length; i++) {
      const m = Math.abs(x[i]);
      if (m > threshold) out[i] = 1;
      else if (m === threshold) out[i] = ties++ < tiesAllowed ? 1 : 0;
      else out[i] = 0;
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
    for (const a of this.owned) {
      let list = this.free.get(a.length);
      if (!list) this.free.set(a.length, (list = []));
      if (list.length < 64) list.push(a);
    }
    this.owned.length = 0;
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

  private generic(a: Operand, b: Operand, f: (x: number, y: number) => number): Vec {
    const out = this.alloc();
    const av = typeof a === 'number' ? null : arr(a);
    const bv = typeof b === 'number' ? null : arr(b);
    const as = typeof a === 'number' ? Math.fround(a) : 0;
    const bs = typeof b === 'number' ? Math.fround(b) : 0;
    for (let i = 0; i < out.length; i++) out[i] = f(av ? av[i] : as, bv ? bv[i] : bs);
    return asVec(out);
  }

  private unary(a: Vec, f: (x: number) => number): Vec {
    const x = arr(a);
    const out = this.alloc();
    for (let i = 0; i < out.length; i++) out[i] = f(x[i]);
    return asVec(out);
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
