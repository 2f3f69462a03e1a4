import { CpuBackend } from '../cpu/cpu-backend';
import { createSimdCpuBackend, hasWasmSimd } from '../cpu/simd';
import type { ComputeBackend } from '../compute-backend';
import type { ChunkOps, Vec } from '../types';

/**
 * The backend each pool worker (and the pool's main side, for tiny chunks) computes with, plus
 * how its vectors become plain Float32Arrays and back, which the worker's cross-pass cache needs.
 */
export interface InThreadBackend {
  readonly backend: ComputeBackend;
  /** The values of a vector of the chunk whose ops are `ops` (may be a view; the cache copies it). */
  toArray(ops: ChunkOps, v: Vec): Float32Array;
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
    toArray: (_ops, v) => v as unknown as Float32Array,
    fromArray: (_ops, values) => values as unknown as Vec,
  };
}

/** The SIMD WebAssembly kernels (byte-identical to the reference); vectors live in wasm memory. */
export async function simdInThreadBackend(): Promise<InThreadBackend> {
  const backend = await createSimdCpuBackend();
  type SimdOps = ChunkOps & { valuesOf(v: Vec): Float32Array; vectorOf(values: Float32Array): Vec };
  return {
    backend,
    toArray: (ops, v) => (ops as SimdOps).valuesOf(v),
    fromArray: (ops, values) => (ops as SimdOps).vectorOf(values),
  };
}

/** The hook every worker entry and the pool use: the SIMD kernels where WebAssembly has SIMD. */
export async function createInThreadBackend(): Promise<InThreadBackend> {
  return hasWasmSimd() ? simdInThreadBackend() : cpuInThreadBackend();
}
