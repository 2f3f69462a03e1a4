import type { BackendChunk, ChunkInputBytes, ChunkSpec, ComputeBackend } from '../backend/compute-backend';
import { streamKey } from '../backend/random';
import type { ReductionKind, ReductionToken } from '../backend/reduction';
import type { ChunkOps, Operand, Reduction, Vec } from '../backend/types';
import type { FloatDtype } from '../storage/types';
import { BufferPool } from './buffer-pool';
import { CommandRecorder, type Binding, type ReadRegion } from './command-recorder';
import { requestAdapter, requestDevice, type GpuDeviceInfo, type GpuDeviceOptions } from './device';
import { GpuDeviceLostError, GpuOperationError } from './errors';
import { KernelCache, probeFusedFma, signConsensusVariant, weightedSumVariant, type Kernel, type WeightKind } from './kernels';

export interface WebGpuBackendOptions extends GpuDeviceOptions {
  /**
   * GPU memory the backend aims to stay within (buffers in use plus the free ones it keeps for
   * reuse). Give it the engine's `budgetBytes`: the engine sizes chunks so that a chunk's
   * buffers fit in it. Default 128 MiB.
   */
  readonly budgetBytes?: number;
  /**
   * Use at most this many storage buffers per shader stage (at least 4), below the device's limit,
   * so that tests exercise the multi-pass paths of many-input operations.
   */
  readonly maxStorageBuffersPerStage?: number;
  /** Longest wait for the GPU at one synchronisation point before giving up (default 120 s). */
  readonly syncTimeoutMs?: number;
}

/** GPU memory use of the backend's buffer pool. */
export interface GpuMemoryStats {
  readonly allocatedBytes: number;
  readonly highWaterBytes: number;
}

const HISTOGRAM_BINS = 65536;
const HISTOGRAM_BYTES = HISTOGRAM_BINS * 4;
/** Elements per workgroup block of the segmented sums and of the tie scan (reduce.wgsl, keep_top.wgsl). */
const REDUCE_BLOCK = 4096;
const TIE_BLOCK = 4096;
const WG = 256;
/** Uniform capacity of the generated kernels (weighted_sum.wgsl: 14 vec4 of (hi, lo) pairs; sign_consensus.wgsl: 7 vec4 each). */
const MAX_SCALAR_WEIGHTS = 28;
const MAX_CONSENSUS_TERMS = 28;
/** Chunks whose GPU work may be queued without the host waiting for them. */
const MAX_CHUNKS_IN_FLIGHT = 2;
/** Elements sorted in workgroup memory by rank.wgsl. */
const RANK_LOCAL = 2048;
/** Period rows summed by one thread of periodic_sums. */
const PERIOD_ROWS_PER_GROUP = 64;

/**
 * The WebGPU backend: every ChunkOps operation is one or a few compute dispatches recorded into a
 * command encoder; the chunk's commands are submitted when the engine needs numbers back
 * (reduction partials, the encoded output chunk), and read back through one mapped staging buffer.
 * Inputs are uploaded in their stored dtype and decoded on the GPU; outputs are rounded to the
 * output dtype on the GPU. Numbers agree with the CPU backend (f32 elementwise arithmetic,
 * double-float accumulation where the CPU accumulates in f64).
 */
export class WebGpuBackend implements ComputeBackend {
  readonly name = 'webgpu' as const;
  /** Largest chunk the bindings allow (the widest per-element buffer is 16 bytes). */
  readonly maxChunkElements: number;
  /** Storage buffers one dispatch may bind. */
  readonly storageBuffersPerStage: number;

  readonly pool: BufferPool;
  readonly kernels: KernelCache;
  readonly recorder: CommandRecorder;
  private readonly histograms: GPUBuffer[] = [];
  private readonly inFlight: Promise<unknown>[] = [];
  private lostInfo: { reason: string; message: string } | null = null;
  private deferredError: Error | null = null;
  private readonly lostPromise: Promise<never>;
  private disposed = false;
  private readonly syncTimeoutMs: number;

