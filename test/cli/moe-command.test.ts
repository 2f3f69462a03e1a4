import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, TEXT_CHARACTERS } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

const dir = tempDir('alloy-moe-cli-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  const base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', seed: 1, vocabSize: 80, tokenizer: { characters: TEXT_CHARACTERS, addBos: true } });
  for (let i = 0; i < 4; i++) await makeFineTune(join(dir, `expert${i}`), base, { seed: 20 + i, deltaScale: 0.05 });
  await makeTinyModel(join(dir, 'qwen3'), { arch: 'qwen3', seed: 2, vocabSize: 80 });
});

const CONFIG = `base_model: base
gate_mode: hidden
dtype: bfloat16
experts_per_token: 2
experts:
  - source_model: expert0
    positive_prompts: ["write a poem about the sea"]
  - source_model: expert1
    positive_prompts: ["solve for x"]
    negative_prompts: ["a poem"]
  - source_model: expert2
    positive_prompts: ["translate into french"]
  - source_model: expert3
    positive_prompts: ["summarise this article"]
`;

describe('alloy moe', () => {
  it('builds a Mixtral from 4 experts: config, bf16 weights, routers, tokenizer, card', async () => {
    writeConfig(dir, 'moe.yml', CONFIG);
    const r = await runAlloy(['moe', 'moe.yml', 'out', '--random-seed', '1'], dir);
    expect(r.stderr).toMatch(/Wrote .*out: Mixtral \(per-expert layout\), 4 experts × 2 layers, \d+ tensors/);
    expect(r.code).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, 'out', 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'mixtral', num_local_experts: 4, num_experts_per_tok: 2, torch_dtype: 'bfloat16' });
    const tensors = readModelDir(join(dir, 'out')).tensors;
    expect(tensors.get('model.layers.1.block_sparse_moe.gate.weight')!.shape).toEqual([4, 32]);
    expect(tensors.get('model.layers.1.block_sparse_moe.experts.3.w2.weight')!.dtype).toBe('BF16');
    expect(existsSync(join(dir, 'out', 'tokenizer.json'))).toBe(true);
    expect(readFileSync(join(dir, 'out', 'mergekit_moe_config.yml'), 'utf8')).toBe(CONFIG);
  });

  it('--layout fused, --dtype float32, --no-copy-tokenizer, --no-write-model-card', async () => {
    writeConfig(dir, 'moe.yml', CONFIG);
    const r = await runAlloy(['moe', 'moe.yml', 'fused', '--layout', 'fused', '--dtype', 'float32', '--no-copy-tokenizer', '--no-write-model-card', '--quiet'], dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(readdirSync(join(dir, 'fused')).sort()).toEqual(['config.json', 'model.safetensors']);
    const tensors = readModelDir(join(dir, 'fused')).tensors;
    expect(tensors.get('model.layers.0.mlp.experts.gate_up_proj')!.shape).toEqual([4, 96, 32]);
    expect(tensors.get('model.layers.0.mlp.experts.gate_up_proj')!.dtype).toBe('F32');
  });

  it('a config these models cannot build: exit 2, the YAML path, nothing written', async () => {
    writeConfig(dir, 'bad.yml', CONFIG.replace('source_model: expert2', 'source_model: qwen3'));
    const r = await runAlloy(['moe', 'bad.yml', 'bad-out'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^alloy: bad\.yml: cannot build this mixture of experts: experts\[2\]\.source_model: qwen3 is a qwen3 model but the base base is llama/);
    expect(r.stderr).toContain('Nothing was written.');
    expect(readdirSync(dir).filter((f) => f.startsWith('bad-out'))).toEqual([]);
  });

  it('a missing expert folder: exit 2 with its YAML path, before anything is read', async () => {
    writeConfig(dir, 'missing.yml', CONFIG.replace('source_model: expert3', 'source_model: nowhere'));
    const r = await runAlloy(['moe', 'missing.yml', 'missing-out'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^alloy: experts\[3\]\.source_model: model nowhere: folder .*nowhere does not exist/);
    expect(readdirSync(dir).filter((f) => f.startsWith('missing-out'))).toEqual([]);
  });

  it('an invalid mergekit-moe config: exit 2 with line and column', async () => {
    writeConfig(dir, 'invalid.yml', CONFIG.replace('experts_per_token: 2', 'experts_per_token: 5'));
    const r = await runAlloy(['moe', 'invalid.yml', 'invalid-out'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid\.yml:\d+:\d+: experts: there are 4 experts, fewer than experts_per_token \(5\)/);
  });

  it('--help lists the options; the main usage lists the command', async () => {
    const help = await runAlloy(['moe', '--help'], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--layout per-expert|fused');
    expect(help.stdout).toContain('--i-understand-this-is-not-useful-without-training');
    expect((await runAlloy(['--help'], dir)).stdout).toContain('alloy moe CONFIG OUT_DIR');
  });
});
