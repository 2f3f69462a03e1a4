import type { BackendChunk, ChunkInputBytes, ChunkSpec } from '../backend/compute-backend';
import { streamKey } from '../backend/random';
import { sparseHistogram, type Partial, type ReductionKind, type ReductionToken } from '../backend/reduction';
import type { ChunkOps, Operand, Reduction, Vec } from '../backend/types';
import type { FloatDtype } from '../storage/types';
import { sizeClass, type BufferPool } from './buffer-pool';
import type { Binding, CommandRecorder, ParamSlot, ReadRegion } from './command-recorder';
import { GpuOperationError } from './errors';
import { BINARY, compileFused, FUSED_HEADER_WORDS, LazyVec, UNARY, type Expr, type Operand as LazyOperand } from './fused';
import { signConsensusVariant, type Kernel, type KernelCache } from './kernels';

const HISTOGRAM_BINS = 65536;
const HISTOGRAM_BYTES = HISTOGRAM_BINS * 4;
/** Elements one thread of a reduction sums, about (reduce.wgsl). */
const REDUCE_PER_THREAD = 64;
/** Partials one reduction may read back per chunk (8 bytes each). */
const REDUCE_MAX_PARTIALS = 1 << 16;
/** Consecutive elements one thread walks in the tie-counted top-k (keep_top.wgsl). */
const TIE_RUN = 16;
const WG = 256;
/** Scalar weights of one fused weightedSum link ((hi, lo) pairs in the fused kernel's 56 words). */
const MAX_SCALAR_WEIGHTS = 24;
const MAX_CONSENSUS_TERMS = 28;
/** Terms of a fused signConsensus (a scale and a weight word each, of the fused kernel's 56). */
const MAX_FUSED_CONSENSUS_TERMS = 24;
/** Elements sorted in workgroup memory by rank.wgsl. */
const RANK_LOCAL = 2048;
/** Period rows summed by one thread of periodic_sums. */
const PERIOD_ROWS_PER_GROUP = 64;

/**
 * What a reduction token holds until it is read back: double-float pairs (`outputs` results of
 * `parts` pairs each, laid out result-major or part-major), or the chunk's 65536 histogram bins.
 */
type GpuPartial =
  | {
      readonly type: 'pairs';
      readonly buffer: GPUBuffer;
      readonly outputs: number;
      readonly parts: number;
      readonly partMajor?: boolean;
    }
  | { readonly type: 'histogram'; readonly buffer: GPUBuffer };

const asVec = (v: LazyVec): Vec => v as unknown as Vec;
function lazy(v: Vec): LazyVec {
  if (!(v instanceof LazyVec)) throw new Error('internal: a vector of another backend was passed to the WebGPU backend');
  return v;
}
const operand = (o: Operand): LazyOperand => (typeof o === 'number' ? o : lazy(o));
const token = <T extends number | Float64Array>(kind: ReductionKind, partial: GpuPartial): Reduction<T> =>
  ({ kind, partial }) as ReductionToken as unknown as Reduction<T>;

const DTYPE_CODE: Readonly<Record<FloatDtype, number>> = { F32: 0, F16: 1, BF16: 2 };
type BinaryOp = keyof typeof BINARY;

/** Host value of a binary operation on two scalars, as the CPU backend computes it. */
function scalarBinary(op: BinaryOp, a: number, b: number): number {
  const x = Math.fround(a);
  const y = Math.fround(b);
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'min': return x < y || x !== x ? x : y;
    case 'max': return x > y || x !== x ? x : y;
    case 'gt': return +(x > y);
    case 'ge': return +(x >= y);
    case 'eq': return +(x === y);
  }
}

function bytesPer(dtype: FloatDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);
function bitsOf(x: number): number {
  f32Bits[0] = x;
  return u32Bits[0];
}

/** A buffer lent to one operation: `release` gives it back for the chunk's later GPU outputs. */
interface Lent {
  readonly binding: Binding;
  readonly release: () => void;
}

