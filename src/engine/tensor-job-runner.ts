import type { BackendChunk, ChunkInputBytes, ComputeBackend } from '../backend/compute-backend';
import { combinePartial, emptyTotal, type ChunkPlace, type HistogramTotals, type Partial, type ReductionToken } from '../backend/reduction';
import type { ChunkOps, ReductionSet, Resolved, Vec } from '../backend/types';
import type { TensorMerge } from '../methods/types';
import type { TensorJob } from '../plan/types';
import { addNonFinite, countNonFinite, dtypeSize, noNonFinite, nonFiniteTotal, type NonFiniteCounts, type NonFiniteTensor } from '../storage';
import type { ByteSource, FloatDtype, SafetensorsDtype } from '../storage/types';
import { chunkRanges, rowShape, type ChunkRange } from './chunking';
import { MergeCancelledError } from './progress';
import { AlignedEmbeddingReader } from './aligned-embedding';
import { LoraInputReader } from './lora-input-reader';

/** Everything a job needs from the engine around it. */
export interface JobContext {
  readonly backend: ComputeBackend;
  readonly source: (model: string, file: string) => Promise<ByteSource>;
  readonly seed: number;
  /** Working memory for one chunk (inputs plus temporaries). */
  readonly budgetBytes: number;
  /** Never split a row across chunks, even a 1-D tensor longer than the budget (MergeMethod.wholeRows). */
  readonly wholeRows?: boolean;
  readonly signal?: AbortSignal;
  readonly warn: (message: string) => void;
  readonly onRead: (bytes: number) => void;
  /** Called with the fraction of the job's output written so far. */
  readonly onOutput: (fraction: number) => void;
  /** Writes output bytes; calls `released` once nothing holds them any more (never after a failure). */
  readonly write: (bytes: Uint8Array, released?: () => void) => Promise<void>;
  /** Wall time the job spent waiting for input bytes and for the backend (ms). */
  readonly onWait?: (stage: 'read' | 'compute', ms: number) => void;
  /** Where histogram totals come from and go back to (`release`); undefined: new ones each time. */
  readonly histograms?: HistogramTotals;
}

/** Estimated f32 temporaries per element that a method allocates per input (kept generous). */
const TEMPORARIES_PER_INPUT = 4;
const TEMPORARIES_FIXED = 8;

/**
 * Working memory per element of a chunk: the inputs' bytes (`inputBytes`, summed over the
 * `inputs` inputs) plus the f32 temporaries a method may allocate.
 */
export function chunkBytesPerElement(inputBytes: number, inputs: number): number {
  return inputBytes + 4 * (TEMPORARIES_PER_INPUT * inputs + TEMPORARIES_FIXED);
}

/**
 * Runs one TensorJob: gives the method its TensorMerge view, streams each pass over row-aligned
 * chunks (reading chunk i+1 while chunk i computes), and writes the output pass in order.
 */
export class TensorJobRunner implements TensorMerge {
  readonly name: string;
  readonly shape: readonly number[];
  readonly numel: number;
  readonly rows: number;
  readonly cols: number;
  readonly inputs: TensorMerge['inputs'];
  readonly baseIndex: number;
  readonly params: Readonly<Record<string, number>>;
  readonly isEmbed: boolean;

  private readonly chunks: ChunkRange[];
  private readonly sources: Promise<ByteSource>[];
  /** Assembles the rows of embeddings aligned to a new vocabulary (plan `rowMap`s). */
  private readonly aligned: AlignedEmbeddingReader | null;
  /** Applies the LoRA adapters of `model+lora` inputs (docs/lora.md), handing the backend f32 rows. */
  private readonly lora: LoraInputReader | null;
  /**
   * Raw input bytes kept across passes when the whole tensor fits in a quarter of the budget,
   * until the output pass (a job's last) hands them to the backend.
   */
  private readonly keep: boolean;
  private readonly kept = new Map<number, Promise<ChunkInputBytes[]>>();
  /** Set once the output pass began: no pass follows it, so nothing read from then on is kept. */
  private finalPass = false;
  private bytesWritten = 0;
  /** NaN/Inf per input, each element counted once (at its chunk's first read), and of the output. */
  private readonly inputNonFinite: NonFiniteCounts[];
  private readonly outputNonFinite = noNonFinite();
  /** Chunk × input pairs already counted: the runner reads a chunk again in later passes unless it keeps it. */
  private readonly counted: Uint8Array;
  /** The histogram totals this job's reductions took from `ctx.histograms`, given back by `release`. */
  private readonly histogramTotals: Float64Array[] = [];
  /** ChunkSpec.jobId: one value for all passes over this tensor, unique in the process. */
  private readonly jobId = nextJobId++;

