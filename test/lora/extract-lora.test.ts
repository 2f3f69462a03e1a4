import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir, readSafetensorsFile } from '../fixtures/safetensors';
import { expectClose } from '../helpers/expect-close';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { RUN_NUMPY_TESTS, runReference } from './numpy-reference';

/** The per-module table `alloy extract-lora` prints: module → [rank, relative error]. */
function errorTable(stderr: string): Map<string, { rank: number; error: number }> {
  const out = new Map<string, { rank: number; error: number }>();
  for (const line of stderr.split('\n')) {
    const m = /^(\S+)\s+(\d+)×(\d+)\s+(\d+)\s+(\S+)$/.exec(line.trim());
    if (m) out.set(m[1], { rank: Number(m[4]), error: Number(m[5]) });
  }
  return out;
}

describe('alloy extract-lora', () => {
  let dir: string;
  let base: TinyModel;
  let ft: TinyModel;
  beforeAll(async () => {
    dir = tempDir('alloy-extract-');
    base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'F32', seed: 1, numLayers: 2 });
    ft = await makeFineTune(join(dir, 'ft'), base, { seed: 2, deltaScale: 0.02 });
  });

  it('writes a PEFT adapter: config keys as PEFT/mergekit write them, tensor names, ranks', async () => {
    const r = await runAlloy(['extract-lora', '--model', './ft', '--base-model', './base', '--out-path', 'lora8', '--max-rank', '8'], dir);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, 'lora8', 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({
      peft_type: 'LORA', r: 8, lora_alpha: 8, use_rslora: false, fan_in_fan_out: false, bias: 'none', task_type: 'CAUSAL_LM',
      base_model_name_or_path: './base', rank_pattern: {}, alpha_pattern: {}, use_dora: false,
    });
    expect([...config.target_modules].sort()).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    expect([...config.modules_to_save].sort()).toEqual(['embed_tokens', 'input_layernorm', 'lm_head', 'norm', 'post_attention_layernorm']);
    const tensors = readSafetensorsFile(join(dir, 'lora8', 'adapter_model.safetensors'));
    expect(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape).toEqual([8, 32]);
    expect(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.shape).toEqual([32, 8]);
    expect(tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')!.shape).toEqual([8, 48]);
    expect(tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')!.shape).toEqual([32, 8]);
    // Saved whole, exactly the fine-tune's values.
    expect(tensors.get('base_model.model.model.embed_tokens.weight')!.values).toEqual(ft.values.get('model.embed_tokens.weight'));
    expect(tensors.get('base_model.model.model.norm.weight')!.values).toEqual(ft.values.get('model.norm.weight'));
  });

  it.runIf(RUN_NUMPY_TESTS)('rank-8 errors are within 10% of the optimal truncation error (numpy.linalg.svd)', async () => {
    const r = await runAlloy(['extract-lora', '--model', './ft', '--base-model', './base', '--out-path', 'lora8b', '--max-rank', '8'], dir);
    expect(r.code, r.stderr).toBe(0);
    runReference(['svd-error', join(dir, 'base'), join(dir, 'ft'), '8', join(dir, 'optimal8.json')]);
    const optimal = JSON.parse(readFileSync(join(dir, 'optimal8.json'), 'utf8')) as Record<string, number>;
    const table = errorTable(r.stderr);
    const linear = Object.keys(optimal).filter((n) => /layers\.\d+\.(self_attn|mlp)\./.test(n));
    expect(linear.length).toBe(14);
    for (const name of linear) {
      const got = table.get(name.slice(0, -'.weight'.length));
      expect(got, name).toBeDefined();
      expect(got!.rank).toBe(8);
      // The best possible is numpy's; the randomized SVD (2 power iterations, 10 extra directions) stays close.
      expect(got!.error, name).toBeGreaterThanOrEqual(optimal[name] * (1 - 1e-4));
      expect(got!.error, name).toBeLessThanOrEqual(optimal[name] * 1.1);
    }
  });

  it('full rank round trip: base + extracted LoRA (model+lora, passthrough) reproduces the fine-tune', async () => {
    const r = await runAlloy(['extract-lora', '--model', './ft', '--base-model', './base', '--out-path', 'full', '--max-rank', '64', '--embed-lora'], dir);
    expect(r.code, r.stderr).toBe(0);
    const table = errorTable(r.stderr);
    expect(table.get('model.layers.0.mlp.up_proj')).toEqual({ rank: 32, error: expect.any(Number) });
    for (const [module, { error }] of table) expect(error, module).toBeLessThan(1e-5);
    const tensors = readSafetensorsFile(join(dir, 'full', 'adapter_model.safetensors'));
    // --embed-lora: the input embedding as lora_embedding_A [r, vocab] / _B [hidden, r]; lm_head as a Linear LoRA.
    expect(tensors.get('base_model.model.model.embed_tokens.lora_embedding_A')!.shape).toEqual([32, 64]);
    expect(tensors.get('base_model.model.model.embed_tokens.lora_embedding_B')!.shape).toEqual([32, 32]);
    expect(tensors.get('base_model.model.lm_head.lora_A.weight')!.shape).toEqual([32, 32]);
    writeConfig(dir, 'roundtrip.yml', 'models:\n  - model: ./base+./full\nmerge_method: passthrough\n');
    const m = await runAlloy(['merge', 'roundtrip.yml', 'out-roundtrip'], dir);
    expect(m.code, m.stderr).toBe(0);
    const out = readModelDir(join(dir, 'out-roundtrip'));
    for (const name of ft.names) {
      // f32 factors of a 0.02-scale ΔW added to O(0.02–1) weights: within 1e-6 absolute.
      expectClose(out.tensors.get(name)!.values, ft.values.get(name)!, 1e-5, 1e-6);
    }
  });

  it('the same seed gives the same adapter, byte for byte; another seed a different sketch', async () => {
    const args = (out: string, seed: string): string[] => ['extract-lora', '--model', './ft', '--base-model', './base', '--out-path', out, '--max-rank', '4', '--random-seed', seed, '--quiet'];
    expect((await runAlloy(args('s1', '7'), dir)).code).toBe(0);
    expect((await runAlloy(args('s2', '7'), dir)).code).toBe(0);
    expect((await runAlloy(args('s3', '8'), dir)).code).toBe(0);
    const bytes = (d: string): Buffer => readFileSync(join(dir, d, 'adapter_model.safetensors'));
    expect(bytes('s1').equals(bytes('s2'))).toBe(true);
    expect(bytes('s1').equals(bytes('s3'))).toBe(false);
    // --memory 4k: no ΔW fits, so every pass re-reads the models in blocks of a few rows; same arithmetic, same bytes.
    expect((await runAlloy([...args('s4', '7'), '--memory', '4k'], dir)).code).toBe(0);
    expect(bytes('s1').equals(bytes('s4'))).toBe(true);
  });

  it('options: --save-module, --exclude-regex, --include-regex, --skip-undecomposable, --no-distribute-scale', async () => {
    const r = await runAlloy(
      ['extract-lora', '--model', './ft', '--base-model', './base', '--out-path', 'opts', '--max-rank', '4', '--save-module', 'o_proj', '-i', 'self_attn', '-e', 'k_proj', '--skip-undecomposable', '--no-distribute-scale'],
      dir,
    );
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, 'opts', 'adapter_config.json'), 'utf8'));
    expect([...config.target_modules].sort()).toEqual(['q_proj', 'v_proj']);
    expect([...config.modules_to_save].sort()).toEqual(['embed_tokens', 'lm_head', 'o_proj']);
    const tensors = readSafetensorsFile(join(dir, 'opts', 'adapter_model.safetensors'));
    const names = [...tensors.keys()];
    expect(names.some((n) => n.includes('k_proj') || n.includes('mlp') || n.includes('norm'))).toBe(false);
    expect(tensors.get('base_model.model.model.layers.0.self_attn.o_proj.weight')!.values).toEqual(ft.values.get('model.layers.0.self_attn.o_proj.weight'));
    // Without distribute-scale, B = U has orthonormal columns.
    const b = tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.values;
    for (let s = 0; s < 4; s++) {
      for (let t = 0; t < 4; t++) {
        let dot = 0;
        for (let i = 0; i < 32; i++) dot += b[i * 4 + s] * b[i * 4 + t];
        expect(Math.abs(dot - (s === t ? 1 : 0))).toBeLessThan(1e-5);
      }
    }
  });

  it('bad input: a base of another shape, a missing flag', async () => {
    await makeTinyModel(join(dir, 'other'), { arch: 'llama', dtype: 'F32', seed: 3, numLayers: 2, hiddenSize: 16 });
    const r = await runAlloy(['extract-lora', '--model', './ft', '--base-model', './other', '--out-path', 'bad'], dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^alloy: model\.layers\.0\.\S+\.weight is \[\d+, \d+\] in the fine-tune but \[\d+, \d+\] in the base: is it the fine-tune's base\?/);
    const u = await runAlloy(['extract-lora', '--model', './ft', '--out-path', 'bad'], dir);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/extract-lora needs --base-model/);
  });
});
