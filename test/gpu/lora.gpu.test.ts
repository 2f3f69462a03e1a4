import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { readModelDir, readSafetensorsFile } from '../fixtures/safetensors';
import { runAlloy, tempDir, writeConfig, type CliResult } from '../cli/run-alloy';
import { randomValues, writeAdapter } from '../lora/adapters';
import { ulp } from '../helpers/ulp';
import { within } from './helpers';

/**
 * `model+lora` on the WebGPU backend: B·A per chunk is the backend's matmul (docs/model.md §7)
 * and W + scale·B·A is added on the host, so the backend only sees f32 rows next to bf16 ones;
 * the merge equals --backend cpu within 1 bf16 ulp, and in f32 within 1 ulp of the result plus
 * the matmul's bound (rank + 2)·2⁻²⁴·scale·Σ_k|B_ik·A_kj| (docs/model.md §7): where W + ΔW
 * cancels, the product's f32 error can be several ulps of the result.
 */
let dir: string;
let cpu: CliResult;
let cpuF32: CliResult;

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
  writeConfig(dir, 'adapted.yml', ['models:', '  - {model: ./base+./lora}', 'merge_method: passthrough', 'dtype: float32'].join('\n'));
  // The CPU merges first: no GPU device exists yet (see helpers.ts).
  cpu = await runAlloy(['merge', 'ties.yml', 'cpu', '--backend', 'cpu', '--quiet', '--memory', '16k'], dir);
  cpuF32 = await runAlloy(['merge', 'adapted.yml', 'cpu-f32', '--backend', 'cpu', '--quiet', '--memory', '16k'], dir);
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

  it('the adapted model alone in f32: within the stated bound of --backend cpu, and the adapter changed it', async () => {
    expect(cpuF32.code, cpuF32.stderr).toBe(0);
    const gpu = await within(runAlloy(['merge', 'adapted.yml', 'gpu-f32', '--backend', 'webgpu', '--quiet', '--memory', '16k'], dir), 300_000, 'LoRA in f32 on WebGPU');
    expect(gpu.code, gpu.stderr).toBe(0);
    const a = readModelDir(join(dir, 'cpu-f32'));
    const b = readModelDir(join(dir, 'gpu-f32'));
    const base = readModelDir(join(dir, 'base'));
    const adapted = 'model.layers.0.self_attn.q_proj.weight';
    const before = base.tensors.get(adapted)!.values;
    expect(a.tensors.get(adapted)!.values.some((x, i) => Math.abs(x - before[i]) > 1e-4)).toBe(true);
    const factors = readSafetensorsFile(join(dir, 'lora', 'adapter_model.safetensors'));
    const scale = 8 / 4;
    const rank = 4;
    for (const [tensor, expected] of a.tensors) {
      const got = b.tensors.get(tensor)!;
      const module = tensor.replace(/\.weight$/, '');
      const embedding = factors.has(`base_model.model.${module}.lora_embedding_A`);
      const A = factors.get(embedding ? `base_model.model.${module}.lora_embedding_A` : `base_model.model.${module}.lora_A.weight`)?.values;
      const B = factors.get(embedding ? `base_model.model.${module}.lora_embedding_B` : `base_model.model.${module}.lora_B.weight`)?.values;
      const cols = expected.shape[1] ?? 1;
      const rows = expected.shape[0];
      for (let i = 0; i < expected.values.length; i++) {
        let terms = 0;
        if (A && B) {
          const r = Math.floor(i / cols);
          const c = i % cols;
          // ΔW = B·A, or (B·A)ᵀ for an embedding (A [rank, rows], B [cols, rank]).
          for (let k = 0; k < rank; k++) terms += embedding ? Math.abs(B[c * rank + k] * A[k * rows + r]) : Math.abs(B[r * rank + k] * A[k * cols + c]);
        }
        const bound = ulp(expected.values[i], 'F32') + (rank + 2) * 2 ** -24 * scale * terms;
        const err = Math.abs(got.values[i] - expected.values[i]);
        if (!(err <= bound)) throw new Error(`${tensor}[${i}]: webgpu ${got.values[i]}, cpu ${expected.values[i]}, |Δ| ${err} > ${bound}`);
      }
    }
  });
});