  constructor(
    private readonly job: TensorJob,
    private readonly ctx: JobContext,
  ) {
    this.name = job.name;
    this.shape = job.shape;
    this.numel = job.shape.reduce((a, b) => a * b, 1);
    ({ rows: this.rows, cols: this.cols } = rowShape(job.shape));
    this.inputs = job.inputs.map((i) => ({ model: i.model, params: i.params }));
    this.baseIndex = job.baseIndex;
    this.params = job.params;
    this.isEmbed = job.isEmbed;
    // Aligned embeddings may arrive in f32 (substituted and padding rows, see AlignedEmbeddingReader),
    // and so do inputs with a LoRA applied.
    const inputBytesPerElement = job.inputs.reduce((s, i) => s + (job.alignment || i.adapter?.kind === 'lora' ? 4 : dtypeSize(i.tensor.dtype)), 0);
    const perElement = chunkBytesPerElement(inputBytesPerElement, job.inputs.length);
    // Chunks in flight share the budget.
    const inFlight = Math.max(1, Math.floor(ctx.backend.chunksInFlight ?? 1));
    const budgetElements = Math.max(1024, Math.floor(ctx.budgetBytes / inFlight / perElement));
    // A backend's own ceiling (a GPU binding) wins over the budget.
    const maxElements = Math.min(budgetElements, ctx.backend.maxChunkElements ?? Infinity);
    this.chunks = chunkRanges(job.shape, maxElements, ctx.wholeRows ?? false);
    this.keep = inputBytesPerElement * this.numel <= ctx.budgetBytes / 4;
    // A modules_to_save input's tensor lives in its adapter's files.
    this.sources = job.inputs.map((i) => ctx.source(i.adapter?.kind === 'replace' ? i.adapter.source : i.model, i.tensor.file));
    this.lora = job.inputs.some((i) => i.adapter?.kind === 'lora') ? new LoraInputReader(job, this.sources, ctx.source, (n) => ctx.onRead(n), ctx.backend.matrix) : null;
    this.inputNonFinite = job.inputs.map(() => noNonFinite());
    this.counted = new Uint8Array(this.chunks.length * job.inputs.length);
    this.aligned = job.alignment ? new AlignedEmbeddingReader(job, this.sources, (n) => ctx.onRead(n), Math.floor(ctx.budgetBytes / 2)) : null;
  }

  /** A histogram total from `histograms` (ctx.histograms), given back by `release`. */
  private takeHistogram(histograms: HistogramTotals): Float64Array {
    const total = histograms.take();
    this.histogramTotals.push(total);
    return total;
  }

  /** Once the method is done with this job: gives its histogram totals back for later jobs, and tells the backend. */
  release(): void {
    this.ctx.histograms?.give(this.histogramTotals.splice(0));
    this.ctx.backend.endJob?.(this.jobId);
  }

  warn(message: string): void {
    this.ctx.warn(`${this.name}: ${message}`);
  }

  /** The NaN/Inf met in this tensor's inputs and output so far, or null when none. */
  nonFinite(): NonFiniteTensor | null {
    const inputs = this.job.inputs
      .map((input, i) => ({ model: input.model, counts: { ...this.inputNonFinite[i] } }))
      .filter((i) => nonFiniteTotal(i.counts) > 0);
    if (inputs.length === 0 && nonFiniteTotal(this.outputNonFinite) === 0) return null;
    return { tensor: this.name, inputs, output: { ...this.outputNonFinite } };
  }

  /** True once the output pass has written every byte of the tensor. */
  get complete(): boolean {
    return this.bytesWritten === this.job.byteLength;
  }

