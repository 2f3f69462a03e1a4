import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, type TinyModel } from '../fixtures/models';
import { readModelDir, readSafetensorsFile } from '../fixtures/safetensors';
import { expectClose } from '../helpers/expect-close';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';
import { randomValues, writeAdapter } from './adapters';
import { RUN_NUMPY_TESTS, runReference } from './numpy-reference';

/**
 * `model+lora` merges against the numpy reference (reference_lora.py apply), which implements
 * PEFT's merge_and_unload in float64. Alloy adds scale·B·A in f32 (rank-order sums), so the
 * outputs agree within rtol 1e-5 + atol 1e-6 of the f32 values.
 */
const RTOL = 1e-5;
const ATOL = 1e-6;

describe.runIf(RUN_NUMPY_TESTS)('model+lora merges match the numpy reference', () => {
  let dir: string;
  let base: TinyModel;
  let ft: TinyModel;
  beforeAll(async () => {
    dir = tempDir('alloy-lora-');
    base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'F32', seed: 1, numLayers: 2 });
    ft = await makeFineTune(join(dir, 'ft'), base, { seed: 2, deltaScale: 0.02 });
    const H = 32;
    const I = 48;
    const V = 64;
    const kv = 16; // 2 kv heads of 8
    writeAdapter(
      join(dir, 'lora'),
      {
        r: 4,
        lora_alpha: 8,
        target_modules: ['q_proj', 'v_proj', 'down_proj', 'embed_tokens'],
        // PEFT's keys: a dotted suffix, and a regex.
        rank_pattern: { 'layers.1.self_attn.v_proj': 2 },
        alpha_pattern: { 'layers\\.\\d\\.mlp\\.down_proj': 3 },
        modules_to_save: ['lm_head'],
      },
      [
        ...[0, 1].map((l) => ({ module: `model.layers.${l}.self_attn.q_proj`, rank: 4, weightShape: [H, H] as [number, number] })),
        { module: 'model.layers.0.self_attn.v_proj', rank: 4, weightShape: [kv, H] },
        { module: 'model.layers.1.self_attn.v_proj', rank: 2, weightShape: [kv, H] },
        { module: 'model.layers.1.mlp.down_proj', rank: 4, weightShape: [H, I] },
        { module: 'model.embed_tokens', rank: 4, weightShape: [V, H], embedding: true },
      ],
      { replacements: [{ name: 'base_model.model.lm_head.weight', dtype: 'F32', shape: [V, H], values: randomValues(V * H, 77, 0.02) }] },
    );
    writeAdapter(join(dir, 'rslora'), { r: 8, lora_alpha: 4, use_rslora: true, target_modules: 'model\\.layers\\.\\d\\.mlp\\.(up|gate)_proj' }, [
      { module: 'model.layers.0.mlp.up_proj', rank: 8, weightShape: [I, H] },
      { module: 'model.layers.1.mlp.gate_proj', rank: 8, weightShape: [I, H] },
    ], { seed: 300 });
  });

  const check = (outDir: string, expectedFile: string, names: readonly string[], combine = (ref: Float32Array): ArrayLike<number> => ref): void => {
    const out = readModelDir(join(dir, outDir));
    const expected = readSafetensorsFile(join(dir, expectedFile));
    for (const name of names) {
      const t = out.tensors.get(name)!;
      expect(t.dtype, name).toBe('F32');
      expectClose(t.values, combine(expected.get(name)!.values), RTOL, ATOL);
    }
  };

  it('passthrough of base+lora is the PEFT-merged model (scale, rank/alpha patterns, embedding LoRA, modules_to_save)', async () => {
    runReference(['apply', join(dir, 'base'), join(dir, 'lora'), join(dir, 'expected-lora.safetensors')]);
    writeConfig(dir, 'pass.yml', 'models:\n  - model: ./base+./lora\nmerge_method: passthrough\ndtype: float32\n');
    const plan = await runAlloy(['plan', 'pass.yml'], dir);
    expect(plan.stdout).toContain('./base+./lora: model.layers.1.self_attn.v_proj.weight F32 + LoRA ./lora (rank 2, scale 4)');
    expect(plan.stdout).toContain('./base+./lora: model.layers.1.mlp.down_proj.weight F32 + LoRA ./lora (rank 4, scale 0.75)');
    expect(plan.stdout).toContain('./base+./lora: model.embed_tokens.weight F32 + LoRA ./lora (rank 4, scale 2, transposed)');
    expect(plan.stdout).toContain('./base+./lora: base_model.model.lm_head.weight F32 (modules_to_save copy from ./lora)');
    const r = await runAlloy(['merge', 'pass.yml', 'out-pass'], dir);
    expect(r.stderr).not.toMatch(/failed|error/);
    expect(r.code).toBe(0);
    check('out-pass', 'expected-lora.safetensors', base.names);
    // The adapter changed what it targets and nothing else.
    const out = readModelDir(join(dir, 'out-pass'));
    const differs = (n: string): boolean => out.tensors.get(n)!.values.some((v, i) => v !== base.values.get(n)![i]);
    expect(base.names.filter(differs).sort()).toEqual(
      [
        'lm_head.weight', 'model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.1.self_attn.q_proj.weight',
        'model.layers.0.self_attn.v_proj.weight', 'model.layers.1.self_attn.v_proj.weight', 'model.layers.1.mlp.down_proj.weight',
      ].sort(),
    );
  });

  it('linear merge of base+rslora with a fine-tune: 0.5·(W + α/√r·B·A) + 0.5·W_ft', async () => {
    runReference(['apply', join(dir, 'base'), join(dir, 'rslora'), join(dir, 'expected-rslora.safetensors')]);
    writeConfig(dir, 'linear.yml', [
      'models:',
      '  - model: ./base+./rslora',
      '    parameters: {weight: 0.5}',
      '  - model: ./ft',
      '    parameters: {weight: 0.5}',
      'merge_method: linear',
      'dtype: float32',
    ].join('\n'));
    const r = await runAlloy(['merge', 'linear.yml', 'out-linear', '--memory', '4k'], dir);
    expect(r.stderr).not.toMatch(/failed/);
    expect(r.code).toBe(0);
    for (const name of ['model.layers.0.mlp.up_proj.weight', 'model.layers.1.mlp.gate_proj.weight', 'model.layers.0.mlp.down_proj.weight']) {
      check('out-linear', 'expected-rslora.safetensors', [name], (ref) => ref.map((v, i) => 0.5 * v + 0.5 * ft.values.get(name)![i]));
    }
  });

  it('bf16 model and adapter, slices: the adapter follows its model into the layer ranges it supplies', async () => {
    const b16 = await makeTinyModel(join(dir, 'b16'), { arch: 'llama', dtype: 'BF16', seed: 8, numLayers: 2 });
    writeAdapter(join(dir, 'b16-lora'), { r: 4, lora_alpha: 4, target_modules: ['o_proj'] }, [
      { module: 'model.layers.0.self_attn.o_proj', rank: 4, weightShape: [32, 32] },
      { module: 'model.layers.1.self_attn.o_proj', rank: 4, weightShape: [32, 32] },
    ], { dtype: 'BF16', seed: 500 });
    runReference(['apply', join(dir, 'b16'), join(dir, 'b16-lora'), join(dir, 'expected-b16.safetensors')]);
    writeConfig(dir, 'b16.yml', [
      'slices:',
      '  - sources: [{model: ./b16, layer_range: [0, 1]}]',
      '  - sources: [{model: ./b16+./b16-lora, layer_range: [1, 2]}]',
      'merge_method: passthrough',
      'dtype: float32',
    ].join('\n'));
    const r = await runAlloy(['merge', 'b16.yml', 'out-b16'], dir);
    expect(r.code, r.stderr).toBe(0);
    const out = readModelDir(join(dir, 'out-b16'));
    const expected = readSafetensorsFile(join(dir, 'expected-b16.safetensors'));
    // Layer 0 comes from the plain model, exactly; layer 1 from the adapted one.
    expect(out.tensors.get('model.layers.0.self_attn.o_proj.weight')!.values).toEqual(b16.values.get('model.layers.0.self_attn.o_proj.weight'));
    expectClose(out.tensors.get('model.layers.1.self_attn.o_proj.weight')!.values, expected.get('model.layers.1.self_attn.o_proj.weight')!.values, RTOL, ATOL);
    expect(out.tensors.get('model.layers.1.self_attn.o_proj.weight')!.values).not.toEqual(b16.values.get('model.layers.1.self_attn.o_proj.weight'));
  });

  it('fan_in_fan_out: GPT-2 Conv1D weights [in, out] take (B·A)ᵀ, square and not', async () => {
    const gpt = await makeTinyModel(join(dir, 'gpt2'), { arch: 'gpt2', dtype: 'F32', seed: 5, numLayers: 1 });
    writeAdapter(join(dir, 'gpt2-lora'), { r: 2, lora_alpha: 16, fan_in_fan_out: true, target_modules: ['c_attn', 'c_proj'] }, [
      { module: 'transformer.h.0.attn.c_attn', rank: 2, weightShape: [32, 96], fanInFanOut: true },
      { module: 'transformer.h.0.attn.c_proj', rank: 2, weightShape: [32, 32], fanInFanOut: true },
    ]);
    runReference(['apply', join(dir, 'gpt2'), join(dir, 'gpt2-lora'), join(dir, 'expected-gpt2.safetensors')]);
    writeConfig(dir, 'gpt2.yml', 'models:\n  - model: ./gpt2+./gpt2-lora\nmerge_method: passthrough\n');
    const r = await runAlloy(['merge', 'gpt2.yml', 'out-gpt2'], dir);
    expect(r.code, r.stderr).toBe(0);
    check('out-gpt2', 'expected-gpt2.safetensors', gpt.names);
  });
});

