import { describe, expect, it } from 'vitest';
import { GpuDeviceLostError, isSoftwareAdapter, requestAdapter } from '../../src/gpu';
import { chooseNodeBackend, nodeGpu } from '../../src/gpu/node';
import { runMethod } from '../helpers/run-method';
import { disposeAll, gpuBackend, within } from './helpers';

/** Device set-up, limits, the `auto` choice, and device loss as a clear error. */

describe('WebGPU device', () => {
  it('requests the adapter’s real limits, or WebGPU’s minimum ones', async () => {
    const adapter = await within(requestAdapter(await nodeGpu()), 60_000, 'adapter');
    const real = await gpuBackend();
    const minimum = await gpuBackend({ limits: 'minimum' });
    try {
      expect(real.info.maxStorageBufferBindingSize).toBe(Math.min(adapter.limits.maxStorageBufferBindingSize, 2 ** 30));
      expect(real.info.maxStorageBuffersPerShaderStage).toBe(adapter.limits.maxStorageBuffersPerShaderStage);
      expect(minimum.info.maxStorageBufferBindingSize).toBe(128 * 2 ** 20);
      expect(minimum.info.maxStorageBuffersPerShaderStage).toBe(8);
      // Chunks always fit the bindings: the widest per-element buffer is 16 bytes.
      expect(minimum.maxChunkElements).toBe((128 * 2 ** 20) / 16);
    } finally {
      await disposeAll([real, minimum]);
    }
  });

  it('auto never picks a software adapter; webgpu takes whatever adapter there is', async () => {
    const adapter = await within(requestAdapter(await nodeGpu()), 60_000, 'adapter');
    const auto = await within(chooseNodeBackend('auto'), 60_000, 'auto');
    const webgpu = await within(chooseNodeBackend('webgpu'), 60_000, 'webgpu');
    try {
      expect(webgpu.backend.name).toBe('webgpu');
      if (isSoftwareAdapter(adapter)) {
        expect(auto.backend.name).toBe('cpu');
        expect(auto.reason).toMatch(/software renderer/);
      } else {
        expect(auto.backend.name).toBe('webgpu');
      }
    } finally {
      await disposeAll([auto.backend, webgpu.backend]);
    }
  });

  it('reports a lost device as GpuDeviceLostError, naming the way out', async () => {
    const gpu = await gpuBackend();
    gpu.device.destroy(); // what a driver reset looks like from here
    await new Promise((resolve) => setTimeout(resolve, 100));
    const error = await runMethod('linear', [{ values: [1, 2, 3], params: { weight: 1 } }], { backend: gpu }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GpuDeviceLostError);
    expect((error as Error).message).toMatch(/WebGPU device was lost.*--backend cpu/);
  });
});
