import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { runAlloy, tempDir, writeConfig, type CliResult } from '../cli/run-alloy';
import { randomValues, writeAdapter } from '../lora/adapters';
import { ulp } from '../helpers/ulp';
import { within } from './helpers';

/**
 * `model+lora` on the WebGPU backend: the adapter is applied on the host (docs/lora.md §1), so
 * the backend only sees f32 rows next to bf16 ones; the merge equals --backend cpu within 1 ulp.
 */
let dir: string;
let cpu: CliResult;

beforeAll(async () => {
  dir = tempDir('alloy-gpu-lora-');
  const base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'BF16', seed: 31, numLayers: 2 });
  await makeFineTune(join(dir, 'ft'), base, { seed: 32, deltaScale: 0.02 });
  writeAdapter(join(dir, 'lora'), { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'up_proj', 'embed_tokens'], modules_to_save: ['lm_head'] }, [
    { module: 'model.layers.0.self_attn.q_proj', rank: 4, weightShape: [32, 32] },
    { module: 'model.layers.1.mlp.up_proj', rank: 4, weightShape: [48, 32] },
    { module: 'model.embed_tokens', rank: 4, weightShape: [64, 32], embedding: true },
  ], { dtype: 'BF16', replacements: [{ name: 'base_model.model.lm_head.weight', dtype: 'BF16', shape: [64, 32], values: randomValues(64 * 32, 9, 0.02) }] });
  writeConfig(dir, 'ties.yml', [
    'models:',
    '  - {model: ./base+./lora, parameters: {density: 0.6, weight: 0.7}}',
    '  - {model: ./ft, parameters: {density: 0.5, weight: 0.5}}',
    'merge_method: ties',
    'base_model: ./base',
    'dtype: bfloat16',
  ].join('\n'));
  // The CPU merge first: no GPU device exists yet (see helpers.ts).
  cpu = await runAlloy(['merge', 'ties.yml', 'cpu', '--backend', 'cpu', '--quiet', '--memory', '16k'], dir);
});

describe('model+lora on --backend webgpu', () => {
  it('ties with base+lora: the same model as --backend cpu, within 1 bf16 ulp', async () => {
    expect(cpu.code, cpu.stderr).toBe(0);
    const gpu = await within(runAlloy(['merge', 'ties.yml', 'gpu', '--backend', 'webgpu', '--memory', '16k'], dir), 300_000, 'LoRA merge on WebGPU');
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(gpu.stderr).toMatch(/webgpu backend on /);
    const a = readModelDir(join(dir, 'cpu'));
    const b = readModelDir(join(dir, 'gpu'));
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    for (const [tensor, expected] of a.tensors) {
      const got = b.tensors.get(tensor)!;
      let worst = 0;
      for (let i = 0; i < expected.values.length; i++) worst = Math.max(worst, Math.abs(got.values[i] - expected.values[i]) / ulp(expected.values[i], 'BF16'));
      expect(worst, tensor).toBeLessThanOrEqual(1);
    }
  });
});
