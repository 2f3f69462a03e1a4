import { createCpuBackend } from '../backend/cpu/simd';
import type { ComputeBackend } from '../backend/compute-backend';
import { describeAdapter, isSoftwareAdapter, requestAdapter, requestDevice } from './device';
import { GpuUnavailableError } from './errors';
import { WebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend';

/**
 * The Node side of WebGPU: Dawn through the `webgpu` package, imported only here and only when a
 * GPU backend is asked for (so browser bundles and CPU-only runs never load the native module).
 */
export async function nodeGpu(): Promise<GPU> {
  let mod: typeof import('webgpu');
  try {
    mod = await import('webgpu');
  } catch (error) {
    throw new GpuUnavailableError(`the 'webgpu' package (Dawn for Node) could not be loaded: ${(error as Error).message}`);
  }
  return mod.create([]);
}

export async function createNodeWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  return WebGpuBackend.create(await nodeGpu(), options);
}

export type BackendChoice = 'auto' | 'cpu' | 'webgpu';

export interface NodeBackendOptions extends WebGpuBackendOptions {
  /** Makes the CPU backend when that is the choice (default: the SIMD kernels on this thread). */
  readonly cpu?: () => Promise<ComputeBackend>;
}

export interface ChosenBackend {
  readonly backend: ComputeBackend;
  /** Why this backend was chosen, for the user (e.g. "no hardware GPU adapter: CPU"). */
  readonly reason: string;
}

/**
 * `cpu`: the CPU backend. `webgpu`: WebGPU on whatever adapter there is (a software one too), or
 * GpuUnavailableError. `auto`: WebGPU on a hardware adapter, else the CPU backend — a software
 * adapter (SwiftShader, lavapipe, WARP) is slower than the CPU backend, so it is never picked.
 */
export async function chooseNodeBackend(choice: BackendChoice, options: NodeBackendOptions = {}): Promise<ChosenBackend> {
  const cpu = options.cpu ?? createCpuBackend;
  if (choice === 'cpu') return { backend: await cpu(), reason: 'cpu backend (requested)' };
  let gpu: GPU;
  let adapter: GPUAdapter;
  try {
    gpu = await nodeGpu();
    adapter = await requestAdapter(gpu, options);
  } catch (error) {
    if (choice === 'webgpu') throw error;
    return { backend: await cpu(), reason: 'cpu backend (no WebGPU adapter here)' };
  }
  if (choice === 'auto' && isSoftwareAdapter(adapter)) {
    return {
      backend: await cpu(),
      reason: `cpu backend (the only WebGPU adapter, ${describeAdapter(adapter)}, is a software renderer: slower than the CPU backend)`,
    };
  }
  const { device, info } = await requestDevice(adapter, options);
  return { backend: await WebGpuBackend.fromDevice(device, info, options, [gpu, adapter]), reason: `webgpu backend on ${info.description}` };
}
