import type { ComputeBackend } from '../../compute-backend';
import { CpuBackend } from '../cpu-backend';
import { SimdCpuBackend, type FileRangeReader } from './simd-cpu-backend';
import { hasWasmSimd, instantiateKernels } from './wasm-kernels';

export { heldBytesPerElement, packedMaskBytes, SimdCpuBackend, type FileRangeReader, type KeptVector } from './simd-cpu-backend';
export { hasWasmSimd } from './wasm-kernels';

/**
 * The CPU backend on WebAssembly SIMD kernels; rejects where WebAssembly SIMD is missing. With
 * `readInto`, its chunks read inputs given as file ranges themselves (ChunkInputBytes.file).
 */
export async function createSimdCpuBackend(readInto?: FileRangeReader): Promise<SimdCpuBackend> {
  if (!hasWasmSimd()) throw new Error('this JavaScript engine has no WebAssembly SIMD (128-bit)');
  return new SimdCpuBackend(await instantiateKernels(), readInto);
}

/**
 * The fastest CPU backend this engine runs: the SIMD kernels, or the JavaScript reference where
 * WebAssembly SIMD is missing or cannot start (both give the same bytes).
 */
export async function createCpuBackend(): Promise<ComputeBackend> {
  if (!hasWasmSimd()) return new CpuBackend();
  try {
    return await createSimdCpuBackend();
  } catch {
    return new CpuBackend();
  }
}