  async reduce<T extends ReductionSet>(
    fn: (c: ChunkOps) => T,
    eachChunk?: (chunkIndex: number, partials: readonly Partial[]) => void,
  ): Promise<Resolved<T>> {
    let keys: string[] | null = null;
    let totals: (number | Float64Array)[] = [];
    let kinds: ReductionToken['kind'][] = [];
    let isArray = true;
    await this.forEachChunk(
      (chunk) => {
        const set = fn(chunk.ops);
        if (keys === null) {
          isArray = Array.isArray(set);
          keys = Object.keys(set);
        }
        const tokens = keys.map((k) => (set as Record<string, unknown>)[k] as ReductionToken);
        return chunk.readPartials(tokens).then((partials) => ({ kinds: tokens.map((t) => t.kind), partials }));
      },
      ({ kinds: chunkKinds, partials }, range) => {
        const place = this.place(range);
        if (range.index === 0) {
          kinds = chunkKinds;
          const histograms = this.ctx.histograms;
          totals = kinds.map((k) => emptyTotal(k, place, histograms && (() => this.takeHistogram(histograms))));
        }
        eachChunk?.(range.index, partials);
        totals = totals.map((total, i) => combinePartial(kinds[i], total, partials[i], place));
      },
    );
    if (keys === null) return (isArray ? [] : {}) as Resolved<T>;
    if (isArray) return totals as unknown as Resolved<T>;
    const out: Record<string, number | Float64Array> = {};
    (keys as string[]).forEach((k, i) => (out[k] = totals[i]));
    return out as Resolved<T>;
  }

  async apply(fn: (c: ChunkOps) => Vec): Promise<void> {
    this.startOutput();
    this.finalPass = true;
    const dtype = this.job.dtype as FloatDtype;
    const backend = this.ctx.backend;
    await this.forEachChunk(
      (chunk) => chunk.encode(fn(chunk.ops), dtype),
      // The encoded bytes go back to the backend once written (ComputeBackend.recycle).
      (bytes) => this.emit(bytes, !backend.countsNonFinite, backend.recycle && (() => backend.recycle!(bytes))),
    );
  }

  async copyInput(i: number): Promise<void> {
    const input = this.job.inputs[i];
    const sameLayout =
      !input.rowMap && input.adapter?.kind !== 'lora' &&
      input.tensor.dtype === this.job.dtype && input.tensor.shape.join() === this.job.shape.join();
    if (!sameLayout) return this.apply((c) => c.input(i));
    this.startOutput();
    // Unchanged tensors move as raw bytes: no float round trip (subnormals, NaN payloads kept).
    const source = await this.sources[i];
    // Whole elements per read, so that each piece can be scanned for NaN/Inf on its own.
    const size = dtypeSize(input.tensor.dtype);
    const step = Math.max(size, Math.floor(this.ctx.budgetBytes / 2 / size) * size);
    const countInput = !this.counted.subarray(i * this.chunks.length, (i + 1) * this.chunks.length).some((c) => c !== 0);
    for (let offset = 0; offset < input.tensor.byteLength; offset += step) {
      this.checkCancelled();
      const length = Math.min(step, input.tensor.byteLength - offset);
      const waited = now();
      const bytes = await source.read(input.tensor.offset + offset, length);
      this.ctx.onWait?.('read', now() - waited);
      this.ctx.onRead(length);
      if (countInput) addNonFinite(this.inputNonFinite[i], countNonFinite(bytes, input.tensor.dtype));
      await this.emit(bytes, true);
    }
    this.counted.fill(1, i * this.chunks.length, (i + 1) * this.chunks.length);
  }

  private startOutput(): void {
    if (this.bytesWritten > 0) throw new Error(`internal: ${this.name} was written twice by its method`);
  }

  /** Writes output bytes, counting their NaN/Inf unless the backend did (`count` false). */
  private async emit(bytes: Uint8Array, count: boolean, released?: () => void): Promise<void> {
    this.bytesWritten += bytes.length;
    if (this.bytesWritten > this.job.byteLength) {
      throw new Error(`internal: ${this.name} produced more bytes than its ${this.job.byteLength}`);
    }
    if (count) addNonFinite(this.outputNonFinite, countNonFinite(bytes, this.job.dtype));
    await this.ctx.write(bytes, released);
    this.ctx.onOutput(this.bytesWritten / this.job.byteLength);
  }

  private place(range: ChunkRange): ChunkPlace {
    return { chunkIndex: range.index, chunkCount: this.chunks.length, rowStart: range.rowStart, totalRows: this.rows };
  }

  private checkCancelled(): void {
    if (this.ctx.signal?.aborted) throw new MergeCancelledError();
  }

