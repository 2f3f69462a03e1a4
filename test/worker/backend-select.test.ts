import { describe, expect, it } from 'vitest';
import { SimdCpuBackend } from '../../src/backend';
import type { ComputeBackend } from '../../src/backend/compute-backend';
import { selectBackend } from '../../src/worker/backend-select';

const fakeGpu = {} as GPU;
const fakeBackend = { name: 'webgpu', beginChunk: () => { throw new Error('unused'); }, dispose: async () => {} } as unknown as ComputeBackend;

describe('selectBackend', () => {
  it('uses the CPU when asked', async () => {
    const choice = await selectBackend('cpu', { gpu: fakeGpu });
    expect(choice.name).toBe('cpu');
    expect(choice.notice).toBeUndefined();
    expect(choice.backend).toBeInstanceOf(SimdCpuBackend); // the SIMD kernels, as Node has WebAssembly SIMD
  });

  it('uses WebGPU when it starts', async () => {
    const choice = await selectBackend('auto', { gpu: fakeGpu, loadGpu: async () => ({ WebGpuBackend: { create: async () => fakeBackend } }) });
    expect(choice).toEqual({ backend: fakeBackend, name: 'webgpu' });
  });

  it('falls back to the CPU with a notice: no navigator.gpu, no backend in the build, no adapter, a failing import', async () => {
    const cases = [
      [await selectBackend('auto', {}), /this browser has no WebGPU/],
      [await selectBackend('auto', { gpu: fakeGpu, loadGpu: async () => null }), /this build of Alloy has no WebGPU backend/],
      [
        await selectBackend('auto', {
          gpu: fakeGpu,
          loadGpu: async () => ({ WebGpuBackend: { create: async () => { throw new Error('no WebGPU adapter was found'); } } }),
        }),
        /WebGPU could not start \(no WebGPU adapter was found\)/,
      ],
      [await selectBackend('auto', { gpu: fakeGpu, loadGpu: async () => { throw new Error('chunk failed'); } }), /could not be loaded \(chunk failed\)/],
    ] as const;
    for (const [choice, notice] of cases) {
      expect(choice.name).toBe('cpu');
      expect(choice.notice).toMatch(/^Merging on the CPU \(slower\): /);
      expect(choice.notice).toMatch(notice);
    }
  });

  it('refuses an explicit webgpu request it cannot honour', async () => {
    await expect(selectBackend('webgpu', {})).rejects.toThrow(/WebGPU was asked for, but this browser has no WebGPU/);
  });
});
