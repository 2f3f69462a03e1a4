import type { BackendChunk, ChunkInputBytes, ChunkSpec, ComputeBackend } from '../backend/compute-backend';
import { BufferPool } from './buffer-pool';
import { CommandRecorder } from './command-recorder';
import { requestAdapter, requestDevice, type GpuDeviceInfo, type GpuDeviceOptions } from './device';
import { GpuDeviceLostError, GpuOperationError } from './errors';
import { GpuMatrixOps } from './gpu-matrix-ops';
import { KernelCache, probeFusedFma } from './kernels';
import { WebGpuChunk } from './webgpu-chunk';

export interface WebGpuBackendOptions extends GpuDeviceOptions {
  /**
   * GPU memory the backend aims to stay within (buffers in use plus the free ones it keeps for
   * reuse). Give it the engine's `budgetBytes`: the engine sizes chunks so that a chunk's
   * buffers fit in it. Default 128 MiB.
   */
  readonly budgetBytes?: number;
  /**
   * Use at most this many storage buffers per shader stage (at least 4), below the device's limit,
   * so that tests exercise the multi-pass paths of many-input operations.
   */
  readonly maxStorageBuffersPerStage?: number;
  /** Longest wait for the GPU at one synchronisation point before giving up (default 120 s). */
  readonly syncTimeoutMs?: number;
  /**
   * How rowRanks sorts rows: `bitonic` in workgroup memory (fast on GPUs) or `serial`, one thread
   * per row with no workgroup barriers (fast on software adapters, which run barriers very
   * slowly). Default: serial on a software adapter, bitonic elsewhere.
   */
  readonly rowRanks?: 'bitonic' | 'serial';
  /** Use at most this many workgroups per grid dimension (tests of the 2-D grids on small chunks). */
  readonly maxWorkgroupsPerDimension?: number;
  /**
   * Chunks the engine keeps in flight: while the host reads chunk i+1 and uploads it, the GPU
   * computes chunk i and chunk i−1 is read back and written. They share the budget, and each
   * has fixed costs (histograms, staging buffers), so the default is one chunk per 32 MiB of
   * budget, from 1 to 3 (3 at the default 128 MiB).
   */
  readonly chunksInFlight?: number;
}

/** GPU memory use of the backend's buffer pool. */
export interface GpuMemoryStats {
  readonly allocatedBytes: number;
  readonly highWaterBytes: number;
}

/**
 * The WebGPU backend: the device's lifecycle (creation, loss, uncaptured errors and error scopes,
 * timeouts, memory statistics, disposal). The operations are WebGpuChunk's (webgpu-chunk.ts).
 *
 *
 * - Inputs are uploaded in their stored dtype (bf16/f16/f32 bytes) and decoded where kernels read
 *   them; outputs are rounded to the output dtype on the GPU, so only output bytes come back.
 * - Elementwise operations (arithmetic, comparisons, where, weightedSum, signConsensus, random,
 *   perRow, periodic, the simple keepTopMagnitude) are lazy expressions (fused.ts), compiled into
 *   one generated kernel per result that is needed; the other operations (reductions, histograms,
 *   tie-counted top-k, row ranks, row broadcasts, many-term sign consensus) are kernels of their
 *   own that read an expression's values from a buffer lent for the one operation.
 * - All of a chunk's work is recorded into one command encoder and submitted when the engine needs
 *   numbers back (reduction partials, the encoded output), read through one mapped staging buffer.
 * - Numbers agree with the CPU backend: f32 elementwise arithmetic with the CPU's roundings (exact
 *   products, correctly rounded division, sqrt, exp and log), double-float sums where the CPU
 *   sums in f64.
 * - GPU memory comes from a pool that keeps its total (in use and free) within `budgetBytes`
 *   whenever the chunk in flight allows, and records the high-water mark (`memory`).
 */
export class WebGpuBackend implements ComputeBackend {
  readonly name = 'webgpu' as const;
  /** Largest chunk the bindings allow (the widest per-element buffer, sign-consensus state, is 16 bytes). */
  readonly maxChunkElements: number;
  /** Storage buffers one dispatch may bind. */
  readonly storageBuffersPerStage: number;
  readonly rowRanksMethod: 'bitonic' | 'serial';
  readonly chunksInFlight: number;

  readonly pool: BufferPool;
  readonly kernels: KernelCache;
  readonly recorder: CommandRecorder;
  private lostInfo: { reason: string; message: string } | null = null;
  private deferredError: Error | null = null;
  private readonly lostPromise: Promise<never>;
  private disposed = false;
  private readonly syncTimeoutMs: number;
  private readonly maxGroupsPerDimension: number;
  private matrixOps: GpuMatrixOps | null = null;

  static async create(gpu: GPU | undefined, options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
    const adapter = await requestAdapter(gpu, options);
    const { device, info } = await requestDevice(adapter, options);
    return WebGpuBackend.fromDevice(device, info, options, [gpu, adapter]);
  }

  /**
   * A backend on a device from `requestDevice` (runs a start-up probe of the device's fma).
   * `owners`: the GPU and adapter objects the device came from, kept referenced for as long as
   * the backend lives — dawn.node tears a device down when they are garbage collected.
   */
  static async fromDevice(
    device: GPUDevice,
    info: GpuDeviceInfo,
    options: WebGpuBackendOptions = {},
    owners: readonly unknown[] = [],
  ): Promise<WebGpuBackend> {
    const fusedFma = await probeFusedFma(device);
    return new WebGpuBackend(device, info, fusedFma, options, owners);
  }

