import { CpuBackend } from '../cpu/cpu-backend';
import { createSimdCpuBackend, hasWasmSimd, type FileRangeReader, type KeptVector } from '../cpu/simd';
import type { ComputeBackend } from '../compute-backend';
import type { ChunkOps, Vec } from '../types';

/** A vector kept by an InThreadBackend across chunks; only that backend reads it. */
export type Kept = { readonly __kept: unique symbol };

/**
 * The backend each pool worker (and the pool's main side, for tiny chunks) computes with, plus
 * how a vector outlives its chunk, which the worker's cross-pass cache needs.
 */
export interface InThreadBackend {
  readonly backend: ComputeBackend;
  /** Its chunks read inputs given as file ranges (ChunkInputBytes.file) themselves. */
  readonly readsFiles: boolean;
  /**
   * Keeps vector `v` of the chunk whose ops are `ops` after that chunk is released; `bits`: v is a
   * 0/1 mask, which the SIMD backend keeps as one bit per element (the reference as it is).
   */
  keep(ops: ChunkOps, v: Vec, bits: boolean): Kept;
  /** A vector of the chunk whose ops are `ops` holding a kept value (no op modifies it; it stays kept). */
  use(ops: ChunkOps, kept: Kept): Vec;
  /** Frees a kept value. */
  drop(kept: Kept): void;
}

/**
 * The CPU reference backend. Its vectors are Float32Arrays of the chunk's length and its ops
 * never write into their arguments, so a kept copy can be handed to them as it is.
 */
export function cpuInThreadBackend(): InThreadBackend {
  return {
    backend: new CpuBackend(),
    readsFiles: false,
    keep: (_ops, v) => (v as unknown as Float32Array).slice() as unknown as Kept,
    use: (_ops, kept) => kept as unknown as Vec,
    drop: () => {},
  };
}

/**
 * The SIMD WebAssembly kernels (byte-identical to the reference); kept vectors stay in wasm memory.
 * With `readInto` (a synchronous reader: Node), its chunks read file ranges straight into that memory.
 */
export async function simdInThreadBackend(readInto?: FileRangeReader): Promise<InThreadBackend> {
  const backend = await createSimdCpuBackend(readInto);
  return {
    backend,
    readsFiles: readInto !== undefined,
    keep: (ops, v, bits) => backend.keep(ops, v, bits) as unknown as Kept,
    use: (ops, kept) => backend.use(ops, kept as unknown as KeptVector),
    drop: (kept) => backend.drop(kept as unknown as KeptVector),
  };
}

/** The hook every worker entry and the pool use: the SIMD kernels where WebAssembly has SIMD. */
export async function createInThreadBackend(readInto?: FileRangeReader): Promise<InThreadBackend> {
  return hasWasmSimd() ? simdInThreadBackend(readInto) : cpuInThreadBackend();
}
