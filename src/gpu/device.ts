import { GpuUnavailableError } from './errors';

/** What the backend needs to know about the device it got. */
export interface GpuDeviceInfo {
  /** Vendor, architecture and description as the adapter reports them (may be empty). */
  readonly description: string;
  /** A software rasteriser (SwiftShader, llvmpipe/lavapipe, WARP): not faster than the CPU backend. */
  readonly isSoftware: boolean;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly maxComputeWorkgroupsPerDimension: number;
}

export interface GpuDeviceOptions {
  /**
   * `adapter` (default) requests the adapter's real binding, buffer and storage-buffer limits;
   * `minimum` keeps WebGPU's defaults (128 MiB bindings, 8 storage buffers per stage), which every
   * adapter supports — for tests of the small-limits paths.
   */
  readonly limits?: 'adapter' | 'minimum';
  readonly powerPreference?: GPUPowerPreference;
}

/** Binding ranges above 2 GB are not supported everywhere (gpuweb#6338); we never need them. */
const MAX_USEFUL_BINDING = 1 << 30;
const MAX_USEFUL_BUFFER = 2 ** 31;

const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b/i;

/** True for adapters that emulate a GPU on the CPU (WebGPU's fallback adapters). */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  if (info?.isFallbackAdapter === true || legacy === true) return true;
  return SOFTWARE_ADAPTER.test(describeAdapter(adapter));
}

export function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info;
  if (!info) return 'unknown adapter';
  const parts = [info.vendor, info.architecture, info.device, info.description].filter((p) => p && p.length > 0);
  return parts.length > 0 ? [...new Set(parts)].join(' ') : 'unknown adapter';
}

/** Requests a high-performance adapter, or throws GpuUnavailableError. */
export async function requestAdapter(gpu: GPU | undefined, options: GpuDeviceOptions = {}): Promise<GPUAdapter> {
  if (!gpu) throw new GpuUnavailableError('WebGPU is not available here (no navigator.gpu)');
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  } catch (error) {
    throw new GpuUnavailableError(`requesting a WebGPU adapter failed: ${(error as Error).message}`);
  }
  if (!adapter) throw new GpuUnavailableError('no WebGPU adapter was found (no GPU, or no driver for it)');
  return adapter;
}

/**
 * A device with the adapter's real limits for what the merge kernels bind (storage binding size,
 * buffer size, storage buffers per stage); everything else stays at WebGPU's defaults.
 */
export async function requestDevice(
  adapter: GPUAdapter,
  options: GpuDeviceOptions = {},
): Promise<{ device: GPUDevice; info: GpuDeviceInfo }> {
  const a = adapter.limits;
  const requiredLimits: Record<string, number> =
    options.limits === 'minimum'
      ? {}
      : {
          maxStorageBufferBindingSize: Math.min(a.maxStorageBufferBindingSize, MAX_USEFUL_BINDING),
          maxBufferSize: Math.min(a.maxBufferSize, MAX_USEFUL_BUFFER),
          maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
        };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits });
  } catch (error) {
    throw new GpuUnavailableError(`requesting a WebGPU device failed: ${(error as Error).message}`);
  }
  const d = device.limits;
  return {
    device,
    info: {
      description: describeAdapter(adapter),
      isSoftware: isSoftwareAdapter(adapter),
      maxStorageBufferBindingSize: d.maxStorageBufferBindingSize,
      maxBufferSize: d.maxBufferSize,
      maxStorageBuffersPerShaderStage: d.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupsPerDimension: d.maxComputeWorkgroupsPerDimension,
    },
  };
}