/** What a chunk needs of the backend that owns the device (WebGpuBackend). */
export interface ChunkHost {
  readonly device: GPUDevice;
  readonly pool: BufferPool;
  readonly kernels: KernelCache;
  readonly recorder: CommandRecorder;
  readonly storageBuffersPerStage: number;
  readonly rowRanksMethod: 'bitonic' | 'serial';
  /** Throws if the device was lost or an earlier command failed. */
  check(): void;
  /** Waits for `p`, failing fast when the device is lost and after the sync timeout. */
  guard<T>(p: Promise<T>): Promise<T>;
  openErrorScopes(): void;
  closeErrorScopes(): Promise<GPUError | null>[];
  /** Records errors of a finished chunk's scopes, to be thrown at the next check. */
  watch(scopes: Promise<GPUError | null>[]): void;
}

/**
 * One chunk's operations on the GPU (see WebGpuBackend for the design): lazy elementwise
 * expressions compiled into fused kernels, and kernels of their own for reductions, histograms,
 * tie-counted top-k, row ranks, row broadcasts and many-term sign consensus.
 */
export class WebGpuChunk implements BackendChunk, ChunkOps {
  readonly ops: ChunkOps = this;
  readonly chunkIndex: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
  private readonly decoded: (LazyVec | undefined)[];
  /** Every buffer the chunk took from the pool; all go back at release. */
  private readonly owned: GPUBuffer[] = [];
  /**
   * Owned buffers no operation needs any more. They are reused only for what kernels write
   * within this chunk, never for uploads: queue.writeBuffer runs before the chunk's recorded
   * (not yet submitted) commands that may still read them.
   */
  private readonly idle: GPUBuffer[] = [];
  private released = false;
  private readonly groups: number;
  private readonly recorder: CommandRecorder;
  private readonly device: GPUDevice;
  private readonly vectorBytes: number;

  constructor(
    private readonly backend: ChunkHost,
    private readonly spec: ChunkSpec,
    private readonly inputs: readonly ChunkInputBytes[],
  ) {
    this.chunkIndex = spec.chunkIndex;
    this.start = spec.start;
    this.length = spec.length;
    this.rowStart = spec.rowStart;
    this.rows = spec.rows;
    this.cols = spec.cols;
    this.decoded = new Array(inputs.length);
    this.groups = Math.ceil(spec.length / WG);
    this.vectorBytes = Math.max(4, spec.length * 4);
    this.recorder = backend.recorder;
    this.device = backend.device;
    backend.openErrorScopes();
  }

  // ---- buffers -------------------------------------------------------------------------------

  /** A buffer for kernel output (an idle one of the chunk when one fits). */
  private scratch(bytes: number, label?: string): Binding {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const want = sizeClass(size);
    const at = this.idle.findIndex((b) => b.size === want);
    if (at >= 0) return { binding: 0, buffer: this.idle.splice(at, 1)[0], size };
    const buffer = this.backend.pool.acquire('storage', size, label);
    this.owned.push(buffer);
    return { binding: 0, buffer, size };
  }

  /** A scratch buffer that goes back to `idle` when the operation using it is recorded. */
  private lend(bytes: number): Lent {
    const b = this.scratch(bytes);
    return { binding: b, release: () => this.idle.push(b.buffer) };
  }