  static async create(gpu: GPU | undefined, options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const adapter = await requestAdapter(gpu, options);
    const { device, info } = await requestDevice(adapter, options);
    return WebGpuBackend.fromDevice(device, info, options);
  }

  /** A backend on a device from `requestDevice` (runs a start-up probe of the device's fma). */
  static async fromDevice(device: GPUDevice, info: GpuDeviceInfo, options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const fusedFma = await probeFusedFma(device);
    return new WebGpuBackend(device, info, fusedFma, options);
  }

  private constructor(
    readonly device: GPUDevice,
    readonly info: GpuDeviceInfo,
    /** Whether the device's fma() rounds once (else kernels use Dekker products). */
    readonly fusedFma: boolean,
    options: WebGpuBackendOptions = {},
  ) {
    const budget = options.budgetBytes ?? 128 * 1024 * 1024;
    this.syncTimeoutMs = options.syncTimeoutMs ?? 120_000;
    this.storageBuffersPerStage = Math.max(
      4,
      Math.min(info.maxStorageBuffersPerShaderStage, options.maxStorageBuffersPerStage ?? Infinity),
    );
    this.maxChunkElements = Math.floor(Math.min(info.maxStorageBufferBindingSize, info.maxBufferSize) / 16);
    this.pool = new BufferPool(device, budget);
    this.kernels = new KernelCache(device, fusedFma);
    this.recorder = new CommandRecorder(device, this.pool, info.maxComputeWorkgroupsPerDimension);
    this.lostPromise = device.lost.then((lost) => {
      if (!this.disposed) this.lostInfo = { reason: lost.reason ?? 'unknown', message: lost.message ?? '' };
      throw this.lostError();
    });
    this.lostPromise.catch(() => undefined);
    const onError = (event: Event): void => {
      const error = (event as GPUUncapturedErrorEvent).error;
      this.deferredError ??= new GpuOperationError(`WebGPU error: ${error?.message ?? String(error)}`);
    };
    if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
    else (device as { onuncapturederror: unknown }).onuncapturederror = onError;
  }

