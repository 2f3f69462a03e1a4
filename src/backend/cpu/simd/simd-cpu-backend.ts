import { countNonFinite, wordLayout, type NonFiniteCounts } from '../../../storage/non-finite';
import type { FileRange, FloatDtype } from '../../../storage/types';
import type { BackendChunk, ChunkInputBytes, ChunkNonFinite, ChunkSpec, ComputeBackend } from '../../compute-backend';
import { pcgHash, streamKey } from '../../random';
import type { Partial, ReductionKind, ReductionToken } from '../../reduction';
import { SpareBuffers } from '../../spare-buffers';
import type { ChunkOps, Operand, Reduction, Vec } from '../../types';
import { WasmHeap } from './wasm-heap';
import { ABS, ADD, DIV, EQ, GE, GT, MAX, MIN, MUL, NEG, SIGN, SQRT, SUB, type Kernels } from './wasm-kernels';
import { cpuMatrixOps } from '../cpu-matrix-ops';

/**
 * The CPU backend with its vectors in WebAssembly linear memory and its loops in SIMD kernels
 * (assembly/kernels.ts). Every op returns the bytes the reference CpuBackend returns; the few ops
 * that are rare (rowMaxBroadcast, exp, log) run the reference's JavaScript
 * over views of the same memory. Inputs are copied into the memory once per chunk and decoded
 * there; nothing else crosses between JavaScript and WebAssembly per op.
 */
export class SimdCpuBackend implements ComputeBackend {
  readonly name = 'cpu' as const;
  readonly countsNonFinite = true;
  /** The JavaScript reference: the forward pass's time is in its cache-blocked matmul. */
  readonly matrix = cpuMatrixOps;
  private readonly heap: WasmHeap;
  private readonly kept: KeptBlocks;
  private readonly spares = new SpareBuffers();

  /** `readInto` reads the inputs given as file ranges (a pool worker's; none elsewhere). */
  constructor(
    private readonly kernels: Kernels,
    private readonly readInto?: FileRangeReader,
  ) {
    this.heap = new WasmHeap(kernels.memory, kernels.heapBase());
    this.kept = new KeptBlocks(this.heap);
  }

  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk {
    return new SimdChunk(spec, inputs, this.kernels, this.heap, this.kept, this.spares, this.readInto);
  }

  /** Encodes later chunks into the buffer of these written output bytes. */
  recycle(bytes: Uint8Array): void {
    this.spares.put(bytes);
  }

  /**
   * Keeps vector `v` of the chunk whose ops are `ops` in memory past that chunk's release (a pool
   * worker's cache across passes), without copying it (a bf16 input as its raw bytes) — or, with
   * `bits` (v a 0/1 mask), as one bit per element: `use` hands it to a later chunk, `drop` frees it.
   */
  keep(ops: ChunkOps, v: Vec, bits = false): KeptVector {
    return (ops as SimdChunk).keep(v, bits);
  }

  /** A vector of the chunk whose ops are `ops` that reads the kept vector (no op writes into it). */
  use(ops: ChunkOps, kept: KeptVector): Vec {
    return (ops as SimdChunk).use(kept);
  }

  drop(kept: KeptVector): void {
    this.kept.drop(kept);
  }

  async dispose(): Promise<void> {}
}

/**
 * A chunk-sized f32 vector at `ptr` in the kernels' memory, or one not written yet (ptr −1) whose
 * `deferred` says how to make it: some ops read it as it is, any other op first writes it out as
 * f32 once (SimdChunk.p), with the bytes the ops one by one would give.
 */
class WasmVec {
  /**
   * A 0/1 mask's bits as packMask packs them, where they exist without a sweep of their own:
   * written by the keepBelow that drew the mask, or kept by an earlier pass (`bits`). −1 if not.
   */
  packed = -1;
  constructor(
    public ptr: number,
    readonly deferred: Deferred | null = null,
  ) {}
}

/**
 * The vectors kept unwritten, and who reads them as they are:
 * - `raw`: a bf16 input's bytes at `raw`, which weightedSum and binary ops decode as they go;
 * - `difference`: `minuend − subtrahend` of two vectors (a task vector), which weightedSum subtracts as it goes,
 *   whose Gram matrix (model_stock's dots) the gram kernel computes without writing them, whose
 *   magnitudes and its kept values' keepBelowSums adds without writing either (DARE's rescale),
 *   and which keepBelow writes as it subtracts it where a pending sum reads its magnitudes;
 * - `ranked`: the row ranks of `source` with scalar steps applied (binaryVS, or binarySV where the
 *   scalar comes first), which `gt` compares with a vector mostly without ranking (rowRanksGreater);
 * - `drawn`: the random stream from `base`, or with `below` the mask below > stream;
 * - `bits`: a 0/1 mask kept packed by an earlier pass (at `packed`);
 * - `masked`: x · mask (`mul`) for a mask that is `drawn` with `below` or packed, written in the
 *   sweep that draws the mask and packs its bits (keepBelow), or that unpacks them (keepBits); a
 *   sum of their magnitudes draws and packs the mask without writing them (keepBelowSums), and a
 *   sign consensus of such task vectors reads them unwritten (signConsensusKept, DARE's output pass);
 * - `abs`: |source|, which `sum` adds without writing it (the chains kernel's magnitude mask).
 */
type Deferred =
  | { readonly kind: 'raw'; readonly raw: number }
  | { readonly kind: 'difference'; readonly minuend: WasmVec; readonly subtrahend: WasmVec }
  | { readonly kind: 'ranked'; readonly source: WasmVec; readonly steps: readonly RankStep[] }
  | { readonly kind: 'drawn'; readonly base: number; readonly below?: number }
  | { readonly kind: 'bits' }
  | { readonly kind: 'masked'; readonly x: WasmVec; readonly mask: WasmVec }
  | { readonly kind: 'abs'; readonly source: WasmVec };

interface RankStep {
  readonly op: number;
  readonly scalarFirst: boolean;
  readonly scalar: number;
}

/** The deferred form of kind `kind` of an operand not written yet, or null. */
function deferredAs<K extends Deferred['kind']>(v: Operand, kind: K): Extract<Deferred, { kind: K }> | null {
  if (typeof v === 'number') return null;
  const w = wasmVec(v);
  return w.ptr < 0 && w.deferred?.kind === kind ? (w.deferred as Extract<Deferred, { kind: K }>) : null;
}