  private constructor(
    readonly device: GPUDevice,
    readonly info: GpuDeviceInfo,
    /** Whether the device's fma() rounds once (else kernels use Dekker products). */
    readonly fusedFma: boolean,
    options: WebGpuBackendOptions,
    private readonly owners: readonly unknown[],
  ) {
    const budget = options.budgetBytes ?? 128 * 1024 * 1024;
    this.syncTimeoutMs = options.syncTimeoutMs ?? 120_000;
    this.storageBuffersPerStage = Math.max(
      4,
      Math.min(info.maxStorageBuffersPerShaderStage, options.maxStorageBuffersPerStage ?? Infinity),
    );
    this.rowRanksMethod = options.rowRanks ?? (info.isSoftware ? 'serial' : 'bitonic');
    this.chunksInFlight = Math.max(1, Math.floor(options.chunksInFlight ?? Math.min(3, budget / (32 * 1024 * 1024))));
    this.maxChunkElements = Math.floor(Math.min(info.maxStorageBufferBindingSize, info.maxBufferSize) / 16);
    this.pool = new BufferPool(device, budget);
    this.kernels = new KernelCache(device, fusedFma);
    this.maxGroupsPerDimension = Math.max(1, Math.min(info.maxComputeWorkgroupsPerDimension, options.maxWorkgroupsPerDimension ?? Infinity));
    this.recorder = new CommandRecorder(device, this.pool, this.maxGroupsPerDimension);
    this.lostPromise = device.lost.then((lost) => {
      if (!this.disposed) this.lostInfo = { reason: lost.reason ?? 'unknown', message: lost.message ?? '' };
      throw this.lostError();
    });
    this.lostPromise.catch(() => undefined);
    const onError = (event: Event): void => {
      const error = (event as GPUUncapturedErrorEvent).error;
      this.deferredError ??= new GpuOperationError(`WebGPU error: ${error?.message ?? String(error)}`);
    };
    if (typeof device.addEventListener === 'function') device.addEventListener('uncapturederror', onError);
    else (device as { onuncapturederror: unknown }).onuncapturederror = onError;
  }

  get memory(): GpuMemoryStats {
    return { allocatedBytes: this.pool.allocatedBytes, highWaterBytes: this.pool.highWaterBytes };
  }

  /** Milliseconds the GPU queue has had work since the backend started (see QueueActivity). */
  get queueBusyMs(): number {
    return this.recorder.activity.busyMs;
  }

  /** The forward pass's and LoRA's matrix operations on this device (made on first use). */
  get matrix(): GpuMatrixOps {
    this.check();
    this.matrixOps ??= new GpuMatrixOps({
      device: this.device,
      pool: this.pool,
      kernels: this.kernels,
      maxBindingBytes: Math.min(this.info.maxStorageBufferBindingSize, this.info.maxBufferSize),
      maxGroupsPerDimension: this.maxGroupsPerDimension,
      check: () => this.check(),
      guard: (p) => this.guard(p),
    });
    return this.matrixOps;
  }

  beginChunk(spec: ChunkSpec, inputs: readonly ChunkInputBytes[]): BackendChunk {
    this.check();
    return new WebGpuChunk(this, spec, inputs);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.recorder.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), delay(5000)]).catch(() => undefined);
    this.recorder.dispose();
    this.matrixOps?.dispose();
    this.pool.destroyAll();
    this.device.destroy();
    void this.owners;
  }

  /** Throws if the device was lost or an earlier command failed. */
  check(): void {
    if (this.disposed) throw new Error('internal: the WebGPU backend was disposed');
    if (this.lostInfo) throw this.lostError();
    if (this.deferredError) throw this.deferredError;
    if (this.kernels.compileErrors.length > 0) {
      throw new GpuOperationError(`a WGSL kernel failed to compile: ${this.kernels.compileErrors.join('\n')}`);
    }
  }

  /** Waits for `p`, failing fast when the device is lost and after the sync timeout. */
  guard<T>(p: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new GpuOperationError(`the GPU did not answer within ${this.syncTimeoutMs / 1000} s`)),
        this.syncTimeoutMs,
      );
    });
    return Promise.race([p, this.lostPromise, timeout])
      .catch((error: unknown) => {
        throw this.lostInfo ? this.lostError() : error;
      })
      .finally(() => clearTimeout(timer));
  }

  /** Opens the out-of-memory and validation error scopes of a chunk's commands. */
  openErrorScopes(): void {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
  }

  /** Closes the scopes `openErrorScopes` opened; each settles with the first error it caught. */
  closeErrorScopes(): Promise<GPUError | null>[] {
    return [this.device.popErrorScope(), this.device.popErrorScope()];
  }

  /** Records errors of a finished chunk's scopes, to be thrown at the next check. */
  watch(scopes: Promise<GPUError | null>[]): void {
    for (const scope of scopes) {
      scope
        .then((error) => {
          if (error) this.deferredError ??= new GpuOperationError(`WebGPU error: ${error.message}`);
        })
        .catch(() => undefined);
    }
  }

  private lostError(): GpuDeviceLostError {
    return new GpuDeviceLostError(this.lostInfo?.reason ?? 'unknown', this.lostInfo?.message ?? '');
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