  get memory(): GpuMemoryStats {
    return { allocatedBytes: this.pool.allocatedBytes, highWaterBytes: this.pool.highWaterBytes };
  }

  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk {
    this.check();
    return new WebGpuChunk(this, spec, inputs);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.recorder.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), delay(5000)]).catch(() => undefined);
    for (const h of this.histograms) this.pool.release(h);
    this.histograms.length = 0;
    this.recorder.dispose();
    this.pool.destroyAll();
    this.device.destroy();
  }

  /** Throws if the device was lost or an earlier command failed. */
  check(): void {
    if (this.disposed) throw new Error('internal: the WebGPU backend was disposed');
    if (this.lostInfo) throw this.lostError();
    if (this.deferredError) throw this.deferredError;
    if (this.kernels.compileErrors.length > 0) {
      throw new GpuOperationError(`a WGSL kernel failed to compile: ${this.kernels.compileErrors.join('\n')}`);
    }
  }

  /** Waits for `p`, failing fast when the device is lost and after the sync timeout. */
  guard<T>(p: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new GpuOperationError(`the GPU did not answer within ${this.syncTimeoutMs / 1000} s`)),
        this.syncTimeoutMs,
      );
    });
    return Promise.race([p, this.lostPromise, timeout])
      .catch((error: unknown) => {
        throw this.lostInfo ? this.lostError() : error;
      })
      .finally(() => clearTimeout(timer));
  }

  /** The accumulator of the `ordinal`-th histogram of a chunk (kept across a pass's chunks). */
  histogram(ordinal: number): GPUBuffer {
    while (this.histograms.length <= ordinal) {
      this.histograms.push(this.pool.acquire('storage', HISTOGRAM_BYTES, 'alloy histogram'));
    }
    return this.histograms[ordinal];
  }

  /** Records errors of a finished chunk's scopes, to be thrown at the next check. */
  watch(scopes: Promise<GPUError | null>[]): void {
    for (const scope of scopes) {
      scope
        .then((error) => {
          if (error) this.deferredError ??= new GpuOperationError(`WebGPU error: ${error.message}`);
        })
        .catch(() => undefined);
    }
  }

  /** Lets at most MAX_CHUNKS_IN_FLIGHT chunks' work queue up on the GPU while the host moves on. */
  async throttle(): Promise<void> {
    this.inFlight.push(this.device.queue.onSubmittedWorkDone());
    while (this.inFlight.length > MAX_CHUNKS_IN_FLIGHT) await this.guard(this.inFlight.shift()!);
  }

  /** Forgets queued chunks the host has since waited for (a readback implies they are done). */
  settled(): void {
    this.inFlight.length = 0;
  }

  private lostError(): GpuDeviceLostError {
    return new GpuDeviceLostError(this.lostInfo?.reason ?? 'unknown', this.lostInfo?.message ?? '');
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A chunk-sized f32 vector in a GPU buffer. */
class GpuVec {
  constructor(
    readonly buffer: GPUBuffer,
    readonly length: number,
  ) {}
  bind(binding: number): Binding {
    return { binding, buffer: this.buffer, size: Math.max(4, this.length * 4) };
  }
}

/**
 * What a reduction token holds until it is read back: double-float pairs (`outputs` results of
 * `parts` pairs each, laid out result-major or part-major), or a histogram accumulator that only
 * the pass's last chunk reads.
 */
type GpuPartial =
  | {
      readonly type: 'pairs';
      readonly buffer: GPUBuffer;
      readonly outputs: number;
      readonly parts: number;
      readonly partMajor?: boolean;
    }
  | { readonly type: 'histogram'; readonly buffer: GPUBuffer; readonly final: boolean };

const asVec = (v: GpuVec): Vec => v as unknown as Vec;
function gpuVec(v: Vec): GpuVec {
  if (!(v instanceof GpuVec)) throw new Error('internal: a vector of another backend was passed to the WebGPU backend');
  return v;
}
const token = <T extends number | Float64Array>(kind: ReductionKind, partial: GpuPartial): Reduction<T> =>
  ({ kind, partial }) as ReductionToken as unknown as Reduction<T>;

const UNARY = { neg: 0, abs: 1, sign: 2, sqrt: 3, exp: 4, log: 5 } as const;
const BINARY = { add: 0, sub: 1, mul: 2, div: 3, min: 4, max: 5, gt: 6, ge: 7, eq: 8 } as const;
type BinaryOp = keyof typeof BINARY;
const DTYPE_CODE: Readonly<Record<FloatDtype, number>> = { F32: 0, F16: 1, BF16: 2 };

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

class WebGpuChunk implements BackendChunk, ChunkOps {
  readonly ops: ChunkOps = this;
  readonly chunkIndex: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
  private readonly decoded: (GpuVec | undefined)[];
  private readonly owned: GPUBuffer[] = [];
  private histogramCount = 0;
  private released = false;
  private readonly groups: number;
  private readonly recorder: CommandRecorder;
  private readonly device: GPUDevice;

  constructor(
    private readonly backend: WebGpuBackend,
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
    this.recorder = backend.recorder;
    this.device = backend.device;
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
  }

  // ---- buffers -------------------------------------------------------------------------------

  private scratch(bytes: number, label?: string): GPUBuffer {
    const buffer = this.backend.pool.acquire('storage', Math.max(4, bytes), label);
    this.owned.push(buffer);
    return buffer;
  }

  private vec(): GpuVec {
    return new GpuVec(this.scratch(this.length * 4), this.length);
  }

  /** Uploads bytes (any length, any alignment) into a fresh storage buffer, zero-padded to words. */
  private upload(bytes: Uint8Array): Binding & { buffer: GPUBuffer } {
    const size = Math.max(4, Math.ceil(bytes.length / 4) * 4);
    const buffer = this.scratch(size);
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
    const out = this.vec();
    this.recorder.dispatch(
      this.kernel('codec', 'decode', { DTYPE: DTYPE_CODE[input.dtype] }),
      [{ binding: 1, buffer: raw.buffer, size: raw.size }, out.bind(2)],
      this.groups,
      (p) => p.u32(0, this.length),
    );
    this.decoded[i] = out;
    return asVec(out);
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
    return this.unary('neg', a);
  }
  abs(a: Vec): Vec {
    return this.unary('abs', a);
  }
  sign(a: Vec): Vec {
    return this.unary('sign', a);
  }
  sqrt(a: Vec): Vec {
    return this.unary('sqrt', a);
  }
  exp(a: Vec): Vec {
    return this.unary('exp', a);
  }
  log(a: Vec): Vec {
    return this.unary('log', a);
  }

  rowRanks(a: Vec): Vec {
    this.backend.check();
    const cols = this.cols;
    const p = 2 ** Math.ceil(Math.log2(cols));
    const total = this.rows * p;
    const keys: Binding = { binding: 2, buffer: this.scratch(total * 8), size: total * 8 };
    const out = this.vec();
    const params = (k: number, j: number) => (w: { u32(word: number, v: number): unknown }) => {
      w.u32(0, this.length);
      w.u32(1, cols);
      w.u32(2, p);
      w.u32(3, total);
      w.u32(4, k);
      w.u32(5, j);
    };
    const perElement = Math.ceil(total / WG);
    const tiles = Math.ceil(total / RANK_LOCAL);
    this.recorder.dispatch(this.kernel('rank', 'load_keys'), [gpuVec(a).bind(1), keys], perElement, params(0, 0));
    this.recorder.dispatch(this.kernel('rank', 'sort_local'), [keys], tiles, params(0, 0));
    for (let k = 2 * RANK_LOCAL; k <= p; k *= 2) {
      for (let j = k / 2; j >= RANK_LOCAL; j /= 2) {
        this.recorder.dispatch(this.kernel('rank', 'merge_global'), [keys], Math.ceil(total / 2 / WG), params(k, j));
      }
      this.recorder.dispatch(this.kernel('rank', 'merge_local'), [keys], tiles, params(k, 0));
    }
    this.recorder.dispatch(this.kernel('rank', 'scatter'), [keys, out.bind(3)], perElement, params(0, 0));
    return asVec(out);
  }

  where(cond: Vec, a: Operand, b: Operand): Vec {
    this.backend.check();
    const out = this.vec();
    const bindings: Binding[] = [gpuVec(cond).bind(3), out.bind(4)];
    if (typeof a !== 'number') bindings.push(gpuVec(a).bind(1));
    if (typeof b !== 'number') bindings.push(gpuVec(b).bind(2));
    const entry = `where_${typeof a === 'number' ? 's' : 'v'}${typeof b === 'number' ? 's' : 'v'}`;
    this.recorder.dispatch(this.kernel('elementwise', entry), bindings, this.groups, (p) => {
      p.u32(0, this.length);
      if (typeof a === 'number') p.f32(4, a);
      if (typeof b === 'number') p.f32(5, b);
    });
    return asVec(out);
  }

  weightedSum(terms: readonly Vec[], weights: readonly Operand[]): Vec {
    this.backend.check();
    if (terms.length !== weights.length) throw new Error('internal: weightedSum needs one weight per term');
    if (terms.length === 0) return this.fill(0);
    const out = this.vec();
    // Greedy passes: as many terms as the storage-buffer limit (out takes one) and uniforms allow.
    const capacity = this.backend.storageBuffersPerStage - 1;
    let first = 0;
    while (first < terms.length) {
      const kinds: WeightKind[] = [];
      let used = 0;
      let scalars = 0;
      for (let j = first; j < terms.length; j++) {
        const kind: WeightKind = typeof weights[j] === 'number' ? 's' : 'v';
        const cost = kind === 'v' ? 2 : 1;
        if (used + cost > capacity || (kind === 's' && scalars === MAX_SCALAR_WEIGHTS)) break;
        kinds.push(kind);
        used += cost;
        if (kind === 's') scalars++;
      }
      const bindings: Binding[] = [out.bind(1)];
      let binding = 2;
      kinds.forEach((kind, k) => {
        bindings.push(gpuVec(terms[first + k]).bind(binding++));
        if (kind === 'v') bindings.push(gpuVec(weights[first + k] as Vec).bind(binding++));
      });
      const from = first;
      this.recorder.dispatch(
        this.kernel('weightedSum', 'weighted_sum', {}, weightedSumVariant(kinds)),
        bindings,
        this.groups,
        (p) => {
          p.u32(0, this.length).u32(1, from > 0 ? 1 : 0);
          kinds.forEach((kind, k) => {
            if (kind !== 's') return;
            // The CPU multiplies by the f64 weight: pass it as hi + lo.
            const w = weights[from + k] as number;
            const hi = Math.fround(w);
            p.f32(4 + 2 * k, hi).f32(5 + 2 * k, Number.isFinite(hi) ? w - hi : 0);
          });
        },
      );
      first += kinds.length;
    }
    return asVec(out);
  }

  random(stream: number): Vec {
    this.backend.check();
    const key = streamKey(this.spec.seed, this.spec.tensorName, stream);
    const out = this.vec();
    const lo = this.start % 2 ** 32;
    const hi = Math.floor(this.start / 2 ** 32);
    this.recorder.dispatch(this.kernel('elementwise', 'random'), [out.bind(4)], this.groups, (p) =>
      p.u32(0, this.length).u32(1, key).u32(2, lo).u32(3, hi),
    );
    return asVec(out);
  }

  perRow(values: Float64Array): Vec {
    this.backend.check();
    const rowValues = new Float32Array(this.rows);
    for (let r = 0; r < this.rows; r++) rowValues[r] = values[this.rowStart + r];
    const buffer = this.upload(new Uint8Array(rowValues.buffer));
    const out = this.vec();
    this.recorder.dispatch(
      this.kernel('elementwise', 'per_row'),
      [{ binding: 1, buffer: buffer.buffer, size: buffer.size }, out.bind(4)],
      this.groups,
      (p) => p.u32(0, this.length).u32(1, this.cols),
    );
    return asVec(out);
  }

  // ---- reductions ----------------------------------------------------------------------------

  sum(a: Vec): Reduction<number> {
    return token('sum', this.segments('segment_sums', a, null, this.length, 1));
  }

  rowSums(a: Vec): Reduction<Float64Array> {
    return token('rowSums', this.segments('segment_sums', a, null, this.cols, this.rows));
  }

  chunkSums(a: Vec): Reduction<Float64Array> {
    return token('chunkSums', this.segments('segment_sums', a, null, this.length, 1));
  }

  dot(a: Vec, b: Vec): Reduction<number> {
    return token('sum', this.segments('segment_dots', a, b, this.length, 1));
  }

  rowMaxBroadcast(a: Vec): Vec {
    return this.rowBroadcast('row_max_values', a);
  }

  rowSumBroadcast(a: Vec): Vec {
    return this.rowBroadcast('row_sum_values', a);
  }

  periodicSums(a: Vec, period: number): Reduction<Float64Array> {
    this.backend.check();
    if (!Number.isInteger(period) || period < 1) throw new Error(`internal: periodicSums period ${period}`);
    const periodRows = Math.ceil(this.length / period);
    const rowsPerGroup = Math.min(periodRows, PERIOD_ROWS_PER_GROUP);
    const parts = Math.ceil(periodRows / rowsPerGroup);
    const groupsPerRow = Math.ceil(period / WG);
    const buffer = this.scratch(parts * period * 8);
    this.recorder.dispatch(
      this.kernel('periodic', 'periodic_sums'),
      [gpuVec(a).bind(1), { binding: 2, buffer, size: parts * period * 8 }],
      parts * groupsPerRow,
      (p) =>
        p.u32(0, this.length).u32(1, period).u32(2, this.start % period).u32(3, groupsPerRow)
          .u32(4, rowsPerGroup).u32(5, parts * groupsPerRow),
    );
    return token('periodicSums', { type: 'pairs', buffer, outputs: period, parts, partMajor: true });
  }

  periodic(values: Float64Array): Vec {
    this.backend.check();
    const period = values.length;
    if (period < 1) throw new Error('internal: periodic needs at least one value');
    const upload = this.upload(new Uint8Array(Float32Array.from(values).buffer));
    const out = this.vec();
    this.recorder.dispatch(
      this.kernel('periodic', 'periodic'),
      [{ binding: 3, buffer: upload.buffer, size: upload.size }, out.bind(4)],
      this.groups,
      (p) => p.u32(0, this.length).u32(1, period).u32(2, this.start % period),
    );
    return asVec(out);
  }

  magnitudeHistogram(a: Vec, high: number | null): Reduction<Float64Array> {
    this.backend.check();
    const hist = this.backend.histogram(this.histogramCount++);
    if (this.chunkIndex === 0) this.recorder.clear(hist, 0, HISTOGRAM_BYTES);
    this.recorder.dispatch(
      this.kernel('histogram', 'magnitude_histogram', { MODE: high === null ? 0 : 1 }),
      [gpuVec(a).bind(1), { binding: 2, buffer: hist, size: HISTOGRAM_BYTES }],
      this.groups,
      (p) => p.u32(0, this.length).u32(1, high ?? 0),
    );
    return token('histogram', { type: 'histogram', buffer: hist, final: this.chunkIndex === this.spec.chunkCount - 1 });
  }

  keepTopMagnitude(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec {
    this.backend.check();
    const x = gpuVec(a);
    const t = Math.fround(threshold);
    // Below zero every magnitude is larger: everything is kept (the CPU gives x · 1).
    if (t < 0) return a;
    const tbits = bitsOf(t) & 0x7fffffff;
    const remaining = tiesAllowed - tiesBefore;
    const out = this.vec();
    if (remaining <= 0 || remaining >= this.length) {
      this.recorder.dispatch(
        this.kernel('keepTop', 'keep_simple', { KEEP_TIES: remaining > 0 ? 1 : 0 }),
        [x.bind(1), out.bind(2)],
        this.groups,
        (p) => p.u32(0, this.length).u32(1, tbits),
      );
      return asVec(out);
    }
    const blocks = Math.ceil(this.length / TIE_BLOCK);
    const blockTies = this.scratch(blocks * 4);
    const params = (p: { u32(w: number, v: number): unknown }): void => {
      p.u32(0, this.length);
      p.u32(1, tbits);
      p.u32(2, remaining);
      p.u32(3, blocks);
    };
    const counts: Binding = { binding: 3, buffer: blockTies, size: blocks * 4 };
    this.recorder.dispatch(this.kernel('keepTop', 'count_ties'), [x.bind(1), counts], blocks, params);
    this.recorder.dispatch(this.kernel('keepTop', 'scan_blocks'), [counts], 1, params);
    this.recorder.dispatch(
      this.kernel('keepTop', 'apply_counted'),
      [x.bind(1), out.bind(2), { ...counts, binding: 4 }],
      blocks,
      params,
    );
    return asVec(out);
  }

  signConsensus(terms: readonly Vec[], scales: readonly number[], weights: readonly number[] | null): Vec {
    this.backend.check();
    const n = terms.length;
    if (scales.length !== n || (weights && weights.length !== n)) {
      throw new Error('internal: signConsensus needs one scale (and weight) per term');
    }
    if (n === 0) return this.fill(0);
    const normalize = weights !== null ? 1 : 0;
    const out = this.vec();
    const limit = this.backend.storageBuffersPerStage;
    const params = (from: number, count: number, first: boolean, last: boolean) => (p: { u32(w: number, v: number): unknown; f32(w: number, v: number): unknown }) => {
      p.u32(0, this.length);
      p.u32(1, normalize);
      p.u32(2, first ? 1 : 0);
      p.u32(3, last ? 1 : 0);
      for (let k = 0; k < count; k++) {
        p.f32(4 + k, scales[from + k]);
        p.f32(4 + MAX_CONSENSUS_TERMS + k, weights ? weights[from + k] : 0);
      }
    };
    const termBindings = (from: number, count: number): Binding[] =>
      Array.from({ length: count }, (_, k) => gpuVec(terms[from + k]).bind(4 + k));

    const fusedMax = Math.min(limit - 1, MAX_CONSENSUS_TERMS);
    if (n <= fusedMax) {
      this.recorder.dispatch(
        this.kernel('signConsensus', 'fused', {}, signConsensusVariant(n)),
        [out.bind(1), ...termBindings(0, n)],
        this.groups,
        params(0, n, true, true),
      );
      return asVec(out);
    }
    // More terms than one dispatch can bind: Σ W_j over groups of terms first, then the agreeing
    // sums over groups, with per-element double-float state in scratch buffers.
    const total: Binding = { binding: 2, buffer: this.scratch(this.length * 8), size: this.length * 8 };
    const agreed: Binding = { binding: 3, buffer: this.scratch(this.length * 16), size: this.length * 16 };
    const totalMax = Math.min(limit - 1, MAX_CONSENSUS_TERMS);
    for (let from = 0; from < n; from += totalMax) {
      const count = Math.min(totalMax, n - from);
      this.recorder.dispatch(
        this.kernel('signConsensus', 'total_pass', {}, signConsensusVariant(count)),
        [total, ...termBindings(from, count)],
        this.groups,
        params(from, count, from === 0, false),
      );
    }
    const mixMax = Math.min(limit - 3, MAX_CONSENSUS_TERMS);
    for (let from = 0; from < n; from += mixMax) {
      const count = Math.min(mixMax, n - from);
      this.recorder.dispatch(
        this.kernel('signConsensus', 'mix_pass', {}, signConsensusVariant(count)),
        [out.bind(1), total, agreed, ...termBindings(from, count)],
        this.groups,
        params(from, count, from === 0, from + count === n),
      );
    }
    return asVec(out);
  }

  // ---- results -------------------------------------------------------------------------------

  async readPartials(tokens: readonly ReductionToken[]): Promise<(number | ArrayLike<number>)[]> {
    this.backend.check();
    const partials = tokens.map((t) => t.partial as GpuPartial);
    const regions: ReadRegion[] = [];
    for (const p of partials) {
      if (p.type === 'histogram') {
        if (p.final) regions.push({ buffer: p.buffer, offset: 0, size: HISTOGRAM_BYTES });
      } else {
        regions.push({ buffer: p.buffer, offset: 0, size: p.outputs * p.parts * 8 });
      }
    }
    if (regions.length === 0) {
      // Only histograms that go on accumulating on the GPU: nothing to wait for yet.
      this.recorder.flush();
      await this.backend.throttle();
      return tokens.map(() => []);
    }
    const data = await this.readBack(regions);
    let next = 0;
    return partials.map((p, i) => {
      if (p.type === 'histogram') return p.final ? new Uint32Array(data[next++].buffer) : [];
      const values = new Float32Array(data[next++].buffer);
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
    const x = gpuVec(v);
    const words = dtype === 'F32' ? this.length : Math.ceil(this.length / 2);
    const encoded = this.scratch(words * 4);
    this.recorder.dispatch(
      this.kernel('codec', 'encode', { DTYPE: DTYPE_CODE[dtype] }),
      [x.bind(3), { binding: 4, buffer: encoded, size: Math.max(4, words * 4) }],
      Math.ceil(words / WG),
      (p) => p.u32(0, this.length),
    );
    const [bytes] = await this.readBack([{ buffer: encoded, offset: 0, size: this.length * bytesPer(dtype) }]);
    return bytes;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.recorder.hasPending) this.recorder.flush();
    for (const buffer of this.owned) this.backend.pool.release(buffer);
    this.owned.length = 0;
    this.decoded.fill(undefined);
    this.backend.watch([this.device.popErrorScope(), this.device.popErrorScope()]);
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** Submits, reads the regions back, and reports the chunk's WebGPU errors so far. */
  private async readBack(regions: readonly ReadRegion[]): Promise<Uint8Array[]> {
    let scopes: Promise<GPUError | null>[] = [];
    const data = await this.recorder.read(regions, (p) => this.backend.guard(p), () => {
      scopes = [this.device.popErrorScope(), this.device.popErrorScope()];
      this.device.pushErrorScope('out-of-memory');
      this.device.pushErrorScope('validation');
    });
    this.backend.settled();
    for (const error of await this.backend.guard(Promise.all(scopes))) {
      if (error) throw new GpuOperationError(`WebGPU error in tensor ${this.spec.tensorName}: ${error.message}`);
    }
    this.backend.check();
    return data;
  }

  private fill(value: number): Vec {
    const out = this.vec();
    this.recorder.dispatch(this.kernel('elementwise', 'fill'), [out.bind(4)], this.groups, (p) =>
      p.u32(0, this.length).f32(4, value),
    );
    return asVec(out);
  }

  private unary(op: keyof typeof UNARY, a: Vec): Vec {
    this.backend.check();
    const out = this.vec();
    this.recorder.dispatch(
      this.kernel('elementwise', 'unary', { OP: UNARY[op] }),
      [gpuVec(a).bind(1), out.bind(4)],
      this.groups,
      (p) => p.u32(0, this.length),
    );
    return asVec(out);
  }

  private binary(op: BinaryOp, a: Operand, b: Operand): Vec {
    this.backend.check();
    if (typeof a === 'number' && typeof b === 'number') return this.fill(scalarBinary(op, a, b));
    const out = this.vec();
    const bindings: Binding[] = [out.bind(4)];
    if (typeof a !== 'number') bindings.push(gpuVec(a).bind(1));
    if (typeof b !== 'number') bindings.push(gpuVec(b).bind(2));
    const entry = typeof a === 'number' ? 'binary_sv' : typeof b === 'number' ? 'binary_vs' : 'binary_vv';
    this.recorder.dispatch(this.kernel('elementwise', entry, { OP: BINARY[op] }), bindings, this.groups, (p) => {
      p.u32(0, this.length);
      if (typeof a === 'number') p.f32(4, a);
      if (typeof b === 'number') p.f32(5, b);
    });
    return asVec(out);
  }

  /** One workgroup per block of REDUCE_BLOCK elements of each segment (the whole chunk or a row). */
  private segments(entry: 'segment_sums' | 'segment_dots', a: Vec, b: Vec | null, segmentLength: number, segments: number): GpuPartial {
    this.backend.check();
    const parts = Math.max(1, Math.ceil(segmentLength / REDUCE_BLOCK));
    const groups = segments * parts;
    const buffer = this.scratch(groups * 8);
    const bindings: Binding[] = [gpuVec(a).bind(1), { binding: 2, buffer, size: groups * 8 }];
    if (b) bindings.push(gpuVec(b).bind(3));
    this.recorder.dispatch(this.kernel('reduce', entry), bindings, groups, (p) =>
      p.u32(0, segmentLength).u32(1, parts).u32(2, groups),
    );
    return { type: 'pairs', buffer, outputs: segments, parts };
  }

  /** A per-row value of the chunk (one workgroup per row), broadcast over its row. */
  private rowBroadcast(entry: 'row_max_values' | 'row_sum_values', a: Vec): Vec {
    this.backend.check();
    const rowValues = this.scratch(this.rows * 4);
    this.recorder.dispatch(
      this.kernel('reduce', entry),
      [gpuVec(a).bind(1), { binding: 4, buffer: rowValues, size: this.rows * 4 }],
      this.rows,
      (p) => p.u32(0, this.cols).u32(1, 1).u32(2, this.rows),
    );
    const out = this.vec();
    this.recorder.dispatch(
      this.kernel('elementwise', 'per_row'),
      [{ binding: 1, buffer: rowValues, size: this.rows * 4 }, out.bind(4)],
      this.groups,
      (p) => p.u32(0, this.length).u32(1, this.cols),
    );
    return asVec(out);
  }
}