/**
 * The pointers a kernel subtracts a task vector from as it sweeps (signConsensusKept,
 * keepBelowSums): two raw bf16 inputs (`bf16`), or two written f32 vectors; null for any other.
 */
function sweptDifference(difference: Extract<Deferred, { kind: 'difference' }>): { x: number; xm: number; bf16: boolean } | null {
  const { minuend: x, subtrahend: xm } = difference;
  const [xRaw, xmRaw] = [x, xm].map((v) => deferredAs(asVec(v), 'raw')?.raw);
  if (xRaw !== undefined && xmRaw !== undefined) return { x: xRaw, xm: xmRaw, bf16: true };
  return x.ptr >= 0 && xm.ptr >= 0 ? { x: x.ptr, xm: xm.ptr, bf16: false } : null;
}

/** Most scalar steps a ranked vector takes before it is written out (DELLA's keep probabilities take 3). */
const MAX_RANK_STEPS = 8;

/**
 * A dot product (of the vectors at `x` and `y`) or a sum (of the vector at `x`, its values ANDed
 * with `mask`: ALL_BITS, or MAGNITUDE_BITS for a sum of |x|; `y` is −1) of a chunk, computed when
 * the chunk's partials are read, in sweeps with the chunk's other pending chains
 * (SimdChunk.computeChains). Its vectors stay where they are until the chunk is released, and no
 * op writes into a vector once it is made.
 */
class PendingChain {
  value: number | undefined = undefined;
  constructor(
    public x: number,
    public y: number,
    readonly mask = ALL_BITS,
    /** A dot of two differences not written yet (x and y are −1 until they are): `gram` may take it. */
    readonly differences?: readonly [Vec, Vec],
    /** A sum of the magnitudes of a difference not written yet (x is −1 until it is): keepBelow may write it. */
    readonly magnitudesOf?: Vec,
  ) {}
}

const ALL_BITS = 0xffffffff;
const MAGNITUDE_BITS = 0x7fffffff;

/** Fills `target` (exactly `range.length` bytes) with a file range's bytes, synchronously. */
export type FileRangeReader = (range: FileRange, target: Uint8Array) => void;

/**
 * A vector kept in the kernels' memory across chunks (SimdCpuBackend.keep): f32 values, or `bits`,
 * a packed 0/1 mask of `length` elements, or `raw`, a bf16 input's bytes as they were read.
 */
export interface KeptVector {
  readonly ptr: number;
  readonly bytes: number;
  readonly bits?: { readonly length: number };
  readonly raw?: { readonly length: number };
}

/**
 * The blocks kept past their chunk's release, with how many keepers each has (a pool may keep the
 * same vector under two names): a block returns to the heap when its last keeper drops it.
 */
class KeptBlocks {
  private readonly refs = new Map<number, number>();

  constructor(private readonly heap: WasmHeap) {}

  has(ptr: number): boolean {
    return this.refs.has(ptr);
  }

  add(ptr: number): void {
    this.refs.set(ptr, (this.refs.get(ptr) ?? 0) + 1);
  }

  drop(kept: KeptVector): void {
    const refs = this.refs.get(kept.ptr);
    if (refs === undefined) throw new Error(`internal: kept vector at ${kept.ptr} dropped twice`);
    if (refs > 1) this.refs.set(kept.ptr, refs - 1);
    else {
      this.refs.delete(kept.ptr);
      this.heap.release(kept.ptr, kept.bytes);
    }
  }
}

/** Most pairs of chains one sweep takes (more measured slower: see assembly/kernels.ts). */
const MAX_PAIRS_PER_SWEEP = 3;

const asVec = (v: WasmVec): Vec => v as unknown as Vec;
const wasmVec = (v: Vec): WasmVec => v as unknown as WasmVec;
const token = <T extends number | Float64Array>(kind: ReductionKind, partial: unknown): Reduction<T> =>
  ({ kind, partial }) as ReductionToken as unknown as Reduction<T>;