  /** Uploads bytes (any length, any alignment) into a fresh buffer, zero-padded to whole words. */
  private upload(bytes: Uint8Array): Binding {
    const size = Math.max(4, Math.ceil(bytes.length / 4) * 4);
    const buffer = this.backend.pool.acquire('storage', size);
    this.owned.push(buffer);
    const whole = bytes.length & ~3;
    if (whole > 0) this.device.queue.writeBuffer(buffer, 0, bytes as Uint8Array<ArrayBuffer>, 0, whole);
    if (whole < bytes.length || bytes.length === 0) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(whole));
      this.device.queue.writeBuffer(buffer, whole, tail, 0, 4);
    }
    return { binding: 0, buffer, size };
  }

  private kernel(...args: Parameters<KernelCache['get']>): Kernel {
    return this.backend.kernels.get(...args);
  }

  private at(b: Binding, binding: number): Binding {
    return { ...b, binding };
  }

  // ---- fused elementwise expressions --------------------------------------------------------

  /** Writes the value of `v` to `out` with one fused kernel. */
  private compute(v: LazyVec, out: Binding): void {
    this.fused(v, 'fused', out, this.groups);
  }

  /**
   * Dispatches the fused kernel of `v` (elementwise.wgsl entry `entry`), materializing sub-graphs
   * first when the graph needs more bindings or scalars than one kernel has.
   */
  private fused(
    v: LazyVec,
    entry: 'fused' | 'fused_sums' | 'fused_histogram',
    out: Binding,
    groups: number,
    extra?: readonly [number, number, number],
  ): void {
    for (;;) {
      const compiled = compileFused(v, this.backend.storageBuffersPerStage);
      if ('split' in compiled) {
        this.materialize(compiled.split);
        continue;
      }
      const k = compiled.kernel;
      this.recorder.dispatch(this.kernel('elementwise', entry, {}, k.generated), [this.at(out, 1), ...k.bindings], groups, (p) => {
        p.u32(0, this.length).u32(1, this.cols).u32(2, this.start % 2 ** 32).u32(3, Math.floor(this.start / 2 ** 32));
        p.f32(4, 1); // `one`
        if (extra) p.u32(5, extra[0]).u32(6, extra[1]).u32(7, extra[2]);
        k.words.forEach((w, j) => (w.type === 'f32' ? p.f32(FUSED_HEADER_WORDS + j, w.value) : p.u32(FUSED_HEADER_WORDS + j, w.value)));
      });
      return;
    }
  }

  /** `v` in a buffer for the rest of the chunk. */
  private materialize(v: LazyVec): Binding {
    const existing = v.buffer;
    if (existing) return existing;
    const out = this.scratch(this.vectorBytes);
    this.compute(v, out);
    v.materialized = out;
    return out;
  }

  /** `v` in a buffer for one operation: computed into a lent buffer unless it already has one. */
  private values(v: Vec): Lent {
    const x = lazy(v);
    const existing = x.buffer;
    if (existing) return { binding: existing, release: () => undefined };
    const lent = this.lend(this.vectorBytes);
    this.compute(x, lent.binding);
    return lent;
  }

  private fresh(expr: Expr): Vec {
    this.backend.check();
    return asVec(new LazyVec(expr));
  }

  /** A vector kernels wrote into a buffer of the chunk. */
  private stored(b: Binding): Vec {
    return asVec(new LazyVec({ kind: 'leaf', leaf: { kind: 'values', buffer: b.buffer, size: b.size } }));
  }

  // ---- inputs ------------------------------------------------------------------------------

  input(i: number): Vec {
    this.backend.check();
    const cached = this.decoded[i];
    if (cached) return asVec(cached);
    const input = this.inputs[i];
    if (!input) throw new Error(`internal: chunk has no input ${i}`);
    const size = bytesPer(input.dtype);
    let bytes: Uint8Array;
    if (input.cols === this.cols || this.rows <= 1) {
      bytes = input.bytes.subarray(0, this.length * size);
    } else {
      // A wider embedding cut to the common width: upload the first `cols` values of every row.
      bytes = new Uint8Array(this.length * size);
      const rowBytes = input.cols * size;
      const keepBytes = this.cols * size;
      for (let r = 0; r < this.rows; r++) {
        bytes.set(input.bytes.subarray(r * rowBytes, r * rowBytes + keepBytes), r * keepBytes);
      }
    }
    const raw = this.upload(bytes);
    const v = new LazyVec({ kind: 'leaf', leaf: { kind: 'raw', buffer: raw.buffer, size: raw.size, dtype: input.dtype } });
    this.decoded[i] = v;
    return asVec(v);
  }

  // ---- elementwise -------------------------------------------------------------------------

  add(a: Operand, b: Operand): Vec {
    return this.binary('add', a, b);
  }
  sub(a: Operand, b: Operand): Vec {
    return this.binary('sub', a, b);
  }
  mul(a: Operand, b: Operand): Vec {
    return this.binary('mul', a, b);
  }
  div(a: Operand, b: Operand): Vec {
    return this.binary('div', a, b);
  }
  min(a: Operand, b: Operand): Vec {
    return this.binary('min', a, b);
  }
  max(a: Operand, b: Operand): Vec {
    return this.binary('max', a, b);
  }
  gt(a: Operand, b: Operand): Vec {
    return this.binary('gt', a, b);
  }
  ge(a: Operand, b: Operand): Vec {
    return this.binary('ge', a, b);
  }
  eq(a: Operand, b: Operand): Vec {
    return this.binary('eq', a, b);
  }
  neg(a: Vec): Vec {
    return this.fresh({ kind: 'unary', op: UNARY.neg, a: lazy(a) });
  }
  abs(a: Vec): Vec {
    return this.fresh({ kind: 'unary', op: UNARY.abs, a: lazy(a) });
  }
  sign(a: Vec): Vec {
    return this.fresh({ kind: 'unary', op: UNARY.sign, a: lazy(a) });
  }
  sqrt(a: Vec): Vec {
    return this.fresh({ kind: 'unary', op: UNARY.sqrt, a: lazy(a) });
  }
  exp(a: Vec): Vec {
    return this.fresh({ kind: 'unary', op: UNARY.exp, a: lazy(a) });
  }
  log(a: Vec): Vec {
    return this.fresh({ kind: 'unary', op: UNARY.log, a: lazy(a) });
  }

  where(cond: Vec, a: Operand, b: Operand): Vec {
    return this.fresh({ kind: 'where', cond: lazy(cond), a: operand(a), b: operand(b) });
  }

  weightedSum(terms: readonly Vec[], weights: readonly Operand[]): Vec {
    this.backend.check();
    if (terms.length !== weights.length) throw new Error('internal: weightedSum needs one weight per term');
    if (terms.length === 0) return this.fresh({ kind: 'fill', value: 0 });
    // Links of at most as many terms as one kernel can bind (out and the running sum take two),
    // each continuing the previous link's sum: the same f32 accumulation in term order.
    const capacity = Math.max(1, this.backend.storageBuffersPerStage - 2);
    let sum: LazyVec | null = null;
    let first = 0;
    while (first < terms.length) {
      let used = 0;
      let end = first;
      while (end < terms.length && end - first < MAX_SCALAR_WEIGHTS) {
        const cost = typeof weights[end] === 'number' ? 1 : 2;
        if (used + cost > capacity && end > first) break;
        used += cost;
        end++;
      }
      sum = new LazyVec({
        kind: 'wsum',
        init: sum,
        terms: terms.slice(first, end).map(lazy),
        weights: weights.slice(first, end).map(operand),
      });
      first = end;
    }
    return asVec(sum!);
  }

  random(stream: number): Vec {
    return this.fresh({ kind: 'random', key: streamKey(this.spec.seed, this.spec.tensorName, stream) });
  }

  perRow(values: Float64Array): Vec {
    this.backend.check();
    const rowValues = new Float32Array(this.rows);
    for (let r = 0; r < this.rows; r++) rowValues[r] = values[this.rowStart + r];
    const b = this.upload(new Uint8Array(rowValues.buffer));
    return this.fresh({ kind: 'leaf', leaf: { kind: 'rows', buffer: b.buffer, size: b.size } });
  }

  periodic(values: Float64Array): Vec {
    this.backend.check();
    const period = values.length;
    if (period < 1) throw new Error('internal: periodic needs at least one value');
    const b = this.upload(new Uint8Array(Float32Array.from(values).buffer));
    return this.fresh({ kind: 'leaf', leaf: { kind: 'periodic', buffer: b.buffer, size: b.size, period, startMod: this.start % period } });
  }

  keepTopMagnitude(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec {
    this.backend.check();
    const t = Math.fround(threshold);
    // Below zero every magnitude is larger: everything is kept (the CPU gives x · 1).
    if (t < 0) return a;
    const tbits = bitsOf(t) & 0x7fffffff;
    const remaining = tiesAllowed - tiesBefore;
    if (remaining <= 0 || remaining >= this.length) {
      return this.fresh({ kind: 'keep', x: lazy(a), tbits, keepTies: remaining > 0 });
    }
    // Only the first `remaining` ties in index order: count ties per run, scan, then keep.
    const x = this.values(a);
    const runs = Math.ceil(this.length / TIE_RUN);
    const counts = this.lend(runs * 4);
    const out = this.scratch(this.vectorBytes);
    const params = (p: ParamSlot): void => {
      p.u32(0, this.length).u32(1, tbits).u32(2, remaining).u32(3, runs);
    };
    const threads = Math.ceil(runs / WG);
    this.recorder.dispatch(this.kernel('keepTop', 'count_ties'), [this.at(x.binding, 1), this.at(counts.binding, 3)], threads, params);
    this.recorder.dispatch(this.kernel('keepTop', 'scan_runs'), [this.at(counts.binding, 3)], 1, params);
    this.recorder.dispatch(
      this.kernel('keepTop', 'apply_counted'),
      [this.at(x.binding, 1), this.at(out, 2), this.at(counts.binding, 4)],
      threads,
      params,
    );
    x.release();
    counts.release();
    return this.stored(out);
  }

  signConsensus(terms: readonly Vec[], scales: readonly number[], weights: readonly number[] | null): Vec {
    this.backend.check();
    const n = terms.length;
    if (scales.length !== n || (weights && weights.length !== n)) {
      throw new Error('internal: signConsensus needs one scale (and weight) per term');
    }
    if (n === 0) return this.fresh({ kind: 'fill', value: 0 });
    const limit = this.backend.storageBuffersPerStage;
    if (n <= Math.min(limit - 1, MAX_FUSED_CONSENSUS_TERMS)) {
      return this.fresh({ kind: 'consensus', terms: terms.map(lazy), scales: [...scales], weights: weights ? [...weights] : null });
    }
    // More terms than one kernel can bind: Σ W_j over groups of terms first, then the agreeing
    // sums over groups, with per-element double-float state in scratch buffers.
    const inputs = terms.map((t) => this.materialize(lazy(t)));
    const out = this.scratch(this.vectorBytes);
    const total = this.lend(this.length * 8);
    const agreed = this.lend(this.length * 16);
    const params = (from: number, count: number, first: boolean, last: boolean) => (p: ParamSlot) => {
      p.u32(0, this.length).u32(1, weights ? 1 : 0).u32(2, first ? 1 : 0).u32(3, last ? 1 : 0);
      for (let k = 0; k < count; k++) {
        p.f32(4 + k, scales[from + k]);
        p.f32(4 + MAX_CONSENSUS_TERMS + k, weights ? weights[from + k] : 0);
      }
    };
    const termBindings = (from: number, count: number): Binding[] =>
      Array.from({ length: count }, (_, k) => this.at(inputs[from + k], 4 + k));
    const totalMax = Math.min(limit - 1, MAX_CONSENSUS_TERMS);
    for (let from = 0; from < n; from += totalMax) {
      const count = Math.min(totalMax, n - from);
      this.recorder.dispatch(
        this.kernel('signConsensus', 'total_pass', {}, signConsensusVariant(count)),
        [this.at(total.binding, 2), ...termBindings(from, count)],
        this.groups,
        params(from, count, from === 0, false),
      );
    }
    const mixMax = Math.min(limit - 3, MAX_CONSENSUS_TERMS);
    for (let from = 0; from < n; from += mixMax) {
      const count = Math.min(mixMax, n - from);
      this.recorder.dispatch(
        this.kernel('signConsensus', 'mix_pass', {}, signConsensusVariant(count)),
        [this.at(out, 1), this.at(total.binding, 2), this.at(agreed.binding, 3), ...termBindings(from, count)],
        this.groups,
        params(from, count, from === 0, from + count === n),
      );
    }
    total.release();
    agreed.release();
    return this.stored(out);
  }

  rowRanks(a: Vec): Vec {
    this.backend.check();
    if (this.backend.rowRanksMethod === 'serial') return this.serialRowRanks(a);
    const cols = this.cols;
    const p = 2 ** Math.ceil(Math.log2(cols));
    const total = this.rows * p;
    const x = this.values(a);
    const keys = this.lend(total * 8);
    const out = this.scratch(this.vectorBytes);
    const params = (k: number, j: number) => (w: ParamSlot) => {
      w.u32(0, this.length).u32(1, cols).u32(2, p).u32(3, total).u32(4, k).u32(5, j);
    };
    const k2 = this.at(keys.binding, 2);
    const perElement = Math.ceil(total / WG);
    const tiles = Math.ceil(total / RANK_LOCAL);
    this.recorder.dispatch(this.kernel('rank', 'load_keys'), [this.at(x.binding, 1), k2], perElement, params(0, 0));
    x.release();
    this.recorder.dispatch(this.kernel('rank', 'sort_local'), [k2], tiles, params(0, 0));
    for (let k = 2 * RANK_LOCAL; k <= p; k *= 2) {
      for (let j = k / 2; j >= RANK_LOCAL; j /= 2) {
        this.recorder.dispatch(this.kernel('rank', 'merge_global'), [k2], Math.ceil(total / 2 / WG), params(k, j));
      }
      this.recorder.dispatch(this.kernel('rank', 'merge_local'), [k2], tiles, params(k, 0));
    }
    this.recorder.dispatch(this.kernel('rank', 'scatter'), [k2, this.at(out, 3)], perElement, params(0, 0));
    keys.release();
    return this.stored(out);
  }

  /** rowRanks with one thread per row and no workgroup barriers (see rank.wgsl). */
  private serialRowRanks(a: Vec): Vec {
    const x = this.values(a);
    const keys = this.lend(this.length * 16); // two halves of (key, column) pairs
    const out = this.scratch(this.vectorBytes);
    this.recorder.dispatch(
      this.kernel('rank', 'serial_rank'),
      [this.at(x.binding, 1), this.at(keys.binding, 2), this.at(out, 3)],
      Math.ceil(this.rows / WG),
      (p) => p.u32(0, this.length).u32(1, this.cols).u32(6, this.rows),
    );
    x.release();
    keys.release();
    return this.stored(out);
  }

  rowMaxBroadcast(a: Vec): Vec {
    return this.rowBroadcast('max', a);
  }

  rowSumBroadcast(a: Vec): Vec {
    return this.rowBroadcast('sum', a);
  }

  // ---- reductions ----------------------------------------------------------------------------

  sum(a: Vec): Reduction<number> {
    return token('sum', this.segmentSums(a, null, this.length, 1));
  }

  rowSums(a: Vec): Reduction<Float64Array> {
    return token('rowSums', this.segmentSums(a, null, this.cols, this.rows));
  }

  chunkSums(a: Vec): Reduction<Float64Array> {
    return token('chunkSums', this.segmentSums(a, null, this.length, 1));
  }

  dot(a: Vec, b: Vec): Reduction<number> {
    return token('sum', this.segmentSums(a, b, this.length, 1));
  }

  periodicSums(a: Vec, period: number): Reduction<Float64Array> {
    this.backend.check();
    if (!Number.isInteger(period) || period < 1) throw new Error(`internal: periodicSums period ${period}`);
    const periodRows = Math.ceil(this.length / period);
    const rowsPerGroup = Math.min(periodRows, PERIOD_ROWS_PER_GROUP);
    const parts = Math.ceil(periodRows / rowsPerGroup);
    const groupsPerRow = Math.ceil(period / WG);
    const x = this.values(a);
    const partials = this.scratch(parts * period * 8);
    this.recorder.dispatch(
      this.kernel('periodic', 'periodic_sums'),
      [this.at(x.binding, 1), this.at(partials, 2)],
      parts * groupsPerRow,
      (p) =>
        p.u32(0, this.length).u32(1, period).u32(2, this.start % period).u32(3, groupsPerRow)
          .u32(4, rowsPerGroup).u32(5, parts * groupsPerRow),
    );
    x.release();
    return token('periodicSums', { type: 'pairs', buffer: partials.buffer, outputs: period, parts, partMajor: true });
  }

  magnitudeHistogram(a: Vec, high: number | null): Reduction<Float64Array> {
    this.backend.check();
    // Per chunk, not accumulated on the GPU: methods may use each chunk's histogram (tie counts).
    const hist = this.scratch(HISTOGRAM_BYTES);
    this.recorder.clear(hist.buffer, 0, HISTOGRAM_BYTES);
    this.fused(lazy(a), 'fused_histogram', hist, this.groups, [high === null ? 0 : 1, high ?? 0, 0]);
    return token('histogram', { type: 'histogram', buffer: hist.buffer });
  }

  // ---- results -------------------------------------------------------------------------------

  async readPartials(tokens: readonly ReductionToken[]): Promise<Partial[]> {
    this.backend.check();
    const partials = tokens.map((t) => t.partial as GpuPartial);
    const regions: ReadRegion[] = partials.map((p) => ({
      buffer: p.buffer,
      offset: 0,
      size: p.type === 'histogram' ? HISTOGRAM_BYTES : p.outputs * p.parts * 8,
    }));
    if (regions.length === 0) return [];
    const data = await this.readBack(regions);
    return partials.map((p, i) => {
      if (p.type === 'histogram') return sparseHistogram(new Uint32Array(data[i].buffer));
      const values = new Float32Array(data[i].buffer);
      const results = new Float64Array(p.outputs);
      for (let o = 0; o < p.outputs; o++) {
        let total = 0;
        for (let part = 0; part < p.parts; part++) {
          const at = p.partMajor ? part * p.outputs + o : o * p.parts + part;
          const hi = values[2 * at];
          total += Number.isFinite(hi) ? hi + values[2 * at + 1] : hi;
        }
        results[o] = total;
      }
      const kind = tokens[i].kind;
      return kind === 'sum' || kind === 'chunkSums' ? results[0] : results;
    });
  }

  async encode(v: Vec, dtype: FloatDtype): Promise<Uint8Array> {
    this.backend.check();
    const x = this.values(v);
    const words = dtype === 'F32' ? this.length : Math.ceil(this.length / 2);
    const encoded = this.scratch(words * 4);
    this.recorder.dispatch(
      this.kernel('codec', 'encode', { DTYPE: DTYPE_CODE[dtype] }),
      [this.at(x.binding, 1), this.at(encoded, 2)],
      Math.ceil(words / WG),
      (p) => p.u32(0, this.length),
    );
    x.release();
    const [bytes] = await this.readBack([{ buffer: encoded.buffer, offset: 0, size: this.length * bytesPer(dtype) }]);
    return bytes;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.recorder.hasPending) this.recorder.flush();
    for (const buffer of this.owned) this.backend.pool.release(buffer);
    this.owned.length = 0;
    this.idle.length = 0;
    this.decoded.fill(undefined);
    this.backend.watch(this.backend.closeErrorScopes());
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** Submits, reads the regions back, and reports the chunk's WebGPU errors so far. */
  private async readBack(regions: readonly ReadRegion[]): Promise<Uint8Array[]> {
    let scopes: Promise<GPUError | null>[] = [];
    const data = await this.recorder.read(regions, (p) => this.backend.guard(p), () => {
      scopes = this.backend.closeErrorScopes();
      this.backend.openErrorScopes();
    });
    for (const error of await this.backend.guard(Promise.all(scopes))) {
      if (error) throw new GpuOperationError(`WebGPU error in tensor ${this.spec.tensorName}: ${error.message}`);
    }
    this.backend.check();
    return data;
  }

  private binary(op: BinaryOp, a: Operand, b: Operand): Vec {
    if (typeof a === 'number' && typeof b === 'number') return this.fresh({ kind: 'fill', value: scalarBinary(op, a, b) });
    return this.fresh({ kind: 'binary', op: BINARY[op], a: operand(a), b: operand(b) });
  }

  /** Threads per segment of a reduction: about REDUCE_PER_THREAD elements each, partials bounded. */
  private threadsPerSegment(segmentLength: number, segments: number): number {
    const wanted = Math.ceil(segmentLength / REDUCE_PER_THREAD);
    return Math.max(1, Math.min(wanted, Math.floor(REDUCE_MAX_PARTIALS / segments)));
  }

  /**
   * Per-thread double-float partial sums of each segment (the whole chunk or a row) of the
   * expression `a` (times `b`, rounded, for dot), computed in place by the fused kernel.
   */
  private segmentSums(a: Vec, b: Vec | null, segmentLength: number, segments: number, out?: Binding): GpuPartial & { binding: Binding } {
    this.backend.check();
    const parts = this.threadsPerSegment(segmentLength, segments);
    const threads = segments * parts;
    const value = b ? new LazyVec({ kind: 'binary', op: BINARY.mul, a: lazy(a), b: lazy(b) }) : lazy(a);
    const partials = out ?? this.scratch(threads * 8);
    this.fused(value, 'fused_sums', partials, Math.ceil(threads / WG), [segmentLength, parts, threads]);
    return { type: 'pairs', buffer: partials.buffer, outputs: segments, parts, binding: partials };
  }

  /** A per-row value of the chunk (partials per row, then one thread per row), broadcast over its row. */
  private rowBroadcast(kind: 'max' | 'sum', a: Vec): Vec {
    this.backend.check();
    const parts = this.threadsPerSegment(this.cols, this.rows);
    const threads = this.rows * parts;
    const params = (p: ParamSlot): void => {
      p.u32(0, this.cols).u32(1, parts).u32(2, threads).u32(3, this.rows);
    };
    let partials: Lent;
    if (kind === 'sum') {
      partials = this.lend(threads * 8);
      this.segmentSums(a, null, this.cols, this.rows, partials.binding);
    } else {
      const x = this.values(a);
      partials = this.lend(threads * 4);
      this.recorder.dispatch(
        this.kernel('reduce', 'segment_maxes'),
        [this.at(x.binding, 1), this.at(partials.binding, 5)],
        Math.ceil(threads / WG),
        params,
      );
      x.release();
    }
    const rowValues = this.scratch(this.rows * 4);
    this.recorder.dispatch(
      this.kernel('reduce', kind === 'sum' ? 'combine_row_sums' : 'combine_row_maxes'),
      [this.at(partials.binding, kind === 'sum' ? 6 : 7), this.at(rowValues, 4)],
      Math.ceil(this.rows / WG),
      params,
    );
    partials.release();
    return this.fresh({ kind: 'leaf', leaf: { kind: 'rows', buffer: rowValues.buffer, size: rowValues.size } });
  }
}
