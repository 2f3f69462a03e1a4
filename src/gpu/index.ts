/**
 * The WebGPU backend (see webgpu-backend.ts for the device lifecycle, webgpu-chunk.ts for how
 * operations map to kernels and fused.ts for the lazy elementwise expressions). Browser code
 * creates it with
 * `WebGpuBackend.create(navigator.gpu)`; Node code goes through `./node`, which alone imports
 * Dawn (the `webgpu` package), so browser bundles never reference it.
 */
export { WebGpuBackend, type WebGpuBackendOptions, type GpuMemoryStats } from './webgpu-backend';
export { requestAdapter, requestDevice, isSoftwareAdapter, describeAdapter } from './device';
export type { GpuDeviceInfo, GpuDeviceOptions } from './device';
export { GpuUnavailableError, GpuDeviceLostError, GpuOperationError } from './errors';
export { GpuMatrixOps } from './gpu-matrix-ops';
