import type { FloatDtype, SharedFile } from '../../storage/types';
import type { ChunkNonFinite, ChunkSpec } from '../compute-backend';
import type { Partial } from '../reduction';

/**
 * The messages between a WorkerPoolBackend (main side) and its workers. A chunk travels as the
 * small expression graph its method's callback recorded, plus the input bytes the worker does
 * not already hold; the worker replays the graph on its own in-thread backend and answers with
 * the partials or the encoded bytes (as transferred buffers). No SharedArrayBuffer anywhere.
 */

/** The ChunkOps operations a graph node can be (names of the ChunkOps methods). */
export const VECTOR_OPS = [
  'input', 'add', 'sub', 'mul', 'div', 'min', 'max', 'neg', 'abs', 'sign', 'sqrt', 'gt', 'ge', 'eq', 'where',
  'weightedSum', 'random', 'perRow', 'keepTopMagnitude', 'signConsensus', 'rowRanks', 'exp', 'log',
  'rowMaxBroadcast', 'rowSumBroadcast', 'periodic',
] as const;
export const REDUCTION_OPS = ['sum', 'rowSums', 'chunkSums', 'magnitudeHistogram', 'dot', 'periodicSums'] as const;
export type OpName = (typeof VECTOR_OPS)[number] | (typeof REDUCTION_OPS)[number];

/**
 * An argument of a node: a scalar, a reference to an earlier node (`{ v: id }`), null, a
 * Float64Array of values (perRow / periodic), or an array of those (weightedSum terms…).
 */
export type Arg = number | null | { readonly v: number } | NaNBits | Float64Array | readonly Arg[];

/**
 * A NaN scalar with its bit pattern: structured cloning does not keep a NaN's sign and payload,
 * which reach the output through f32 arithmetic (a NaN of a different sign is a different byte).
 */
export interface NaNBits {
  readonly nan: Float64Array;
}

/** A number as it travels: NaNs keep their bits. */
export function wireNumber(x: number): number | NaNBits {
  return x === x ? x : { nan: Float64Array.of(x) };
}
export function isNaNBits(x: unknown): x is NaNBits {
  return typeof x === 'object' && x !== null && 'nan' in x;
}

export interface GraphNode {
  readonly op: OpName;
  readonly args: readonly Arg[];
}

/**
 * One input's bytes for the worker, or where in a file it reads them itself (ChunkInputBytes.file);
 * null where the worker holds everything derived from it.
 */
export interface WireInput {
  readonly bytes: Uint8Array;
  readonly file?: WireFileRange;
  readonly dtype: FloatDtype;
  readonly cols: number;
  /** Count its NaN/±Inf (ChunkInputBytes.countNonFinite). */
  readonly countNonFinite?: boolean;
}

/**
 * A file range as it travels: the file by the number the pool gave it. The file itself goes to a
 * worker once, in the first request that names it there (ChunkRequest.files): a Blob or an OPFS
 * file handle cloned into every request cost the browser process a few messages each (a Linear
 * merge sends hundreds of chunks of three inputs).
 */
export interface WireFileRange {
  readonly file: number;
  readonly offset: number;
  readonly length: number;
}

/** What a chunk's graph is computed for: its reductions' partials, or its one vector encoded. */
export type ChunkResultKind = { readonly kind: 'partials' } | { readonly kind: 'encode'; readonly dtype: FloatDtype };

/**
 * A computed chunk: the partials or the encoded bytes, the NaN/±Inf its backend counted, and the
 * share of the worker's time on it that went into reading its inputs from their files.
 */
export interface ChunkResult {
  readonly partials?: Partial[];
  readonly bytes?: Uint8Array;
  readonly nonFinite: ChunkNonFinite;
  readonly readShare?: number;
}

export interface ChunkRequest {
  readonly type: 'chunk';
  readonly id: number;
  readonly spec: ChunkSpec;
  readonly inputs: readonly (WireInput | null)[];
  /** The files its inputs read that this worker was not sent before, with their numbers (WireFileRange). */
  readonly files: readonly (readonly [number, SharedFile])[];
  readonly nodes: readonly GraphNode[];
  /** Reduction nodes whose partials to return, or the one vector node to encode. */
  readonly roots: readonly number[];
  readonly result: ChunkResultKind;
  /** Nodes whose value the worker takes from its cache (node id, cache key). */
  readonly hits: readonly (readonly [number, string])[];
  /** Nodes whose value the worker keeps in its cache after this chunk (node id, cache key). */
  readonly stores: readonly (readonly [number, string])[];
  /** Which of `stores` are 0/1 masks, kept as one bit per element. */
  readonly bitStores: readonly number[];
  /** Forget the `hits` once the chunk is computed: this is their job's last pass. */
  readonly forgetHits: boolean;
}

/** Cached vectors the worker forgets (their job ended), in turn with the chunks before and after. */
export interface ForgetRequest {
  readonly type: 'forget';
  readonly keys: readonly string[];
}

/** Output bytes a chunk of this worker encoded, written by the engine: the buffer to encode into again. */
export interface RecycleRequest {
  readonly type: 'recycle';
  readonly buffer: ArrayBuffer;
}

/** What the pool sends its workers. */
export type PoolRequest = ChunkRequest | RecycleRequest | ForgetRequest;

export type ChunkResponse =
  | {
      readonly type: 'result';
      readonly id: number;
      readonly partials?: (Exclude<Partial, number> | number | NaNBits)[];
      readonly bytes?: Uint8Array;
      readonly nonFinite: ChunkNonFinite;
      readonly readShare: number;
    }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

/** The two ends of a worker as the pool sees them (worker_threads or a Web Worker). */
export interface WorkerPort {
  post(message: PoolRequest, transfer: ArrayBuffer[]): void;
  /** Registers the handlers once: answers, and a failure after which the worker is gone. */
  listen(onMessage: (message: ChunkResponse) => void, onFailure: (error: Error) => void): void;
  terminate(): Promise<void> | void;
}

/**
 * The buffer of a typed array when the view starts it: transferring that buffer moves the view
 * (with its length) to the receiver without a copy.
 */
export function leadingBuffer(view: ArrayBufferView): ArrayBuffer | null {
  const buffer = view.buffer;
  return buffer instanceof ArrayBuffer && view.byteOffset === 0 ? buffer : null;
}

/** The buffer of a typed array when the view covers all of it (then it can be transferred). */
export function wholeBuffer(view: ArrayBufferView): ArrayBuffer | null {
  const buffer = view.buffer;
  if (!(buffer instanceof ArrayBuffer)) return null;
  return view.byteOffset === 0 && view.byteLength === buffer.byteLength ? buffer : null;
}
