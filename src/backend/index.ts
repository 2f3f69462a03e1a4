export type { ChunkOps, Operand, Reduction, ReductionSet, Resolved, Vec } from './types';
export type { BackendChunk, ChunkInputBytes, ChunkNonFinite, ChunkSpec, ComputeBackend } from './compute-backend';
export type { ReductionKind, ReductionToken, ChunkPlace } from './reduction';
export { combinePartial, emptyTotal } from './reduction';
export { pcgHash, hashName, streamKey, randomUniform } from './random';
export { CpuBackend } from './cpu/cpu-backend';
export { createSimdCpuBackend, createCpuBackend, hasWasmSimd, SimdCpuBackend } from './cpu/simd';
