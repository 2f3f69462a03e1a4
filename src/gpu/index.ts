export { WebGpuBackend, type WebGpuBackendOptions, type GpuMemoryStats } from './webgpu-backend';
export { requestAdapter, requestDevice, isSoftwareAdapter, describeAdapter } from './device';
export type { GpuDeviceInfo, GpuDeviceOptions } from './device';
export { GpuUnavailableError, GpuDeviceLostError, GpuOperationError } from './errors';

import { WebGpuBackend, type WebGpuBackendOptions } from './webgpu-backend';

/** The WebGPU backend in a browser page or worker (`navigator.gpu`). Node: see `./node`. */
export function createBrowserWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const gpu = typeof navigator !== 'undefined' ? navigator.gpu : undefined;
  return WebGpuBackend.create(gpu, options);
}
