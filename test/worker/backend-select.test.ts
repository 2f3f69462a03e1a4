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
    expect(choice.reason).toBe('The CPU backend was chosen in Settings.');
    expect(choice.backend).toBeInstanceOf(SimdCpuBackend); // the SIMD kernels, as Node has WebAssembly SIMD
  });

  it('uses WebGPU when it starts', async () => {
    const choice = await selectBackend('auto', { gpu: fakeGpu, loadGpu: async () => ({ WebGpuBackend: { create: async () => fakeBackend } }) });
    expect(choice).toEqual({ backend: fakeBackend, name: 'webgpu', reason: 'WebGPU on no GPU: a hardware GPU.' });
  });

  it('auto never picks a software adapter: the CPU backend runs and says why; an explicit webgpu request still gets it', async () => {
    let disposed = 0;
    const software = {
      ...fakeBackend,
      info: { isSoftware: true, description: 'SwiftShader Device (Subzero)' },
      dispose: async () => void disposed++,
    } as unknown as ComputeBackend;
    const hardware = { ...fakeBackend, info: { isSoftware: false, description: 'NVIDIA H100' } } as unknown as ComputeBackend;
    const loader = (b: ComputeBackend) => async () => ({ WebGpuBackend: { create: async () => b } });

    const auto = await selectBackend('auto', { gpu: fakeGpu, loadGpu: loader(software) });
    expect(auto.name).toBe('cpu');
    expect(auto.backend).toBeInstanceOf(SimdCpuBackend);
    expect(auto.reason).toBe('CPU backend: the only WebGPU adapter (SwiftShader Device (Subzero)) is a software renderer, slower than the CPU backend.');
    expect(auto.notice).toBeUndefined();
    expect(disposed).toBe(1);

    const asked = await selectBackend('webgpu', { gpu: fakeGpu, loadGpu: loader(software) });
    expect(asked.name).toBe('webgpu');
    expect(asked.notice).toMatch(/software adapter \(SwiftShader Device \(Subzero\)\) because Settings ask for WebGPU/);

    const gpu = await selectBackend('auto', { gpu: fakeGpu, loadGpu: loader(hardware) });
    expect(gpu).toMatchObject({ name: 'webgpu', reason: 'WebGPU on NVIDIA H100: a hardware GPU.' });
    expect(gpu.notice).toBeUndefined();
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

  it('starts the CPU backend it is given (the app’s pool of workers) wherever the CPU is chosen, and no other', async () => {
    const pool = { ...fakeBackend, name: 'cpu' } as unknown as ComputeBackend;
    let started = 0;
    const cpu = async () => (started++, pool);
    const software = { ...fakeBackend, info: { isSoftware: true, description: 'SwiftShader' } } as unknown as ComputeBackend;
    const choices = [
      await selectBackend('cpu', { gpu: fakeGpu, cpu }),
      await selectBackend('auto', { cpu }),
      await selectBackend('auto', { gpu: fakeGpu, cpu, loadGpu: async () => ({ WebGpuBackend: { create: async () => software } }) }),
    ];
    expect(choices.map((c) => [c.name, c.backend])).toEqual([['cpu', pool], ['cpu', pool], ['cpu', pool]]);
    expect(started).toBe(3);
    const gpu = await selectBackend('auto', { gpu: fakeGpu, cpu, loadGpu: async () => ({ WebGpuBackend: { create: async () => fakeBackend } }) });
    expect(gpu.backend).toBe(fakeBackend);
    expect(started).toBe(3);
  });

  it('refuses an explicit webgpu request it cannot honour', async () => {
    await expect(selectBackend('webgpu', {})).rejects.toThrow(/WebGPU was asked for, but this browser has no WebGPU/);
    // Named, so that the app shows it without advice of its own; the advice is in it once.
    const error = (await selectBackend('webgpu', {}).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('WebGpuUnavailableError');
    expect(error.message.match(/CPU backend/g)).toHaveLength(1);
    expect(error.message).toMatch(/Choose Auto or the CPU backend in Settings \(slower, same result\), or use a browser with WebGPU\.$/);
  });
});