  /**
   * Streams the chunks of one pass: `launch` starts a chunk's work on the backend, `finish` takes
   * its result. Up to `backend.chunksInFlight` chunks are launched before the oldest is finished,
   * so a backend can overlap them; results are finished strictly in chunk order, which keeps
   * reductions and output bytes independent of how many chunks were in flight.
   */
  private async forEachChunk<R>(
    launch: (chunk: BackendChunk, range: ChunkRange) => Promise<R>,
    finish: (result: R, range: ChunkRange) => Promise<void> | void,
  ): Promise<void> {
    const depth = Math.max(1, Math.floor(this.ctx.backend.chunksInFlight ?? 1));
    const inFlight: { range: ChunkRange; chunk: BackendChunk; result: Promise<R> }[] = [];
    const finishOldest = async (): Promise<void> => {
      const oldest = inFlight.shift()!;
      const waited = now();
      const result = await oldest.result;
      // Where the backend read the chunk's inputs itself, that share of the wait was for reading.
      const ms = now() - waited;
      const read = ms * (oldest.chunk.readShare?.() ?? 0);
      if (read > 0) this.ctx.onWait?.('read', read);
      this.ctx.onWait?.('compute', ms - read);
      await finish(result, oldest.range);
    };
    let next: Promise<ChunkInputBytes[]> | null = this.chunks.length > 0 ? this.inputBytes(0) : null;
    try {
      for (const range of this.chunks) {
        this.checkCancelled();
        const waited = now();
        const inputs = await next!;
        this.ctx.onWait?.('read', now() - waited);
        next = range.index + 1 < this.chunks.length ? this.inputBytes(range.index + 1) : null;
        const chunk = this.ctx.backend.beginChunk(
          {
            tensorName: this.name,
            chunkIndex: range.index,
            chunkCount: this.chunks.length,
            start: range.start,
            length: range.length,
            rowStart: range.rowStart,
            rows: range.rows,
            cols: range.cols,
            totalRows: this.rows,
            seed: this.ctx.seed,
            jobId: this.jobId,
          },
          this.askCounts(inputs, range.index),
        );
        const launched = now();
        let result: Promise<R>;
        try {
          result = launch(chunk, range);
        } catch (error) {
          chunk.release();
          throw error;
        }
        if (this.ctx.backend.countsNonFinite) result = result.then((r) => (this.takeCounts(chunk), r));
        this.ctx.onWait?.('compute', now() - launched);
        result = result.finally(() => chunk.release());
        // A failure is reported when the chunk is finished, not as an unhandled rejection.
        result.catch(() => undefined);
        inFlight.push({ range, chunk, result });
        while (inFlight.length >= depth) await finishOldest();
      }
      while (inFlight.length > 0) await finishOldest();
    } finally {
      // After a failure, let the chunks still in flight settle (and release) before leaving.
      if (inFlight.length > 0) await Promise.allSettled(inFlight.map((c) => c.result));
      next?.catch(() => undefined);
    }
  }

  /**
   * The input bytes of chunk `index`: kept ones from an earlier pass, or read now (and kept, for
   * a pass before the output pass). In the output pass the bytes are the backend's (unretained):
   * it may move them to a worker without a copy, and the engine holds them no longer.
   */
  private inputBytes(index: number): Promise<ChunkInputBytes[]> {
    const cached = this.kept.get(index);
    if (cached && !this.finalPass) return cached;
    if (cached) {
      this.kept.delete(index);
      return cached.then((inputs) => inputs.map((input) => ({ ...input, retained: false })));
    }
    const keep = this.keep && !this.finalPass;
    const promise = this.readInputs(this.chunks[index], keep);
    if (keep) this.kept.set(index, promise);
    // A failed prefetch is reported when the chunk is awaited, not as an unhandled rejection.
    promise.catch(() => undefined);
    return promise;
  }

