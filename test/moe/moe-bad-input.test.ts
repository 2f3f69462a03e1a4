import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMoeConfig, type MoeConfig } from '../../src/config';
import { MoeConfigError, runMoeMerge } from '../../src/moe';
import type { ModelFolder } from '../../src/storage';
import { nodeModelFolder, NodeOutputFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel, TEXT_CHARACTERS } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { tempDir } from '../cli/run-alloy';

/**
 * Bad input (docs/moe.md §5): each case is a MoeConfigError naming the YAML path, raised before a
 * single safetensors file is opened, and no output folder is left behind.
 */
const root = tempDir('alloy-moe-bad-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const tokenizer = { characters: TEXT_CHARACTERS, addBos: true };
beforeAll(async () => {
  const base = await makeTinyModel(join(root, 'base'), { arch: 'llama', seed: 1, vocabSize: 80, tokenizer });
  await makeFineTune(join(root, 'ex0'), base, { seed: 2 });
  await makeFineTune(join(root, 'ex1'), base, { seed: 3 });
  await makeTinyModel(join(root, 'qwen3'), { arch: 'qwen3', seed: 4, vocabSize: 80, tokenizer });
  await makeTinyModel(join(root, 'wide'), { arch: 'llama', seed: 5, vocabSize: 80, hiddenSize: 64, tokenizer });
  await makeTinyModel(join(root, 'gemma'), { arch: 'gemma', seed: 6, vocabSize: 80, tokenizer });
  await makeTinyModel(join(root, 'gemma-ft'), { arch: 'gemma', seed: 7, vocabSize: 80, tokenizer });
  await makeTinyModel(join(root, 'notok'), { arch: 'llama', seed: 1, vocabSize: 80, tokenizer: false });
  await makeFineTune(join(root, 'notok-ft'), await makeTinyModel(join(root, 'notok2'), { arch: 'llama', seed: 1, vocabSize: 80, tokenizer: false }), { seed: 8 });
});

/** Runs the build; returns the error and the files the build opened (none may be weights). */
async function refused(yaml: string, out: string, check: (config: MoeConfig) => MoeConfig = (c) => c): Promise<{ error: MoeConfigError; opened: string[] }> {
  const config = check(parseMoeConfig(yaml).config);
  const opened: string[] = [];
  const folder = (ref: { path: string }): ModelFolder => {
    const inner = nodeModelFolder(join(root, ref.path), ref.path);
    return { ...inner, id: inner.id, listFiles: () => inner.listFiles(), readText: (f) => inner.readText(f), open: (f) => (opened.push(`${ref.path}/${f}`), inner.open(f)) };
  };
  const output = await NodeOutputFolder.open(join(root, out));
  const error = await runMoeMerge(config, { folder }, output).then(
    () => {
      throw new Error('the build succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MoeConfigError);
  expect(existsSync(join(root, out))).toBe(false);
  expect(readdirSync(root).filter((f) => f.startsWith(`${out}.alloy-tmp-`))).toEqual([]);
  return { error: error as MoeConfigError, opened };
}

const two = (a: string, b: string, extra = '') => `base_model: base
${extra}experts:
  - source_model: ${a}
    positive_prompts: ["write a poem"]
  - source_model: ${b}
    positive_prompts: ["add numbers"]
`;

describe('alloy moe refuses bad input before reading a weight, with the YAML path', () => {
  it('an expert of another architecture', async () => {
    const { error, opened } = await refused(two('ex0', 'qwen3'), 'out-arch');
    expect(error.path).toBe('experts[1].source_model');
    expect(error.message).toMatch(/^experts\[1\]\.source_model: qwen3 is a qwen3 model but the base base is llama/);
    expect(opened).toEqual([]);
  });

  it('an expert of another hidden size', async () => {
    const { error, opened } = await refused(two('wide', 'ex1'), 'out-size');
    expect(error.path).toBe('experts[0].source_model');
    expect(error.message).toContain('wide has hidden_size 64 but the base base has 32');
    expect(opened).toEqual([]);
  });

  it('a prompt that tokenises to nothing', async () => {
    const yaml = `base_model: base\nexperts:\n  - source_model: ex0\n    positive_prompts: ["write a poem", ""]\n  - source_model: ex1\n    positive_prompts: ["add numbers"]\n`;
    const { error, opened } = await refused(yaml, 'out-empty');
    expect(error.path).toBe('experts[0].positive_prompts[1]');
    expect(error.message).toContain("the prompt '' gives no tokens with the base model's tokenizer");
    expect(opened.filter((f) => f.endsWith('.safetensors'))).toEqual([]);
  });

  it('gate_mode hidden with an expert without prompts (a config from the app form, not parsed)', async () => {
    const { error, opened } = await refused(two('ex0', 'ex1'), 'out-noprompts', (c) => ({ ...c, experts: [c.experts[0], { source_model: c.experts[1].source_model }] }));
    expect(error.path).toBe('experts[1]');
    expect(error.message).toContain('has no positive_prompts: with gate_mode hidden');
    expect(opened).toEqual([]);
  });

  it('experts_per_token larger than the number of experts', async () => {
    const { error, opened } = await refused(two('ex0', 'ex1'), 'out-pertoken', (c) => ({ ...c, experts_per_token: 3 }));
    expect(error.path).toBe('experts');
    expect(error.message).toContain('there are 2 experts, fewer than experts_per_token (3)');
    expect(opened).toEqual([]);
  });

  it('an output architecture that cannot hold the base family (gemma)', async () => {
    const { error, opened } = await refused(two('gemma', 'gemma-ft').replace('base_model: base', 'base_model: gemma'), 'out-family');
    expect(error.path).toBe('base_model');
    expect(error.message).toContain('no output architecture can hold these gemma models: Mixtral takes llama, mistral models');
    expect(opened).toEqual([]);
  });

  it('architecture: qwen3 for llama models', async () => {
    const { error } = await refused(two('ex0', 'ex1', 'architecture: qwen3\n'), 'out-qwen3');
    expect(error.path).toBe('architecture');
    expect(error.message).toContain('Qwen3 MoE takes qwen3 models');
  });

  it('an architecture name that matches none', async () => {
    // parseMoeConfig refuses it too; the app's form hands the config over unparsed.
    const { error } = await refused(two('ex0', 'ex1'), 'out-switch', (c) => ({ ...c, architecture: 'switch' }));
    expect(error.path).toBe('architecture');
    expect(error.message).toMatch(/^architecture: no mergekit-moe output architecture.*switch/);
  });

  it('prompts with a base model that has no tokenizer', async () => {
    const { error, opened } = await refused(two('notok-ft', 'notok2').replace('base_model: base', 'base_model: notok'), 'out-notok', (c) => c);
    expect(error.path).toBe('base_model');
    expect(error.message).toContain('tokenizer.json is missing');
    expect(opened).toEqual([]);
  });
});

describe('layout', () => {
  it('the fused layout for an architecture that has none (DeepSeek MoE) is refused before reading a weight', async () => {
    const config = parseMoeConfig(two('ex0', 'ex1', 'architecture: deepseek\n')).config;
    const output = await NodeOutputFolder.open(join(root, 'fused-deepseek'));
    const error = await runMoeMerge(config, { folder: (ref) => nodeModelFolder(join(root, ref.path), ref.path) }, output, { layout: 'fused' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MoeConfigError);
    expect((error as MoeConfigError).message).toBe('architecture: DeepSeek MoE is written in the per-expert layout only (mergekit writes no fused DeepSeek MoE either): use the per-expert layout (drop --layout fused)');
    expect(existsSync(join(root, 'fused-deepseek'))).toBe(false);
  });
});

describe('every expert the same model', () => {
  it('is refused at experts, and built with allowAllSame (--i-understand-this-is-not-useful-without-training)', async () => {
    const yaml = `base_model: base\nexperts:\n  - source_model: ex0\n    positive_prompts: ["write a poem"]\n  - source_model: ex0\n    positive_prompts: ["add numbers"]\n`;
    const { config } = parseMoeConfig(yaml.replace('source_model: ex0', 'source_model: ex1'));
    const same = { ...config, experts: config.experts.map((e) => ({ ...e, source_model: config.experts[1].source_model })) };
    const folder = (ref: { path: string }) => nodeModelFolder(join(root, ref.path), ref.path);
    const refusedError = await runMoeMerge(same, { folder }, await NodeOutputFolder.open(join(root, 'same-refused'))).catch((e: unknown) => e);
    expect(refusedError).toBeInstanceOf(MoeConfigError);
    expect((refusedError as MoeConfigError).message).toMatch(/^experts: every expert is the same model \(ex0\)/);
    expect(existsSync(join(root, 'same-refused'))).toBe(false);
    const report = await runMoeMerge(same, { folder }, await NodeOutputFolder.open(join(root, 'same-allowed')), { allowAllSame: true });
    expect(report.experts).toBe(2);
    expect(existsSync(join(root, 'same-allowed', 'model.safetensors'))).toBe(true);
  });
});

describe('noise_scale and residual_scale', () => {
  it("residual_scale multiplies the expert's down_proj only; noise_scale adds seeded noise of that size to its MLP", async () => {
    const yaml = `base_model: base
gate_mode: random
experts:
  - source_model: ex0
    residual_scale: 0.5
  - source_model: ex1
    noise_scale: 0.01
`;
    const { config } = parseMoeConfig(yaml);
    const build = async (out: string, seed: number) => {
      await runMoeMerge(config, { folder: (ref) => nodeModelFolder(join(root, ref.path), ref.path) }, await NodeOutputFolder.open(join(root, out)), { seed });
      return readModelDir(join(root, out)).tensors;
    };
    const a = await build('noise-a', 3);
    const b = await build('noise-b', 3);
    const src0 = readModelDir(join(root, 'ex0')).tensors;
    const src1 = readModelDir(join(root, 'ex1')).tensors;
    const down0 = a.get('model.layers.0.block_sparse_moe.experts.0.w2.weight')!.values;
    expect(Array.from(down0)).toEqual(Array.from(src0.get('model.layers.0.mlp.down_proj.weight')!.values, (v) => Math.fround(v * 0.5)));
    expect(Buffer.from(a.get('model.layers.0.block_sparse_moe.experts.0.w1.weight')!.raw).equals(Buffer.from(src0.get('model.layers.0.mlp.gate_proj.weight')!.raw))).toBe(true);
    const noisy = a.get('model.layers.1.block_sparse_moe.experts.1.w3.weight')!.values;
    const clean = src1.get('model.layers.1.mlp.up_proj.weight')!.values;
    const diff = Array.from(noisy, (v, i) => v - clean[i]);
    const sd = Math.sqrt(diff.reduce((s, d) => s + d * d, 0) / diff.length);
    // 32×48 draws of N(0, 0.01²): the sample sd is within 10 % of 0.01.
    expect(sd).toBeGreaterThan(0.009);
    expect(sd).toBeLessThan(0.011);
    // The same seed gives the same bytes.
    expect(Array.from(b.get('model.layers.1.block_sparse_moe.experts.1.w3.weight')!.values)).toEqual(Array.from(noisy));
  });
});