function bytesPer(dtype: FloatDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_24 = 16777216;

/**
 * The uniforms of `random` are the 24-bit hashes h over 2^24, so t > h/2^24 exactly where
 * h < ⌈t·2^24⌉ (t·2^24 is exact in f64): that bound, from 0 (t ≤ 0 or NaN: none) to 2^24 (all).
 */
function hashesBelow(t: number): number {
  return t > 0 ? Math.min(Math.ceil(t * TWO_POW_24), TWO_POW_24) : 0;
}

/** Bytes of a 0/1 mask of `length` elements kept packed, a bit per element in whole 16-element words (packMask). */
export function packedMaskBytes(length: number): number {
  return Math.ceil(length / 16) * 2;
}

/** Whether an input's rows are the chunk's own, not those of a wider embedding cut to the chunk's width. */
function fullRows(input: { readonly cols: number }, chunk: { readonly rows: number; readonly cols: number }): boolean {
  return input.cols === chunk.cols || chunk.rows <= 1;
}

/**
 * Bytes an element of an input takes when a chunk holds (and keeps) it: a bf16 input with full
 * rows stays raw, any other is decoded to f32.
 */
export function heldBytesPerElement(input: { readonly dtype: FloatDtype; readonly cols: number }, chunk: { readonly rows: number; readonly cols: number }): number {
  return input.dtype === 'BF16' && fullRows(input, chunk) ? 2 : 4;
}

class SimdChunk implements BackendChunk, ChunkOps {
  readonly ops: ChunkOps = this;
  readonly chunkIndex: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
  private readonly decoded: (WasmVec | undefined)[];
  private readonly owned: { ptr: number; bytes: number }[] = [];
  private released = false;
  /** NaN/±Inf of the inputs marked countNonFinite (counted as they are copied in) and of the output. */
  private readonly inputCounts: (NonFiniteCounts | null)[];
  private outputCounts: NonFiniteCounts | null = null;
  /** The dots and sums asked for since partials were last read. */
  private pending: PendingChain[] = [];

  constructor(
    private readonly spec: ChunkSpec,
    private readonly inputs: readonly ChunkInputBytes[],
    private readonly k: Kernels,
    private readonly heap: WasmHeap,
    private readonly kept: KeptBlocks,
    private readonly spares: SpareBuffers,
    private readonly readInto: FileRangeReader | undefined,
  ) {
    this.chunkIndex = spec.chunkIndex;
    this.start = spec.start;
    this.length = spec.length;
    this.rowStart = spec.rowStart;
    this.rows = spec.rows;
    this.cols = spec.cols;
    this.decoded = new Array(inputs.length);
    this.inputCounts = inputs.map(() => null);
  }

  // ---- memory ----------------------------------------------------------------------------------

  private allocBlock(bytes: number): number {
    if (this.released) throw new Error(`internal: chunk ${this.chunkIndex} of ${this.spec.tensorName} used after release`);
    const ptr = this.heap.alloc(bytes);
    this.owned.push({ ptr, bytes });
    return ptr;
  }

  private alloc(): WasmVec {
    return new WasmVec(this.allocBlock(this.length * 4));
  }

  /**
   * The f32 address of `v`, decoding a raw bf16 input first. May grow the memory, which detaches
   * views of it: take every operand's address before making a view.
   */
  private p(v: Vec): number {
    const w = wasmVec(v);
    const d = w.deferred;
    if (w.ptr >= 0 || !d) return w.ptr;
    if (d.kind === 'masked') return (w.ptr = this.writeMasked(d.x, d.mask));
    const n = this.length;
    const source = d.kind === 'ranked' || d.kind === 'abs' ? this.p(asVec(d.source)) : -1;
    const terms = d.kind === 'difference' ? this.diffTerm(v) : null;
    const ptr = this.allocBlock(n * 4);
    if (w.packed >= 0) this.k.unpackMask(w.packed, ptr, n);
    else if (d.kind === 'raw') this.k.decodeBf16(d.raw, ptr, n);
    else if (terms) this.k.binaryVV(SUB, ...terms, ptr, n);
    else if (d.kind === 'ranked') this.writeRanked(source, d.steps, ptr);
    else if (d.kind === 'abs') this.k.unary(ABS, source, ptr, n);
    else if (d.kind === 'drawn') {
      this.k.random(ptr, n, d.base);
      if (d.below !== undefined) this.k.compareSV(GT, d.below, ptr, ptr, n);
    }
    w.ptr = ptr;
    return ptr;
  }

  /** The ranks of the vector at `source`, then the steps, in place: the bytes of the ops one by one. */
  private writeRanked(source: number, steps: readonly RankStep[], ptr: number): void {
    this.scratch((5 * this.cols + 2050) * 4, (scratch) => this.k.rowRanks(source, ptr, this.rows, this.cols, scratch));
    for (const { op, scalarFirst, scalar } of steps) {
      if (scalarFirst) this.k.binarySV(op, scalar, ptr, ptr, this.length);
      else this.k.binaryVS(op, ptr, scalar, ptr, this.length);
    }
  }

  /**
   * A ranked vector with one more step, for a scalar op of one: + − × ÷ are monotone in the
   * vector operand except a scalar divided by it, which is written out. Null where it does not apply.
   */
  private rankStep(a: Operand, b: Operand, op: number): Vec | null {
    const [v, scalar] = typeof a === 'number' ? [b, a] : [a, b];
    if (typeof scalar !== 'number') return null;
    const ranked = deferredAs(v, 'ranked');
    if (!ranked || ranked.steps.length >= MAX_RANK_STEPS) return null;
    const scalarFirst = typeof a === 'number' && op === SUB;
    if (op === DIV && typeof a === 'number') return null;
    const step = { op, scalarFirst, scalar: Math.fround(scalar) };
    return asVec(new WasmVec(-1, { kind: 'ranked', source: ranked.source, steps: [...ranked.steps, step] }));
  }

  /** Runs `fn` with a temporary block of `bytes` bytes, freed afterwards. */
  private scratch<T>(bytes: number, fn: (ptr: number) => T): T {
    const ptr = this.heap.alloc(bytes);
    try {
      return fn(ptr);
    } finally {
      this.heap.release(ptr, bytes);
    }
  }

  private get buffer(): ArrayBuffer {
    return this.k.memory.buffer;
  }

  /**
   * For kernels that decode bf16 in their sweep: a raw bf16 input as it is (flag 1), so it needs
   * no decoding pass over memory; anything else as its f32 address (flag 0).
   */
  private term(v: Vec): [number, number] {
    const raw = deferredAs(v, 'raw');
    return raw ? [raw.raw, 1] : [this.p(v), 0];
  }

  /** A weightedSum term for the accumulate kernels: a term, and the term subtracted from it (0, 0 for none). */
  private diffTerm(v: Vec): [number, number, number, number] {
    const difference = deferredAs(v, 'difference');
    if (!difference) return [...this.term(v), 0, 0];
    return [...this.term(asVec(difference.minuend)), ...this.term(asVec(difference.subtrahend))];
  }

  private f32(ptr: number): Float32Array {
    return new Float32Array(this.buffer, ptr, this.length);
  }

  /** The values of `v` (a view of wasm memory, valid until the next op of this chunk). */
  valuesOf(v: Vec): Float32Array {
    return this.f32(this.p(v));
  }

  /**
   * Takes the block of `v` (its f32 values, or the raw bytes of a bf16 input) out of this chunk's
   * ownership, so that its release leaves it, or with `bits` the packed bits of the 0/1 mask `v`
   * (those keepBelow wrote, or packed now into a block of their own) (SimdCpuBackend.keep).
   */
  keep(v: Vec, bits: boolean): KeptVector {
    // A bf16 input is kept as it was read, even where an op has decoded it.
    const raw = wasmVec(v).deferred;
    if (raw?.kind === 'raw' && !bits) return { ptr: this.take(raw.raw), bytes: this.length * 2, raw: { length: this.length } };
    if (!bits) return { ptr: this.take(this.p(v)), bytes: this.length * 4 };
    const mask = { bits: { length: this.length }, bytes: this.maskBytes };
    // A mask that pending sums draw (DARE's rescale) is drawn with them now, its bits packed.
    if (wasmVec(v).packed < 0 && this.pending.length > 0) this.computeChains();
    const packed = wasmVec(v).packed;
    if (packed >= 0) return { ptr: this.take(packed), ...mask };
    const ptr = this.p(v);
    const kept = { ptr: this.heap.alloc(mask.bytes), ...mask };
    this.k.packMask(ptr, kept.ptr, this.length);
    this.kept.add(kept.ptr);
    return kept;
  }

  /** Takes block `ptr` of this chunk out of its ownership into the kept blocks (one more keeper if it is kept already). */
  private take(ptr: number): number {
    const i = this.owned.findIndex((block) => block.ptr === ptr);
    if (i >= 0) this.owned.splice(i, 1);
    else if (!this.kept.has(ptr)) throw new Error(`internal: chunk ${this.chunkIndex} of ${this.spec.tensorName} keeps a vector it does not hold`);
    this.kept.add(ptr);
    return ptr;
  }

  private get maskBytes(): number {
    return packedMaskBytes(this.length);
  }

  /**
   * A kept vector as a vector of this chunk, which does not free it (a packed mask or raw bf16:
   * unpacked or decoded when an op needs its values).
   */
  use(kept: KeptVector): Vec {
    const length = kept.bits ? kept.bits.length : kept.raw ? kept.raw.length : kept.bytes / 4;
    if (length !== this.length) throw new Error(`internal: a kept vector of ${length} values for a chunk of ${this.length}`);
    if (kept.raw) return asVec(new WasmVec(-1, { kind: 'raw', raw: kept.ptr }));
    if (!kept.bits) return asVec(new WasmVec(kept.ptr));
    const mask = new WasmVec(-1, { kind: 'bits' });
    mask.packed = kept.ptr;
    return asVec(mask);
  }

  // ---- inputs and output ---------------------------------------------------------------------

  input(i: number): Vec {
    const cached = this.decoded[i];
    if (cached) return asVec(cached);
    const input = this.inputs[i];
    if (!input) throw new Error(`internal: chunk has no input ${i}`);
    const size = bytesPer(input.dtype);
    if (input.dtype !== 'F32' && input.dtype !== 'F16' && input.dtype !== 'BF16') {
      throw new Error(`cannot decode dtype ${String(input.dtype)} to f32`);
    }
    const narrow = !fullRows(input, this);
    // A file range is read straight into the vector, unless it is cut (narrow) or longer than the chunk.
    const direct = input.file !== undefined && !narrow && input.file.length <= this.length * size;
    const all = direct ? input.bytes : this.bytesOf(input);
    const src = narrow ? all : all.subarray(0, this.length * size);
    const byteLength = direct ? input.file!.length : src.byteLength;
    if (!narrow && byteLength % size !== 0) {
      throw new RangeError(`${byteLength} bytes is not a whole number of ${input.dtype} elements (${size} bytes each)`);
    }
    const n = narrow ? this.length : byteLength / size;
    // F32 bytes are copied straight into the vector; 16-bit inputs through a scratch block.
    const copyInto = (ptr: number): void => {
      const dst = new Uint8Array(this.buffer, ptr, n * size);
      if (direct) this.readInto!(input.file!, dst);
      else if (!narrow) dst.set(src);
      else {
        // A wider embedding cut to the common width: the first `cols` values of every row.
        const rowBytes = input.cols * size;
        const keepBytes = this.cols * size;
        for (let r = 0; r < this.rows; r++) dst.set(src.subarray(r * rowBytes, r * rowBytes + keepBytes), r * keepBytes);
      }
    };
    // A narrow input is counted over all of its bytes (the cut columns too), as the engine would.
    const count = input.countNonFinite === true && !narrow;
    if (input.countNonFinite && narrow) this.inputCounts[i] = countNonFinite(all, input.dtype);
    let out: WasmVec;
    if (input.dtype === 'F32') {
      out = this.alloc();
      copyInto(out.ptr);
      if (count) this.inputCounts[i] = this.count(out.ptr, n, 'F32');
    } else if (input.dtype === 'BF16' && n === this.length) {
      // Kept raw: weightedSum decodes it on the fly, other ops through p().
      const raw = this.allocBlock(n * 2);
      copyInto(raw);
      if (count) this.inputCounts[i] = this.count(raw, n, 'BF16');
      out = new WasmVec(-1, { kind: 'raw', raw });
    } else {
      out = this.alloc();
      this.scratch(n * 2, (raw) => {
        copyInto(raw);
        if (count) this.inputCounts[i] = this.count(raw, n, input.dtype);
        if (input.dtype === 'BF16') this.k.decodeBf16(raw, out.ptr, n);
        else this.k.decodeF16(raw, out.ptr, n);
      });
    }
    this.decoded[i] = out;
    return asVec(out);
  }

  /** An input's bytes in a buffer of their own: read now when it is a file range. */
  private bytesOf(input: ChunkInputBytes): Uint8Array {
    if (!input.file) return input.bytes;
    if (!this.readInto) throw new Error(`internal: chunk ${this.chunkIndex} of ${this.spec.tensorName} got a file range but reads no files`);
    const bytes = new Uint8Array(input.file.length);
    this.readInto(input.file, bytes);
    return bytes;
  }

  async readPartials(tokens: readonly ReductionToken[]): Promise<Partial[]> {
    this.computeChains();
    return tokens.map((t) => {
      if (!(t.partial instanceof PendingChain)) return t.partial as Partial;
      if (t.partial.value === undefined) throw new Error(`internal: a reduction of chunk ${this.chunkIndex} of ${this.spec.tensorName} read after release`);
      return t.partial.value;
    });
  }

  async encode(v: Vec, dtype: FloatDtype): Promise<Uint8Array> {
    if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') throw new Error(`cannot encode f32 values as dtype ${String(dtype)}`);
    const n = this.length;
    const ptr = this.p(v);
    if (dtype === 'F32') {
      this.outputCounts = this.count(ptr, n, 'F32');
      return this.outputOf(ptr, n * 4);
    }
    return this.scratch(n * 2, (dst) => {
      if (dtype === 'BF16') this.k.encodeBf16(ptr, dst, n);
      else this.k.encodeF16(ptr, dst, n);
      this.outputCounts = this.count(dst, n, dtype);
      return this.outputOf(dst, n * 2);
    });
  }

  /** A copy of `length` bytes at `ptr`, in a recycled buffer where there is one (SpareBuffers). */
  private outputOf(ptr: number, length: number): Uint8Array {
    const out = this.spares.take(length);
    out.set(new Uint8Array(this.buffer, ptr, length));
    return out;
  }

  nonFinite(): ChunkNonFinite {
    // An input the method never read was never copied in: counted where it is.
    const inputs = this.inputs.map((input, i) => this.inputCounts[i] ?? (input.countNonFinite ? countNonFinite(this.bytesOf(input), input.dtype) : null));
    return { inputs, output: this.outputCounts };
  }

  /** NaN/±Inf of `n` elements of `dtype` at `ptr` in the kernels' memory. */
  private count(ptr: number, n: number, dtype: FloatDtype): NonFiniteCounts {
    const { bytes, exp, mantissa } = wordLayout(dtype);
    return this.scratch(16, (out) => {
      this.k.countNonFinite(ptr, n, bytes, exp, mantissa, out);
      const [nan, posInf, negInf] = new Uint32Array(this.buffer, out, 3);
      return { nan, posInf, negInf };
    });
  }

  release(): void {
    this.pending = [];
    for (const { ptr, bytes } of this.owned) this.heap.release(ptr, bytes);
    this.owned.length = 0;
    this.decoded.fill(undefined);
    this.released = true;
  }

  // ---- elementwise -----------------------------------------------------------------------------

  add(a: Operand, b: Operand): Vec {
    return this.binary(a, b, ADD, (x, y) => x + y);
  }
  sub(a: Operand, b: Operand): Vec {
    // Of two vectors, a difference written out only when an op other than weightedSum reads it.
    if (typeof a !== 'number' && typeof b !== 'number') return asVec(new WasmVec(-1, { kind: 'difference', minuend: wasmVec(a), subtrahend: wasmVec(b) }));
    return this.binary(a, b, SUB, (x, y) => x - y);
  }
  mul(a: Operand, b: Operand): Vec {
    return this.binary(a, b, MUL, (x, y) => x * y);
  }
  div(a: Operand, b: Operand): Vec {
    return this.binary(a, b, DIV, (x, y) => x / y);
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
    return this.unary(a, NEG);
  }
  abs(a: Vec): Vec {
    return asVec(new WasmVec(-1, { kind: 'abs', source: wasmVec(a) }));
  }
  sign(a: Vec): Vec {
    return this.unary(a, SIGN);
  }
  sqrt(a: Vec): Vec {
    return this.unary(a, SQRT);
  }

  private unary(a: Vec, op: number): Vec {
    const o = this.alloc();
    this.k.unary(op, this.p(a), o.ptr, this.length);
    return asVec(o);
  }

  private binary(a: Operand, b: Operand, op: number, scalar: (x: number, y: number) => number): Vec {
    const stepped = this.rankStep(a, b, op);
    if (stepped) return stepped;
    if (op === MUL && typeof a !== 'number' && typeof b !== 'number') {
      const kept = this.keepByMask(a, b);
      if (kept) return kept;
    }
    const o = this.alloc();
    const n = this.length;
    if (typeof a === 'number') {
      // The reference rounds the scalar-scalar result once, from f64.
      if (typeof b === 'number') this.k.fill(o.ptr, n, Math.fround(scalar(a, b)));
      // add/mul with the scalar first compute vector ∘ scalar, as the reference does.
      else if (op === ADD || op === MUL) this.k.binaryVS(op, this.p(b), Math.fround(a), o.ptr, n);
      else this.k.binarySV(op, Math.fround(a), this.p(b), o.ptr, n);
    } else if (typeof b === 'number') this.k.binaryVS(op, this.p(a), Math.fround(b), o.ptr, n);
    else {
      const [ap, aRaw] = this.term(a);
      const [bp, bRaw] = this.term(b);
      this.k.binaryVV(op, ap, aRaw, bp, bRaw, o.ptr, n);
    }
    return asVec(o);
  }

  /**
   * x · mask, unwritten, for a 0/1 mask whose bits are packed or not drawn yet (DARE's
   * below > uniform), with x a task vector subtracted in the sweep that writes it (writeMasked);
   * null for any other mask.
   */
  private keepByMask(a: Vec, mask: Vec): Vec | null {
    const m = wasmVec(mask);
    if (m.packed < 0 && deferredAs(mask, 'drawn')?.below === undefined) return null;
    return asVec(new WasmVec(-1, { kind: 'masked', x: wasmVec(a), mask: m }));
  }

  /**
   * The f32 address of x · mask: by the mask's packed bits (keepBits), or drawing the mask and
   * packing its bits in the same sweep (keepBelow), which also writes the task vector x where a
   * pending sum reads its magnitudes.
   */
  private writeMasked(xv: WasmVec, mask: WasmVec): number {
    const n = this.length;
    const a = asVec(xv);
    const x = this.diffTerm(a);
    const o = this.allocBlock(n * 4);
    if (mask.packed >= 0) {
      this.k.keepBits(...x, mask.packed, o, n);
      return o;
    }
    const drawn = mask.deferred as Extract<Deferred, { kind: 'drawn' }>;
    const summed = deferredAs(a, 'difference') !== null && this.pending.some((c) => c.magnitudesOf === a);
    const d = summed ? this.allocBlock(n * 4) : 0;
    const bits = this.allocBlock(this.maskBytes);
    this.k.keepBelow(...x, o, bits, n, hashesBelow(drawn.below!), drawn.base, d);
    mask.packed = bits;
    if (summed) xv.ptr = d;
    return o;
  }

  /** Comparisons and min/max. */
  private compare(a: Operand, b: Operand, op: number): Vec {
    const ranked = deferredAs(a, 'ranked');
    if (op === GT && ranked && typeof b !== 'number') return this.rankedGreater(ranked.source, ranked.steps, b);
    const drawn = deferredAs(b, 'drawn');
    if (op === GT && typeof a === 'number' && drawn && drawn.below === undefined) {
      return asVec(new WasmVec(-1, { kind: 'drawn', base: drawn.base, below: Math.fround(a) }));
    }
    const o = this.alloc();
    const n = this.length;
    if (typeof a === 'number') {
      if (typeof b === 'number') {
        this.k.fill(o.ptr, n, Math.fround(a));
        this.k.compareVS(op, o.ptr, Math.fround(b), o.ptr, n);
      } else this.k.compareSV(op, Math.fround(a), this.p(b), o.ptr, n);
    } else if (typeof b === 'number') this.k.compareVS(op, this.p(a), Math.fround(b), o.ptr, n);
    else this.k.compareVV(op, this.p(a), this.p(b), o.ptr, n);
    return asVec(o);
  }

  where(cond: Vec, a: Operand, b: Operand): Vec {
    const o = this.alloc();
    const [ap, as] = typeof a === 'number' ? [0, Math.fround(a)] : [this.p(a), 0];
    const [bp, bs] = typeof b === 'number' ? [0, Math.fround(b)] : [this.p(b), 0];
    this.k.where(this.p(cond), ap, as, bp, bs, o.ptr, this.length);
    return asVec(o);
  }

  weightedSum(terms: readonly Vec[], weights: readonly Operand[]): Vec {
    const o = this.alloc();
    const n = this.length;
    // f32 sums in term order, each step fround(o + w·x) with the product and sum in f64, two
    // terms per sweep: the reference's accumulation exactly.
    if (terms.length === 0) this.k.fill(o.ptr, n, 0);
    const weight = (w: Operand): [number, number] => (typeof w === 'number' ? [0, w] : [this.p(w), 0]);
    for (let t = 0; t < terms.length; t += 2) {
      const first = t === 0 ? 1 : 0;
      const [wxp, wx] = weight(weights[t]);
      const [xp, xRaw, xm, xmRaw] = this.diffTerm(terms[t]);
      if (t + 1 === terms.length) {
        this.k.accumulate1(o.ptr, first, xp, xRaw, xm, xmRaw, wxp, wx, n);
        continue;
      }
      const [wyp, wy] = weight(weights[t + 1]);
      const [yp, yRaw, ym, ymRaw] = this.diffTerm(terms[t + 1]);
      this.k.accumulate2(o.ptr, first, xp, xRaw, xm, xmRaw, wxp, wx, yp, yRaw, ym, ymRaw, wyp, wy, n);
    }
    return asVec(o);
  }

  random(stream: number): Vec {
    const key = streamKey(this.spec.seed, this.spec.tensorName, stream);
    // randomUniform(key, start + i): the outer hash changes only where the index crosses 2^32.
    // Below that, the stream is drawn where it is read (Drawn).
    if (this.start + this.length <= TWO_POW_32) return asVec(new WasmVec(-1, { kind: 'drawn', base: (pcgHash(key) + this.start) >>> 0 }));
    // Drawn in pieces, through a scratch block: the kernel writes whole 16-element words, and a
    // piece starting inside one would write up to 15 elements past the vector's padded end.
    const o = this.alloc();
    this.scratch((this.length + 16) * 4, (drawn) => {
      for (let i = 0; i < this.length; ) {
        const hi = Math.floor((this.start + i) / TWO_POW_32);
        const lo = this.start + i - hi * TWO_POW_32;
        const n = Math.min(this.length - i, TWO_POW_32 - lo);
        const base = (pcgHash((key ^ hi) >>> 0) + lo) >>> 0;
        this.k.random(drawn + i * 4, n, base);
        i += n;
      }
      this.f32(o.ptr).set(this.f32(drawn));
    });
    return asVec(o);
  }

  perRow(values: Float64Array): Vec {
    const o = this.alloc();
    this.scratch(this.rows * 8, (ptr) => {
      const v = new Float64Array(this.buffer, ptr, this.rows);
      for (let r = 0; r < this.rows; r++) v[r] = values[this.rowStart + r];
      this.k.perRow(ptr, this.rows, this.cols, o.ptr);
    });
    return asVec(o);
  }

  periodic(values: Float64Array): Vec {
    const o = this.alloc();
    const period = values.length;
    this.scratch(period * 8, (ptr) => {
      new Float64Array(this.buffer, ptr, period).set(values);
      this.k.periodic(ptr, period, this.start % period, o.ptr, this.length);
    });
    return asVec(o);
  }

  // ---- reductions ----------------------------------------------------------------------------

  sum(a: Vec): Reduction<number> {
    // A sum of magnitudes masks the sign as it adds: |a| is not written. A difference, or values
    // kept below a draw, stay unwritten until the sum is computed: keepBelowSums may need neither.
    const abs = deferredAs(a, 'abs');
    if (!abs) return this.chain(this.p(a), -1);
    const source = asVec(abs.source);
    if (deferredAs(source, 'difference') || this.keptBelow(source)) return this.chain(-1, -1, MAGNITUDE_BITS, undefined, source);
    return this.chain(this.p(source), -1, MAGNITUDE_BITS);
  }

  chunkSums(a: Vec): Reduction<Float64Array> {
    return token('chunkSums', this.k.sum(this.p(a), this.length, ALL_BITS));
  }

  dot(a: Vec, b: Vec): Reduction<number> {
    // Task vectors stay unwritten until the chains are computed: their Gram matrix may need none.
    if (deferredAs(a, 'difference') && deferredAs(b, 'difference')) return this.chain(-1, -1, ALL_BITS, [a, b]);
    return this.chain(this.p(a), this.p(b));
  }

  private chain(x: number, y: number, mask?: number, differences?: readonly [Vec, Vec], magnitudesOf?: Vec): Reduction<number> {
    const pending = new PendingChain(x, y, mask, differences, magnitudesOf);
    this.pending.push(pending);
    return token('sum', pending);
  }

  /**
   * The Gram matrix of 2 or 3 differences with one subtrahend, all still unwritten, when the
   * pending dots of differences are exactly its entries in row order (v0·v0, v0·v1, …, as
   * model_stock asks for them): the gram kernel computes them from the inputs without writing the
   * differences. Otherwise nothing.
   */
  private computeGram(): void {
    const dots = this.pending.filter((c) => c.differences);
    const count = dots.length === 3 ? 2 : dots.length === 6 ? 3 : 0;
    if (count === 0) return;
    // The first row of the matrix names the vectors; every entry must then be (v[i], v[j]).
    const v = dots.slice(0, count).map((c) => c.differences![1]);
    for (let i = 0, d = 0; i < count; i++) {
      for (let j = i; j < count; j++, d++) {
        const [a, b] = dots[d].differences!;
        if (a !== v[i] || b !== v[j]) return;
      }
    }
    if (new Set(v).size !== count) return;
    const differences = v.map((x) => deferredAs(x, 'difference'));
    const subtrahend = differences[0]?.subtrahend;
    if (differences.some((d) => !d || d.subtrahend !== subtrahend)) return;
    const terms = [subtrahend!, ...differences.map((d) => d!.minuend)].map((w) => this.term(asVec(w)));
    this.scratch(32 + 8 * dots.length, (table) => {
      const pointers = new Uint32Array(this.buffer, table, 8);
      terms.forEach(([ptr, bf16], j) => pointers.set([ptr, bf16], 2 * j));
      this.k.gram(table, count, this.length, table + 32);
      new Float64Array(this.buffer, table + 32, dots.length).forEach((value, i) => (dots[i].value = value));
    });
    this.pending = this.pending.filter((c) => !c.differences);
  }

  /**
   * The pending dots and sums: two chains of one kind to a pair, up to three pairs (dot pairs
   * first) per sweep of the `chains` kernel, so that their f64 additions overlap; each chain adds
   * in index order exactly as `dot` or `sum` does. An odd one out of a kind shares its pair with a
   * copy of itself. A lone chain runs the single-chain kernel.
   */
  private computeChains(): void {
    this.computeGram();
    this.computeKeptSums();
    // Kept values first, while the sums are pending: their keepBelow writes the task vectors that sums read.
    for (const c of this.pending) if (c.magnitudesOf && this.keptBelow(c.magnitudesOf)) c.x = this.p(c.magnitudesOf);
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    for (const c of pending) {
      if (c.differences) [c.x, c.y] = [this.p(c.differences[0]), this.p(c.differences[1])];
      if (c.magnitudesOf) c.x = this.p(c.magnitudesOf);
    }
    const n = this.length;
    if (pending.length === 1) {
      const [c] = pending;
      c.value = c.y < 0 ? this.k.sum(c.x, n, c.mask) : this.k.dot(c.x, c.y, n);
      return;
    }
    const dots = pending.filter((c) => c.y >= 0);
    const sums = pending.filter((c) => c.y < 0);
    const dotPairs = Math.ceil(dots.length / 2);
    const pairs = dotPairs + Math.ceil(sums.length / 2);
    // Chain slots, two per pair: the dots, padded to even, then the sums, padded to even.
    const slots = [...dots, ...dots.slice(dots.length - (dots.length % 2)), ...sums, ...sums.slice(sums.length - (sums.length % 2))];
    const sweeps = Math.ceil(pairs / MAX_PAIRS_PER_SWEEP);
    this.scratch(pairs * 32, (table) => {
      const out = table + pairs * 16;
      const pointers = new Uint32Array(this.buffer, table, pairs * 4);
      slots.forEach((c, j) => {
        pointers[2 * j] = c.x;
        pointers[2 * j + 1] = c.y < 0 ? c.mask : c.y;
      });
      // Balanced sweeps: 4 pairs run as 2 + 2, not 3 + 1.
      for (let s = 0, first = 0; s < sweeps; s++) {
        const size = Math.floor(pairs / sweeps) + (s < pairs % sweeps ? 1 : 0);
        const dotsHere = Math.min(Math.max(dotPairs - first, 0), size);
        this.k.chains(table + first * 16, dotsHere, size - dotsHere, n, out + first * 16);
        first += size;
      }
      const values = new Float64Array(this.buffer, out, slots.length);
      // A padding copy comes after its original and writes the same value.
      slots.forEach((c, j) => (c.value = values[j]));
    });
  }

  /** The deferred form of `v` when it is x · mask for a mask drawn below a threshold and not drawn yet (keepBelow's), else null. */
  private keptBelow(v: Vec): Extract<Deferred, { kind: 'masked' }> | null {
    const masked = deferredAs(v, 'masked');
    return masked && masked.mask.packed < 0 ? masked : null;
  }

  /**
   * DARE's rescale sums (l1RescaleFactors): for each pending Σ|d · mask| of a task vector d, not
   * written, kept by a mask not drawn yet, with Σ|d| pending too, the keepBelowSums kernel draws
   * the mask, packs its bits (for the output pass) and adds both sums, up to three task vectors a
   * sweep, writing neither d nor the kept values. Terms of two raw bf16 inputs or of two written
   * f32 vectors, those of one kind to a sweep; others are left to computeChains.
   */
  private computeKeptSums(): void {
    const groups: Record<'bf16' | 'f32', { kept: PendingChain; whole: PendingChain; mask: WasmVec; pointers: number[] }[]> = { bf16: [], f32: [] };
    for (const kept of this.pending) {
      const masked = kept.magnitudesOf && this.keptBelow(kept.magnitudesOf);
      const difference = masked ? deferredAs(asVec(masked.x), 'difference') : null;
      const whole = difference && this.pending.find((c) => c.magnitudesOf === asVec(masked!.x));
      const swept = whole && sweptDifference(difference);
      if (!masked || !swept) continue;
      const drawn = masked.mask.deferred as Extract<Deferred, { kind: 'drawn' }>;
      const pointers = [swept.x, swept.xm, -1, hashesBelow(drawn.below!), drawn.base];
      groups[swept.bf16 ? 'bf16' : 'f32'].push({ kept, whole, mask: masked.mask, pointers });
    }
    const n = this.length;
    for (const [kind, terms] of Object.entries(groups)) {
      for (let first = 0; first < terms.length; first += 3) {
        const sweep = terms.slice(first, first + 3);
        for (const term of sweep) term.pointers[2] = term.mask.packed = this.allocBlock(this.maskBytes);
        // The table's 5 words a term (60 bytes at most), then the sums from byte 64.
        this.scratch(64 + sweep.length * 16, (table) => {
          new Uint32Array(this.buffer, table, sweep.length * 5).set(sweep.flatMap((term) => term.pointers));
          const out = table + 64;
          this.k.keepBelowSums(table, sweep.length, kind === 'bf16' ? 1 : 0, n, out);
          const sums = new Float64Array(this.buffer, out, sweep.length * 2);
          sweep.forEach((term, j) => [term.whole.value, term.kept.value] = [sums[2 * j], sums[2 * j + 1]]);
        });
        this.pending = this.pending.filter((c) => !sweep.some((term) => term.kept === c || term.whole === c));
      }
    }
  }

  rowSums(a: Vec): Reduction<Float64Array> {
    const sums = this.scratch(this.rows * 8, (ptr) => {
      this.k.rowSums(this.p(a), this.rows, this.cols, ptr);
      return new Float64Array(this.buffer, ptr, this.rows).slice();
    });
    return token('rowSums', sums);
  }

  periodicSums(a: Vec, period: number): Reduction<Float64Array> {
    const sums = this.scratch(period * 8, (ptr) => {
      this.k.periodicSums(this.p(a), this.length, this.start % period, period, ptr);
      return new Float64Array(this.buffer, ptr, period).slice();
    });
    return token('periodicSums', sums);
  }

  magnitudeHistogram(a: Vec, high: number | null): Reduction<Float64Array> {
    // The dense bins, then their non-empty ones (the upper bits of |x| stop at 0x7fff).
    const bins = high === null ? 32768 : 65536;
    // A task vector is subtracted in the sweep, not written.
    const x = this.diffTerm(a);
    const hist = this.scratch(65536 * 10, (ptr) => {
      this.k.magnitudeHistogram(...x, this.length, high === null ? -1 : high, ptr);
      const n = this.k.sparseBins(ptr, bins, ptr + 65536 * 4, ptr + 65536 * 6);
      return { bins: new Uint16Array(this.buffer, ptr + 65536 * 4, n).slice(), counts: new Uint32Array(this.buffer, ptr + 65536 * 6, n).slice() };
    });
    return token('histogram', hist);
  }

  rowSumBroadcast(a: Vec): Vec {
    const o = this.alloc();
    this.k.rowSumBroadcast(this.p(a), this.rows, this.cols, o.ptr);
    return asVec(o);
  }

  // ---- selection -----------------------------------------------------------------------------

  keepTopMagnitude(a: Vec, threshold: number, tiesBefore: number, tiesAllowed: number): Vec {
    const x = this.diffTerm(a);
    const o = this.alloc();
    this.k.keepTop(...x, o.ptr, this.length, Math.fround(threshold), tiesBefore, tiesAllowed);
    return asVec(o);
  }

  signConsensus(terms: readonly Vec[], scales: readonly number[], weights: readonly number[] | null): Vec {
    const o = this.alloc();
    const n = this.length;
    const s = scales.map(Math.fround);
    const w = weights ? weights.map(Math.fround) : scales.map(() => 0);
    const normalize = weights !== null ? 1 : 0;
    const kept = this.keptTerms(terms);
    if (kept) {
      this.scratch(36, (table) => {
        new Uint32Array(this.buffer, table, 9).set(kept.pointers);
        this.k.signConsensusKept(table, terms.length, kept.bf16 ? 1 : 0, o.ptr, n, s[0], s[1], s[2] ?? 0, w[0], w[1], w[2] ?? 0, normalize);
      });
      return asVec(o);
    }
    if (terms.length === 2) {
      this.k.signConsensus2(this.p(terms[0]), this.p(terms[1]), o.ptr, n, s[0], s[1], w[0], w[1], normalize);
      return asVec(o);
    }
    if (terms.length === 3) {
      const [x0, x1, x2] = terms.map((t) => this.p(t));
      this.k.signConsensus3(x0, x1, x2, o.ptr, n, s[0], s[1], s[2], w[0], w[1], w[2], normalize);
      return asVec(o);
    }
    const count = terms.length;
    const ptrs = terms.map((t) => this.p(t));
    this.scratch(count * 12, (ptr) => {
      const table = new Uint32Array(this.buffer, ptr, count * 3);
      const floats = new Float32Array(this.buffer, ptr, count * 3);
      for (let j = 0; j < count; j++) {
        table[j] = ptrs[j];
        floats[count + j] = s[j];
        floats[2 * count + j] = w[j];
      }
      this.k.signConsensusN(ptr, ptr + count * 4, ptr + count * 8, count, o.ptr, n, normalize);
    });
    return asVec(o);
  }

  /**
   * For signConsensusKept: 2 or 3 terms, each a task vector (of two raw bf16 inputs, or of two
   * written f32 vectors, alike for all) kept by a packed mask and not written; their x, xm and bits
   * pointers. Null for any other terms.
   */
  private keptTerms(terms: readonly Vec[]): { pointers: number[]; bf16: boolean } | null {
    if (terms.length !== 2 && terms.length !== 3) return null;
    const pointers: number[] = [];
    let bf16: boolean | undefined;
    for (const term of terms) {
      const masked = deferredAs(term, 'masked');
      const difference = masked && masked.mask.packed >= 0 ? deferredAs(asVec(masked.x), 'difference') : null;
      const swept = difference && sweptDifference(difference);
      if (!masked || !swept) return null;
      if (bf16 !== undefined && bf16 !== swept.bf16) return null;
      bf16 = swept.bf16;
      pointers.push(swept.x, swept.xm, masked.mask.packed);
    }
    return { pointers, bf16: bf16! };
  }

  // ---- in JavaScript over views of wasm memory (rare or sort-like: the reference's loops) ---------

  /** Ranked when an op reads them (SimdChunk.p), or never where `gt` compares them (rankedGreater). */
  rowRanks(a: Vec): Vec {
    return asVec(new WasmVec(-1, { kind: 'ranked', source: wasmVec(a), steps: [] }));
  }

  /** gt(steps(rowRanks(source)), b), deciding most elements from their rank's bucket alone (rowRanksGreater). */
  private rankedGreater(source: WasmVec, steps: readonly RankStep[], b: Vec): Vec {
    const x = this.p(asVec(source));
    const y = this.p(b);
    const o = this.alloc();
    const kernelScratch = (8 * this.cols + 4104) * 4;
    this.scratch(kernelScratch + steps.length * 12, (ptr) => {
      const table = ptr + kernelScratch;
      const words = new Int32Array(this.buffer, table, steps.length * 3);
      const floats = new Float32Array(this.buffer, table, steps.length * 3);
      steps.forEach(({ op, scalarFirst, scalar }, j) => {
        words[3 * j] = op;
        words[3 * j + 1] = scalarFirst ? 1 : 0;
        floats[3 * j + 2] = scalar;
      });
      this.k.rowRanksGreater(x, y, o.ptr, this.rows, this.cols, table, steps.length, ptr);
    });
    return asVec(o);
  }

  rowMaxBroadcast(a: Vec): Vec {
    const ap = this.p(a);
    const o = this.alloc();
    const x = this.f32(ap);
    const out = this.f32(o.ptr);
    for (let r = 0; r < this.rows; r++) {
      let m = -Infinity;
      for (let i = r * this.cols; i < (r + 1) * this.cols; i++) m = Math.max(m, x[i]); // NaN propagates
      out.fill(m, r * this.cols, (r + 1) * this.cols);
    }
    return asVec(o);
  }

  exp(a: Vec): Vec {
    const ap = this.p(a);
    const o = this.alloc();
    const x = this.f32(ap);
    const out = this.f32(o.ptr);
    for (let i = 0; i < out.length; i++) out[i] = Math.exp(x[i]);
    return asVec(o);
  }

  log(a: Vec): Vec {
    const ap = this.p(a);
    const o = this.alloc();
    const x = this.f32(ap);
    const out = this.f32(o.ptr);
    for (let i = 0; i < out.length; i++) out[i] = Math.log(x[i]);
    return asVec(o);
  }
}
