import type { ComputeBackend } from '../../compute-backend';
import { CpuBackend } from '../cpu-backend';
import { SimdCpuBackend } from './simd-cpu-backend';
import { hasWasmSimd, instantiateKernels } from './wasm-kernels';

export { SimdCpuBackend, type KeptVector } from './simd-cpu-backend';
export { hasWasmSimd } from './wasm-kernels';

/** The CPU backend on WebAssembly SIMD kernels; rejects where WebAssembly SIMD is missing. */
export async function createSimdCpuBackend(): Promise<SimdCpuBackend> {
  if (!hasWasmSimd()) throw new Error('this JavaScript engine has no WebAssembly SIMD (128-bit)');
  return new SimdCpuBackend(await instantiateKernels());
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
