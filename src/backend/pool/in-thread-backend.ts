import { CpuBackend } from '../cpu/cpu-backend';
import type { ComputeBackend } from '../compute-backend';
import type { ChunkOps, Vec } from '../types';

/**
 * The backend each pool worker (and the pool's main side, for tiny chunks) computes with, plus
 * how its vectors become plain Float32Arrays and back, which the worker's cross-pass cache needs.
 */
export interface InThreadBackend {
  readonly backend: ComputeBackend;
  /** The values of a vector of a chunk of `backend` (may be a view; the cache copies it). */
  toArray(v: Vec): Float32Array;
  /** A vector of the chunk whose ops are `ops` holding `values` (not modified by any op). */
  fromArray(ops: ChunkOps, values: Float32Array): Vec;
}

/**
 * The CPU reference backend. Its vectors are Float32Arrays of the chunk's length and its ops
 * never write into their arguments, so a cached array can be handed to them as it is.
 */
export function cpuInThreadBackend(): InThreadBackend {
  return {
    backend: new CpuBackend(),
    toArray: (v) => v as unknown as Float32Array,
    fromArray: (_ops, values) => values as unknown as Vec,
  };
}

/** The hook every worker entry and the pool use: the backend that computes pooled chunks. */
export async function createInThreadBackend(): Promise<InThreadBackend> {
  return cpuInThreadBackend();
}
