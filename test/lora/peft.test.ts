import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { randomValues, writeAdapter } from './adapters';
import { runAlloy, tempDir, writeConfig } from '../cli/run-alloy';

/**
 * Against PEFT itself (peft_check.py): Alloy's `model+lora` merge equals PEFT's
 * merge_and_unload(), and an adapter from `alloy extract-lora` loads in PEFT with no missing or
 * unexpected keys. Local only: torch + transformers + peft are too heavy for CI, where the numpy
 * reference tests (merge-lora, extract-lora) cover the same rules. Set ALLOY_PEFT_PYTHON to an
 * interpreter that has them (e.g. a venv with `pip install peft`).
 */
const CANDIDATES = [process.env.ALLOY_PEFT_PYTHON, 'python3'].filter((p): p is string => Boolean(p));
const PEFT_PYTHON = CANDIDATES.find((p) => spawnSync(p, ['-c', 'import peft, transformers, torch'], { stdio: 'ignore' }).status === 0) ?? null;
if (!PEFT_PYTHON) console.warn('PEFT not found (set ALLOY_PEFT_PYTHON to a python with torch, transformers and peft): skipping test/lora/peft.test.ts, a local-only check');

function peftCheck(args: string[]): { maxAbsDiff: number; compared: number; loadWarnings: string[] } {
  const r = spawnSync(PEFT_PYTHON!, [join(import.meta.dirname, 'peft_check.py'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`peft_check.py ${args[0]} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe.runIf(PEFT_PYTHON)('LoRA against PEFT (local only)', () => {
  it("model+lora equals PEFT's merge_and_unload (patterns, embedding LoRA, modules_to_save, GPT-2 fan_in_fan_out)", async () => {
    const dir = tempDir('alloy-peft-');
    await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'F32', seed: 1, numLayers: 2 });
    writeAdapter(join(dir, 'lora'), {
      r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'embed_tokens'], rank_pattern: { 'layers.1.self_attn.v_proj': 2 }, alpha_pattern: { v_proj: 3 }, modules_to_save: ['lm_head'],
    }, [
      { module: 'model.layers.0.self_attn.q_proj', rank: 4, weightShape: [32, 32] },
      { module: 'model.layers.1.self_attn.q_proj', rank: 4, weightShape: [32, 32] },
      { module: 'model.layers.0.self_attn.v_proj', rank: 4, weightShape: [16, 32] },
      { module: 'model.layers.1.self_attn.v_proj', rank: 2, weightShape: [16, 32] },
      { module: 'model.embed_tokens', rank: 4, weightShape: [64, 32], embedding: true },
    ], { replacements: [{ name: 'base_model.model.lm_head.weight', dtype: 'F32', shape: [64, 32], values: randomValues(64 * 32, 77, 0.02) }] });
    writeConfig(dir, 'pass.yml', 'models:\n  - model: ./base+./lora\nmerge_method: passthrough\n');
    expect((await runAlloy(['merge', 'pass.yml', 'out'], dir)).code).toBe(0);
    const llama = peftCheck(['merge', join(dir, 'base'), join(dir, 'lora'), join(dir, 'out')]);
    expect(llama.compared).toBe(21);
    expect(llama.loadWarnings).toEqual([]);
    expect(llama.maxAbsDiff).toBeLessThan(1e-6);

    await makeTinyModel(join(dir, 'gpt2'), { arch: 'gpt2', dtype: 'F32', seed: 5, numLayers: 1 });
    writeAdapter(join(dir, 'gpt2-lora'), { r: 2, lora_alpha: 16, fan_in_fan_out: true, target_modules: ['c_attn', 'attn.c_proj'] }, [
      { module: 'transformer.h.0.attn.c_attn', rank: 2, weightShape: [32, 96], fanInFanOut: true },
      { module: 'transformer.h.0.attn.c_proj', rank: 2, weightShape: [32, 32], fanInFanOut: true },
    ]);
    writeConfig(dir, 'gpt2.yml', 'models:\n  - model: ./gpt2+./gpt2-lora\nmerge_method: passthrough\n');
    expect((await runAlloy(['merge', 'gpt2.yml', 'out-gpt2'], dir)).code).toBe(0);
    const gpt2 = peftCheck(['merge', join(dir, 'gpt2'), join(dir, 'gpt2-lora'), join(dir, 'out-gpt2')]);
    expect(gpt2.loadWarnings).toEqual([]);
    expect(gpt2.maxAbsDiff).toBeLessThan(1e-6);
  }, 120_000);

  it('an extracted full-rank adapter (--embed-lora) loads in PEFT with every key used and merges back to the fine-tune', async () => {
    const dir = tempDir('alloy-peft-extract-');
    const base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'F32', seed: 1, numLayers: 2 });
    await makeFineTune(join(dir, 'ft'), base, { seed: 2, deltaScale: 0.02 });
    const r = await runAlloy(['extract-lora', '--model', './ft', '--base-model', './base', '--out-path', 'full', '--max-rank', '64', '--embed-lora', '--quiet'], dir);
    expect(r.code, r.stderr).toBe(0);
    const check = peftCheck(['roundtrip', join(dir, 'base'), join(dir, 'full'), join(dir, 'ft')]);
    expect(check.compared).toBe(21);
    expect(check.loadWarnings).toEqual([]);
    expect(check.maxAbsDiff).toBeLessThan(1e-6);
  }, 120_000);
});
