import type { NonFiniteCounts } from '../storage/non-finite';
import type { FileRange, FloatDtype } from '../storage/types';
import type { ChunkOps, Vec } from './types';
import type { Partial, ReductionToken } from './reduction';
import type { MatrixOps } from './matrix-ops';

/** Raw bytes of one input for one chunk, still in the stored dtype (backends decode them). */
export interface ChunkInputBytes {
  /** The chunk's rows of this input at the input's full row length (`cols`); empty where `file` is set. */
  readonly bytes: Uint8Array;
  /**
   * Where those rows lie in their file, instead of `bytes`: only for a backend that asked for it
   * (`readsFiles`), which reads them itself (a pool's workers, each straight into its own memory).
   */
  readonly file?: FileRange;
  readonly dtype: FloatDtype;
  /** Row length of the input; larger than the chunk's `cols` when an embedding is cut (docs/methods.md §1). */
  readonly cols: number;
  /**
   * The engine keeps these bytes for a later pass over the same chunk: a backend must neither
   * modify nor transfer (detach) them. Unretained bytes belong to the backend once handed over.
   */
  readonly retained?: boolean;
  /**
   * Count this input's NaN/±Inf elements (all of `bytes`) and report them in the chunk's
   * `nonFinite()` — only for backends with `countsNonFinite`, which count where the bytes pass
   * anyway (into WebAssembly memory, into a worker) instead of in one more sweep on the engine's thread.
   */
  readonly countNonFinite?: boolean;
}

/** NaN/±Inf a chunk counted: per input (null where not asked) and in the bytes `encode` returned. */
export interface ChunkNonFinite {
  readonly inputs: readonly (NonFiniteCounts | null)[];
  readonly output: NonFiniteCounts | null;
}

/** Where a chunk sits in its tensor. */
export interface ChunkSpec {
  readonly tensorName: string;
  readonly chunkIndex: number;
  readonly chunkCount: number;
  readonly start: number;
  readonly length: number;
  readonly rowStart: number;
  readonly rows: number;
  readonly cols: number;
  readonly totalRows: number;
  /** Seed of the merge's random numbers (DARE, DELLA…). */
  readonly seed: number;
  /**
   * Identifies the tensor job within the process: every pass over one tensor has the same value,
   * and no other job has it (a backend may keep per-chunk data between passes under it).
   */
  readonly jobId?: number;
}

/** One chunk being computed: the ops methods use, plus what the engine needs to finish it. */
export interface BackendChunk {
  readonly ops: ChunkOps;
  /** This chunk's partial values of the given reductions (numbers or per-row / per-bin arrays). */
  readPartials(tokens: readonly ReductionToken[]): Promise<Partial[]>;
  /** The output chunk rounded to the output dtype (round-to-nearest-even). */
  encode(v: Vec, dtype: FloatDtype): Promise<Uint8Array>;
  /** Frees the chunk's vectors; the chunk must not be used afterwards. */
  release(): void;
  /** With `ComputeBackend.countsNonFinite`: what the chunk counted, once its result was read. */
  nonFinite?(): ChunkNonFinite;
  /**
   * With `ComputeBackend.readsFiles`: the share (0..1) of the chunk's time on the backend that
   * went into reading its inputs, once its result was read. The engine counts that share of its
   * wait for the chunk as waiting for reads.
   */
  readShare?(): number;
}

/** A place where tensor arithmetic runs: the CPU reference or WebGPU. */
export interface ComputeBackend {
  readonly name: 'cpu' | 'webgpu';
  /**
   * Most elements one chunk may hold (a GPU's storage binding limit); the engine never makes a
   * chunk larger, whatever the memory budget. Undefined: no limit beyond the budget.
   */
  readonly maxChunkElements?: number;
  /**
   * How many chunks the engine should keep in flight (begun, not yet finished) so that the
   * backend can overlap them: upload, compute and readback on a GPU, workers of a pool. The
   * engine still finishes chunks in order and divides its memory budget among them. Default 1.
   */
  readonly chunksInFlight?: number;
  /**
   * How many tensors the engine may merge at once (default 1). With 2, a pool's workers start the
   * next tensor's first pass while the last chunks of a pass of this one finish, instead of one
   * worker waiting for the other at every pass's end; with more, a worker has another small
   * tensor's chunk queued while the engine answers the end of a pass. Each tensor is still
   * written in plan order: its output pass waits for the tensor before it. Each tensor's chunks
   * are sized for the whole budget: a pool's workers compute one chunk at a time each whatever
   * the number of tensors, and the engine holds the other tensors' chunks as file ranges
   * (readsFiles), or as their input bytes where it reads them itself (a download in progress).
   * Beyond two, the engine starts a tensor only while those in flight are small: their inputs
   * together, each counted up to the budget, within twice the budget.
   */
  readonly jobsInFlight?: number;
  /** The tensor job `jobId` (ChunkSpec.jobId) is done: nothing it kept for later passes is needed any more. */
  endJob?(jobId: number): void;
  /**
   * Takes back bytes a chunk's `encode` returned once the engine has written them and holds them
   * no longer, to encode later chunks into their buffer instead of allocating (each buffer
   * allocated and dropped per chunk had the engine's thread collecting garbage every 0.1 s).
   */
  recycle?(bytes: Uint8Array): void;
  /** Chunks count the NaN/±Inf of inputs marked `countNonFinite` and of their encoded output (`BackendChunk.nonFinite`). */
  readonly countsNonFinite?: boolean;
  /**
   * True when a chunk of `length` elements should get its inputs as `file` ranges wherever their
   * source has a SharedFile, rather than as bytes the engine read. Undefined: never.
   */
  readsFiles?(length: number): boolean;
  /**
   * The dense matrix operations of the forward pass and of LoRA's product (docs/model.md §7) on
   * this backend. Undefined: the CPU reference (`cpuMatrixOps`).
   */
  readonly matrix?: MatrixOps;
  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk;
  dispose(): Promise<void>;
}
