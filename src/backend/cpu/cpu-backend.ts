import { countNonFinite, decodeToF32, encodeFromF32, type NonFiniteCounts } from '../../storage';
import type { FloatDtype } from '../../storage/types';
import type { BackendChunk, ChunkInputBytes, ChunkNonFinite, ChunkSpec, ComputeBackend } from '../compute-backend';
import { pcgHash, streamKey } from '../random';
import { sparseHistogram, type Partial, type ReductionKind, type ReductionToken } from '../reduction';
import type { ChunkOps, Operand, Reduction, Vec } from '../types';
import { cpuMatrixOps } from './cpu-matrix-ops';

/**
 * The reference backend: plain TypeScript over Float32Array, f32 element arithmetic, f64
 * reductions. The WebGPU backend is tested against it.
 */
export class CpuBackend implements ComputeBackend {
  readonly name = 'cpu' as const;
  readonly countsNonFinite = true;
  /** The JavaScript reference: the forward pass's time is in its cache-blocked matmul. */
  readonly matrix = cpuMatrixOps;
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
  private outputCounts: NonFiniteCounts | null = null;

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
    // Accumulate in f64 per element would change results vs. GPU; both sum in f32 in term order:
    // out = fround(fround(0 + w0·x0) + w1·x1) + …, two terms per sweep over memory.
    if (terms.length === 0) out.fill(0);
    for (let t = 0; t < terms.length; t += 2) {
      const x = arr(terms[t]);
      const wx = weights[t];
      const first = t === 0;
      if (t + 1 === terms.length) {
        if (typeof wx === 'number') accumulateS(out, first, x, wx);
        else accumulateV(out, first, x, arr(wx));
        continue;
      }
      const y = arr(terms[t + 1]);
      const wy = weights[t + 1];
      if (typeof wx === 'number') {
        if (typeof wy === 'number') accumulateSS(out, first, x, wx, y, wy);
        else accumulateSV(out, first, x, wx, y, arr(wy));
      } else if (typeof wy === 'number') accumulateSV(out, first, y, wy, x, arr(wx), true);
      else accumulateVV(out, first, x, arr(wx), y, arr(wy));
    }
    return asVec(out);
  }

  random(stream: number): Vec {
    const key = streamKey(this.spec.seed, this.spec.tensorName, stream);
    const out = this.alloc();
    fillUniform(out, key, this.start);
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
    return token('histogram', sparseHistogram(hist));
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
      // The stored (f32-rounded) W_j, as the two-term path and mergekit use: an assignment
      // expression's value would be the unrounded f64 product.
      for (let j = 0; j < n; j++) {
        weighted[j] = s[j] * xs[j][i];
        total += weighted[j];
      }
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

  async readPartials(tokens: readonly ReductionToken[]): Promise<Partial[]> {
    return tokens.map((t) => t.partial as Partial);
  }

  async encode(v: Vec, dtype: FloatDtype): Promise<Uint8Array> {
    const bytes = encodeFromF32(arr(v), dtype);
    this.outputCounts = countNonFinite(bytes, dtype);
    return bytes;
  }

  nonFinite(): ChunkNonFinite {
    return { inputs: this.inputs.map((i) => (i.countNonFinite ? countNonFinite(i.bytes, i.dtype) : null)), output: this.outputCounts };
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

  rowRanks(a: Vec): Vec {
    const x = arr(a);
    const out = this.alloc();
    const bits = new Uint32Array(x.buffer, x.byteOffset, this.length);
    const scratch = new RankScratch(this.cols);
    for (let r = 0; r < this.rows; r++) rankRow(bits, out, r * this.cols, this.cols, scratch);
    return asVec(out);
  }

  exp(a: Vec): Vec {
    const x = arr(a);
    const o = this.alloc();
    for (let i = 0; i < o.length; i++) o[i] = Math.exp(x[i]);
    return asVec(o);
  }

  log(a: Vec): Vec {
    const x = arr(a);
    const o = this.alloc();
    for (let i = 0; i < o.length; i++) o[i] = Math.log(x[i]);
    return asVec(o);
  }

  dot(a: Vec, b: Vec): Reduction<number> {
    const x = arr(a);
    const y = arr(b);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += Math.fround(x[i] * y[i]);
    return token('sum', s);
  }

  rowMaxBroadcast(a: Vec): Vec {
    const x = arr(a);
    const out = this.alloc();
    for (let r = 0; r < this.rows; r++) {
      let m = -Infinity;
      for (let i = r * this.cols; i < (r + 1) * this.cols; i++) m = Math.max(m, x[i]); // NaN propagates
      out.fill(m, r * this.cols, (r + 1) * this.cols);
    }
    return asVec(out);
  }

  rowSumBroadcast(a: Vec): Vec {
    const x = arr(a);
    const out = this.alloc();
    for (let r = 0; r < this.rows; r++) {
      let s = 0;
      for (let i = r * this.cols; i < (r + 1) * this.cols; i++) s += x[i];
      out.fill(s, r * this.cols, (r + 1) * this.cols);
    }
    return asVec(out);
  }

  periodicSums(a: Vec, period: number): Reduction<Float64Array> {
    const x = arr(a);
    const sums = new Float64Array(period);
    // Runs of consecutive residues: no modulo per element.
    for (let i = 0, j = this.start % period; i < x.length; j = 0) {
      const n = Math.min(period - j, x.length - i);
      for (let k = 0; k < n; k++) sums[j + k] += x[i + k];
      i += n;
    }
    return token('periodicSums', sums);
  }

  periodic(values: Float64Array): Vec {
    const out = this.alloc();
    const period = values.length;
    for (let i = 0, j = this.start % period; i < out.length; j = 0) {
      const n = Math.min(period - j, out.length - i);
      out.set(values.subarray(j, j + n), i);
      i += n;
    }
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

/**
 * rowRanks: an LSD radix sort of the row's magnitude bit patterns, carrying element indices.
 * Only the bits that vary within the row are sorted on (deltas of bf16 models have 16 constant
 * zero bits), in as few passes of at most 11 bits as they need; each pass also counts the next
 * pass's digits. Each pass is stable and the indices enter in reverse order, so of equal
 * magnitudes the later element sorts first and the earlier ranks higher.
 */
class RankScratch {
  readonly keys: Uint32Array;
  readonly keysSpare: Uint32Array;
  readonly order: Uint32Array;
  readonly orderSpare: Uint32Array;
  readonly counts = new Int32Array(2048);
  readonly countsSpare = new Int32Array(2048);
  constructor(cols: number) {
    this.keys = new Uint32Array(cols);
    this.keysSpare = new Uint32Array(cols);
    this.order = new Uint32Array(cols);
    this.orderSpare = new Uint32Array(cols);
  }
}
function rankRow(bits: Uint32Array, out: F32, offset: number, cols: number, s: RankScratch): void {
  let keys = s.keys, keysOut = s.keysSpare, order = s.order, orderOut = s.orderSpare;
  let or = 0;
  let and = 0x7fffffff;
  for (let i = 0; i < cols; i++) {
    const index = cols - 1 - i;
    const k = bits[offset + index] & 0x7fffffff;
    keys[i] = k;
    order[i] = index;
    or |= k;
    and &= k;
  }
  const varying = or ^ and;
  if (varying !== 0) {
    const low = 31 - Math.clz32(varying & -varying);
    const width = 32 - Math.clz32(varying) - low;
    const passes = Math.ceil(width / 11);
    const digitBits = Math.ceil(width / passes);
    const mask = (1 << digitBits) - 1;
    let counts = s.counts, nextCounts = s.countsSpare;
    counts.fill(0, 0, mask + 1);
    for (let i = 0; i < cols; i++) counts[(keys[i] >>> low) & mask]++;
    for (let pass = 0; pass < passes; pass++) {
      const shift = low + pass * digitBits;
      const nextShift = shift + digitBits;
      let sum = 0;
      for (let d = 0; d <= mask; d++) {
        const c = counts[d];
        counts[d] = sum;
        sum += c;
      }
      nextCounts.fill(0, 0, mask + 1);
      for (let i = 0; i < cols; i++) {
        const k = keys[i];
        const at = counts[(k >>> shift) & mask]++;
        orderOut[at] = order[i];
        keysOut[at] = k;
        nextCounts[(k >>> nextShift) & mask]++; // unused after the last pass
      }
      const k = keys, o = order, c = counts;
      keys = keysOut;
      keysOut = k;
      order = orderOut;
      orderOut = o;
      counts = nextCounts;
      nextCounts = c;
    }
  }
  for (let rank = 0; rank < cols; rank++) out[offset + order[rank]] = rank + 1;
}

/**
 * `randomUniform(key, start + i)` for every i, bit for bit, in one loop: the outer hash of the
 * index's high word is hoisted (it changes only where the range crosses a multiple of 2^32) and
 * the inner PCG hash is inlined in int32 arithmetic.
 */
function fillUniform(out: F32, key: number, start: number): void {
  const TWO_POW_32 = 4294967296;
  for (let i = 0; i < out.length; ) {
    const hi = Math.floor((start + i) / TWO_POW_32);
    const lo = start + i - hi * TWO_POW_32;
    const n = Math.min(out.length - i, TWO_POW_32 - lo);
    const base = (pcgHash((key ^ hi) >>> 0) + lo) | 0;
    for (let j = 0; j < n; j++) {
      const state = (Math.imul((base + j) | 0, 747796405) + 2891336453) | 0;
      const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737);
      out[i + j] = (((word >>> 22) ^ word) >>> 8) / 16777216;
    }
    i += n;
  }
}

// weightedSum sweeps (see there): `first` starts from +0 instead of reading `o`.
function accumulateS(o: F32, first: boolean, x: F32, w: number): void {
  if (first) for (let i = 0; i < o.length; i++) o[i] = 0 + w * x[i];
  else for (let i = 0; i < o.length; i++) o[i] += w * x[i];
}
function accumulateV(o: F32, first: boolean, x: F32, w: F32): void {
  if (first) for (let i = 0; i < o.length; i++) o[i] = 0 + w[i] * x[i];
  else for (let i = 0; i < o.length; i++) o[i] += w[i] * x[i];
}
function accumulateSS(o: F32, first: boolean, x: F32, wx: number, y: F32, wy: number): void {
  if (first) for (let i = 0; i < o.length; i++) o[i] = Math.fround(0 + wx * x[i]) + wy * y[i];
  else for (let i = 0; i < o.length; i++) o[i] = Math.fround(o[i] + wx * x[i]) + wy * y[i];
}
function accumulateVV(o: F32, first: boolean, x: F32, wx: F32, y: F32, wy: F32): void {
  if (first) for (let i = 0; i < o.length; i++) o[i] = Math.fround(0 + wx[i] * x[i]) + wy[i] * y[i];
  else for (let i = 0; i < o.length; i++) o[i] = Math.fround(o[i] + wx[i] * x[i]) + wy[i] * y[i];
}
/** One scalar-weighted and one vector-weighted term; `swapped`: the vector-weighted term comes first. */
function accumulateSV(o: F32, first: boolean, x: F32, wx: number, y: F32, wy: F32, swapped = false): void {
  if (swapped) {
    if (first) for (let i = 0; i < o.length; i++) o[i] = Math.fround(0 + wy[i] * y[i]) + wx * x[i];
    else for (let i = 0; i < o.length; i++) o[i] = Math.fround(o[i] + wy[i] * y[i]) + wx * x[i];
  } else if (first) for (let i = 0; i < o.length; i++) o[i] = Math.fround(0 + wx * x[i]) + wy[i] * y[i];
  else for (let i = 0; i < o.length; i++) o[i] = Math.fround(o[i] + wx * x[i]) + wy[i] * y[i];
}
