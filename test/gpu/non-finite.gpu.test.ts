import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { setTensorElements } from '../helpers/set-tensor-elements';
import { within } from './helpers';

/**
 * NaN/Inf are counted on the host from the bytes the engine reads and writes, so `--backend
 * webgpu` warns and refuses exactly as the CPU does (test/cli/non-finite.test.ts).
 */

const TENSOR = 'model.layers.0.self_attn.q_proj.weight'; // [64, 64]

let dir: string;
beforeAll(async () => {
  dir = tempDir('alloy-gpu-nonfinite-');
  const base = await makeTinyModel(join(dir, 'base'), { seed: 31, dtype: 'BF16', hiddenSize: 64, numLayers: 1 });
  await makeFineTune(join(dir, 'ft'), base, { seed: 32, deltaScale: 0.02 });
  setTensorElements(join(dir, 'ft'), TENSOR, [[3, 0x7fc0], [100, 0xff81], [4095, 0xffc0]]);
  writeConfig(dir, 'slerp.yml', ['models:', '  - model: ./base', '  - model: ./ft', 'merge_method: slerp', 'base_model: ./base', 'parameters: {t: 0.5}', 'dtype: bfloat16'].join('\n'));
});

describe('alloy merge --backend webgpu with NaN inputs', () => {
  it('warns with the tensor, its input and the output count', async () => {
    const r = await within(runAlloy(['merge', 'slerp.yml', 'out', '--backend', 'webgpu', '--quiet'], dir), 300_000, 'slerp on WebGPU');
    expect(r.code, r.stderr).toBe(0);
    const values = readModelDir(join(dir, 'out')).tensors.get(TENSOR)!.values;
    expect(values.filter((v) => Number.isNaN(v)).length).toBe(4096);
    expect(r.stderr).toContain(`  ${TENSOR}: output 4,096 NaN; input ./ft 3 NaN\n`);
  });

  it('--strict refuses and leaves no output folder', async () => {
    const r = await within(runAlloy(['merge', 'slerp.yml', 'strict', '--backend', 'webgpu', '--strict', '--quiet'], dir), 300_000, 'slerp on WebGPU');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`--strict: refused a result with NaN or Inf values: ${TENSOR}: output 4,096 NaN; input ./ft 3 NaN\n`);
    expect(existsSync(join(dir, 'strict'))).toBe(false);
  });
});

describe('overflow on WebGPU', () => {
  it('weights of 1e38 with f16 output: the same ±Inf as the CPU, byte for byte (no NaN from the product of huge values)', async () => {
    const base = await makeTinyModel(join(dir, 'f32-base'), { seed: 41, dtype: 'F32', hiddenSize: 64, numLayers: 1 });
    await makeFineTune(join(dir, 'f32-a'), base, { seed: 42, deltaScale: 0.02 });
    await makeFineTune(join(dir, 'f32-b'), base, { seed: 43, deltaScale: 0.02 });
    writeConfig(dir, 'overflow.yml', [
      'models:',
      '  - {model: ./f32-a, parameters: {weight: 1.0e+38}}',
      '  - {model: ./f32-b, parameters: {weight: 1.0e+38}}',
      'merge_method: linear',
      'parameters: {normalize: false}',
      'dtype: float16',
    ].join('\n'));
    const cpu = await runAlloy(['merge', 'overflow.yml', 'overflow-cpu', '--backend', 'cpu', '--quiet'], dir);
    expect(cpu.code, cpu.stderr).toBe(0);
    const gpu = await within(runAlloy(['merge', 'overflow.yml', 'overflow-gpu', '--backend', 'webgpu', '--quiet'], dir), 300_000, 'linear on WebGPU');
    expect(gpu.code, gpu.stderr).toBe(0);
    const ours = readModelDir(join(dir, 'overflow-gpu')).tensors;
    for (const [name, t] of readModelDir(join(dir, 'overflow-cpu')).tensors) {
      const g = ours.get(name)!.values;
      expect(g.filter((v) => Number.isNaN(v)).length, name).toBe(t.values.filter((v) => Number.isNaN(v)).length);
      expect(Array.from(g), name).toEqual(Array.from(t.values));
    }
    expect(gpu.stderr).toBe(cpu.stderr);
  });
});