  private async readInputs(range: ChunkRange, retained: boolean): Promise<ChunkInputBytes[]> {
    // A backend that reads files (and counts their NaN/Inf) gets where plain tensor rows lie.
    const byFile = this.ctx.backend.countsNonFinite === true && this.ctx.backend.readsFiles?.(range.length) === true;
    return Promise.all(
      this.job.inputs.map(async (input, i) => {
        if (this.aligned) {
          const rows = await this.aligned.read(i, range.rowStart, range.rowStart + range.rows);
          this.countInput(i, range.index, rows.bytes, rows.dtype, range.rowStart);
          return { bytes: rows.bytes, dtype: rows.dtype, cols: this.cols, retained };
        }
        const inCols = rowShape(input.tensor.shape).cols;
        const split = range.rows === 1 && range.cols !== this.cols; // piece of a long 1-D tensor
        if (this.lora && input.adapter?.kind === 'lora') {
          if (split) throw new Error(`internal: ${this.name}: a LoRA-adapted row cannot be split across chunks`);
          const bytes = await this.lora.read(i, range.rowStart, range.rows);
          this.countInput(i, range.index, bytes, 'F32');
          return { bytes, dtype: 'F32' as const, cols: inCols, retained };
        }
        const source = await this.sources[i];
        const size = dtypeSize(input.tensor.dtype);
        const offset = split ? range.start * size : range.rowStart * inCols * size;
        const length = split ? range.length * size : range.rows * inCols * size;
        const dtype = input.tensor.dtype as FloatDtype;
        const cols = split ? range.cols : inCols;
        // A range past the end is left to read(), which says what is wrong with the file.
        const shared = byFile && input.tensor.offset + offset + length <= source.size ? source.shared : null;
        if (shared) {
          this.ctx.onRead(length);
          return { bytes: NO_BYTES, file: { file: shared, offset: input.tensor.offset + offset, length }, dtype, cols };
        }
        const bytes = await source.read(input.tensor.offset + offset, length);
        this.ctx.onRead(length);
        // A counting backend counts these where they pass anyway (askCounts).
        if (!this.ctx.backend.countsNonFinite) this.countInput(i, range.index, bytes, input.tensor.dtype);
        return { bytes, dtype, cols, retained };
      }),
    );
  }

  /**
   * For a backend that counts NaN/Inf itself: marks the inputs read from their files
   * (not assembled here: aligned embeddings, LoRA-applied rows, which countInput counts) whose
   * chunk was not counted yet. takeCounts adds what the chunk found.
   */
  private askCounts(inputs: ChunkInputBytes[], chunkIndex: number): ChunkInputBytes[] {
    if (!this.ctx.backend.countsNonFinite || this.aligned) return inputs;
    return inputs.map((input, i) => {
      const key = i * this.chunks.length + chunkIndex;
      if (this.counted[key] !== 0 || this.job.inputs[i].adapter?.kind === 'lora') return input;
      this.counted[key] = 1;
      return { ...input, countNonFinite: true };
    });
  }

  private takeCounts(chunk: BackendChunk): void {
    const counts = chunk.nonFinite?.();
    if (!counts) throw new Error(`internal: ${this.name}: the ${this.ctx.backend.name} backend counts NaN/Inf but a chunk reported none`);
    counts.inputs.forEach((c, i) => c && addNonFinite(this.inputNonFinite[i], c));
    if (counts.output) addNonFinite(this.outputNonFinite, counts.output);
  }

  /**
   * Counts the NaN/Inf of input i's bytes of one chunk the first time that chunk is read. Of an
   * aligned embedding (rows from `alignedRowStart` on) only the rows that are the input's own count:
   * default and padding rows are means of rows counted where they are the input's own, and a NaN
   * there would otherwise be blamed on an input whose file has none.
   */
  private countInput(i: number, chunkIndex: number, bytes: Uint8Array, dtype: SafetensorsDtype, alignedRowStart?: number): void {
    const key = i * this.chunks.length + chunkIndex;
    if (this.counted[key] !== 0) return;
    this.counted[key] = 1;
    const input = this.job.inputs[i];
    const counts = this.inputNonFinite[i];
    const rowMap = input.rowMap;
    if (alignedRowStart === undefined || !rowMap) {
      addNonFinite(counts, countNonFinite(bytes, dtype));
      return;
    }
    const rowBytes = this.cols * dtypeSize(dtype);
    const rows = bytes.byteLength / rowBytes;
    const tokens = this.job.alignment?.tokens ?? 0;
    // Runs of consecutive own rows, each scanned at once.
    let run = -1;
    for (let r = 0; r <= rows; r++) {
      const own = r < rows && alignedRowStart + r < tokens && rowMap[alignedRowStart + r] >= 0;
      if (own && run < 0) run = r;
      if (!own && run >= 0) {
        addNonFinite(counts, countNonFinite(bytes.subarray(run * rowBytes, r * rowBytes), dtype));
        run = -1;
      }
    }
  }
}

const now = (): number => performance.now();
const NO_BYTES = new Uint8Array(0);
let nextJobId = 1;
