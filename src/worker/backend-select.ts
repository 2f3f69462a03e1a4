import { createCpuBackend } from '../backend';
import type { ComputeBackend } from '../backend/compute-backend';

/**
 * Picks the compute backend of a merge. The WebGPU backend (src/gpu) is imported lazily, so a
 * browser without WebGPU never loads its kernels; when WebGPU is missing, has no adapter, or its
 * import or device creation fails, 'auto' falls back to the CPU backend and says why.
 */

export interface BackendChoice {
  readonly backend: ComputeBackend;
  readonly name: 'webgpu' | 'cpu';
  /** Why the CPU backend runs although WebGPU was wanted (shown to the user). */
  readonly notice?: string;
}

/** What the factory needs of src/gpu's public surface (an interface, so tests can stand in). */
export interface GpuModule {
  readonly WebGpuBackend: {
    create(gpu: GPU | undefined, options?: { budgetBytes?: number }): Promise<ComputeBackend & { readonly info?: { readonly isSoftware?: boolean; readonly description?: string } }>;
  };
}

export type GpuModuleLoader = () => Promise<GpuModule | null>;

/** src/gpu is a separate chunk: browsers without WebGPU never download its kernels. */
const defaultLoader: GpuModuleLoader = () => import('../gpu');

export async function selectBackend(
  preference: 'auto' | 'webgpu' | 'cpu',
  options: { gpu?: GPU | undefined; budgetBytes?: number; loadGpu?: GpuModuleLoader } = {},
): Promise<BackendChoice> {
  // The CPU backend runs on WebAssembly SIMD kernels, or the JavaScript reference without them.
  if (preference === 'cpu') return { backend: await createCpuBackend(), name: 'cpu' };
  const fallback = async (why: string): Promise<BackendChoice> => {
    if (preference === 'webgpu') throw new Error(`WebGPU was asked for, but ${why}. Choose the CPU backend (slower) or another browser.`);
    return { backend: await createCpuBackend(), name: 'cpu', notice: `Merging on the CPU (slower): ${why}.` };
  };
  if (!options.gpu) return fallback('this browser has no WebGPU (navigator.gpu is missing; Chrome or Edge 113+ have it)');
  let module: GpuModule | null;
  try {
    module = await (options.loadGpu ?? defaultLoader)();
  } catch (error) {
    return fallback(`the WebGPU backend could not be loaded (${(error as Error).message})`);
  }
  if (!module?.WebGpuBackend) return fallback('this build of Alloy has no WebGPU backend');
  try {
    const backend = await module.WebGpuBackend.create(options.gpu, { budgetBytes: options.budgetBytes });
    const notice = backend.info?.isSoftware
      ? `WebGPU runs on a software adapter (${backend.info.description || 'no GPU'}): expect CPU speed`
      : undefined;
    return { backend, name: 'webgpu', ...(notice ? { notice } : {}) };
  } catch (error) {
    return fallback(`WebGPU could not start (${(error as Error).message})`);
  }
}