const q4 = (): { module: string; rank: number; weightShape: [number, number] } => ({ module: 'model.layers.0.self_attn.q_proj', rank: 4, weightShape: [32, 32] });

describe('model+lora: bad adapters are refused before anything is written', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('alloy-lora-bad-');
    await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'F32', seed: 1, numLayers: 2 });
    const q = (rank = 4, H = 32): { module: string; rank: number; weightShape: [number, number] } => ({ module: 'model.layers.0.self_attn.q_proj', rank, weightShape: [H, H] });
    writeAdapter(join(dir, 'other-base'), { target_modules: ['q_proj'] }, [q(4, 40)]);
    writeAdapter(join(dir, 'unknown-targets'), { target_modules: ['query_key_value'] }, [q()]);
    writeAdapter(join(dir, 'too-big'), { r: 33, target_modules: ['q_proj'] }, [q(33)]);
    writeAdapter(join(dir, 'dora'), { use_dora: true, target_modules: ['q_proj'] }, [q()]);
    writeAdapter(join(dir, 'ia3'), { peft_type: 'IA3', target_modules: ['q_proj'] }, [q()]);
    writeAdapter(join(dir, 'rank-mismatch'), { r: 8, target_modules: ['q_proj'] }, [q(4)]);
    writeAdapter(join(dir, 'no-config'), {}, [q()]);
    writeAdapter(join(dir, 'no-weights'), { target_modules: ['q_proj'] }, [q()]);
    rmSync(join(dir, 'no-weights', 'adapter_model.safetensors'));
    writeAdapter(join(dir, 'lora-bias'), { lora_bias: true, target_modules: ['q_proj'] }, [q()], {
      extra: [{ name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias', dtype: 'F32', shape: [32], values: new Float32Array(32) }],
    });
    rmSync(join(dir, 'no-config', 'adapter_config.json'));
  });

  const cases: [string, RegExp][] = [
    ['other-base', /models\[0\]\.model: LoRA adapter \.\/other-base .*model\.layers\.0\.self_attn\.q_proj.*the model's weight is \[32, 32\] but the adapter's lora_A is \[4, 40\].*does not fit model \.\/base\+\.\/other-base/],
    ['unknown-targets', /models\[0\]\.model: .*target_modules \("query_key_value"\) name no module of model/],
    ['too-big', /has rank 33, larger than its weight \[32, 32\] allows \(at most 32\)/],
    ['dora', /DoRA adapter \(use_dora: true\).*merge_and_unload/],
    ['ia3', /peft_type is "IA3"; Alloy merges LoRA adapters only/],
    ['rank-mismatch', /has rank 4 in adapter_model\.safetensors but 8 in adapter_config\.json/],
    ['no-config', /LoRA adapter \.\/no-config: .*no-config has no adapter_config\.json/],
    ['no-weights', /LoRA adapter \.\/no-weights: .*no-weights has no adapter_model\.safetensors/],
    ['lora-bias', /lora_bias adapters .* are not supported yet/],
    ['nowhere', /^alloy: Model \.\/base\+\.\/nowhere: the LoRA adapter folder \S+nowhere does not exist\. Check the path after '\+'\./m],
  ];
  it('lora_B biases without lora_bias are ignored with a warning, as PEFT ignores them', async () => {
    writeAdapter(join(dir, 'bias-ignored'), { target_modules: ['q_proj'] }, [q4()], {
      extra: [{ name: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias', dtype: 'F32', shape: [32], values: new Float32Array(32).fill(1) }],
    });
    writeConfig(dir, 'bias-ignored.yml', 'models:\n  - model: ./base+./bias-ignored\nmerge_method: passthrough\n');
    const r = await runAlloy(['merge', 'bias-ignored.yml', 'out-bias-ignored'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: LoRA adapter \.\/bias-ignored: 1 lora_B bias tensor\(s\) \(e\.g\. base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.bias\) are ignored/);
  });

  for (const [name, message] of cases) {
    it(`${name}: a clear error, no output`, async () => {
      writeConfig(dir, `${name}.yml`, `models:\n  - model: ./base+./${name}\nmerge_method: passthrough\n`);
      const r = await runAlloy(['merge', `${name}.yml`, `out-${name}`], dir);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(existsSync(join(dir, `out-${name}`))).toBe(false);
    });
  }
});
