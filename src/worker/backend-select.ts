import { createCpuBackend } from '../backend';
import type { ComputeBackend } from '../backend/compute-backend';

/**
 * Picks the compute backend of a merge. The rule of 'auto': WebGPU on a hardware adapter, else the
 * CPU backend — a software adapter (SwiftShader, llvmpipe) is several times slower than the CPU
 * backend, so it runs only when the user asks for WebGPU. The WebGPU backend (src/gpu) is
 * imported lazily, so a browser without WebGPU never loads its kernels; when WebGPU is missing,
 * has no adapter, or its import or device creation fails, 'auto' falls back to the CPU backend
 * and says why.
 */

export interface BackendChoice {
  readonly backend: ComputeBackend;
  readonly name: 'webgpu' | 'cpu';
  /** Why this backend runs, in plain words (shown in the Run step). */
  readonly reason: string;
  /** A warning: the CPU backend runs because WebGPU failed, or WebGPU runs on a software adapter. */
  readonly notice?: string;
}

/** What the factory needs of src/gpu's public surface (an interface, so tests can stand in). */
export interface GpuModule {
  readonly WebGpuBackend: {
    create(gpu: GPU | undefined, options?: { budgetBytes?: number }): Promise<ComputeBackend & { readonly info?: { readonly isSoftware?: boolean; readonly description?: string } }>;
  };
}

export type GpuModuleLoader = () => Promise<GpuModule | null>;

/**
 * Settings ask for WebGPU and there is none. The message says what to do, once: the app shows it as
 * it is (no extra advice of its own; it tells the error by its name across the worker boundary).
 */
export class WebGpuUnavailableError extends Error {
  constructor(why: string) {
    super(`WebGPU was asked for, but ${why}. Choose Auto or the CPU backend in Settings (slower, same result), or use a browser with WebGPU.`);
    this.name = 'WebGpuUnavailableError';
  }
}

/** src/gpu is a separate chunk: browsers without WebGPU never download its kernels. */
const defaultLoader: GpuModuleLoader = () => import('../gpu');

export async function selectBackend(
  preference: 'auto' | 'webgpu' | 'cpu',
  options: {
    gpu?: GPU | undefined;
    budgetBytes?: number;
    loadGpu?: GpuModuleLoader;
    /** Starts the CPU backend where it is chosen (a pool of workers); default the one on this thread. */
    cpu?: () => Promise<ComputeBackend>;
  } = {},
): Promise<BackendChoice> {
  // The CPU backend runs on WebAssembly SIMD kernels, or the JavaScript reference without them.
  const createCpu = options.cpu ?? createCpuBackend;
  if (preference === 'cpu') return { backend: await createCpu(), name: 'cpu', reason: 'The CPU backend was chosen in Settings.' };
  const fallback = async (why: string): Promise<BackendChoice> => {
    if (preference === 'webgpu') throw new WebGpuUnavailableError(why);
    const notice = `Merging on the CPU (slower): ${why}.`;
    return { backend: await createCpu(), name: 'cpu', reason: notice, notice };
  };
  if (!options.gpu) return fallback('this browser has no WebGPU (navigator.gpu is missing; Chrome or Edge 113+ have it)');
  let module: GpuModule | null;
  try {
    module = await (options.loadGpu ?? defaultLoader)();
  } catch (error) {
    return fallback(`the WebGPU backend could not be loaded (${(error as Error).message})`);
  }
  if (!module?.WebGpuBackend) return fallback('this build of Alloy has no WebGPU backend');
  let backend: Awaited<ReturnType<GpuModule['WebGpuBackend']['create']>>;
  try {
    backend = await module.WebGpuBackend.create(options.gpu, { budgetBytes: options.budgetBytes });
  } catch (error) {
    return fallback(`WebGPU could not start (${(error as Error).message})`);
  }
  const adapter = backend.info?.description || 'no GPU';
  if (!backend.info?.isSoftware) return { backend, name: 'webgpu', reason: `WebGPU on ${adapter}: a hardware GPU.` };
  if (preference === 'webgpu') {
    const notice = `WebGPU runs on a software adapter (${adapter}) because Settings ask for WebGPU: expect it to be slower than the CPU backend.`;
    return { backend, name: 'webgpu', reason: notice, notice };
  }
  await backend.dispose().catch(() => undefined);
  return {
    backend: await createCpu(),
    name: 'cpu',
    reason: `CPU backend: the only WebGPU adapter (${adapter}) is a software renderer, slower than the CPU backend.`,
  };
}

/**
 * A backend being started for a merge that may fail before it is used: `take` hands it over (the
 * merge then disposes of it), and `disposeUntaken` disposes of it when it was never taken.
 */
export function startBackend<T extends { backend: ComputeBackend }>(started: Promise<T>) {
  let taken = false;
  // A failure to start is thrown by `take`; until then it is not an unhandled rejection.
  started.catch(() => undefined);
  return {
    take: (): Promise<T> => {
      taken = true;
      return started;
    },
    disposeUntaken: async (): Promise<void> => {
      if (taken) return;
      const choice = await started.catch(() => null);
      await choice?.backend.dispose().catch(() => undefined);
    },
  };
}
