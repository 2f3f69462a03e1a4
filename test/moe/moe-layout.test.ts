import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMoeConfig } from '../../src/config';
import { runMoeMerge, type MoeLayout, type MoeReport } from '../../src/moe';
import { nodeModelFolder, NodeOutputFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel, TEXT_CHARACTERS, type TinyArch, type TinyModel } from '../fixtures/models';
import { readModelDir, type ReadTensor } from '../fixtures/safetensors';
import { tempDir } from '../cli/run-alloy';

/**
 * The output of each architecture mergekit-moe writes, checked against the layout rules of
 * docs/moe.md §3 (Transformers 4 class names and tensor names), with expert weights byte-identical
 * to the expert models' MLPs and everything else byte-identical to the base.
 */
const root = tempDir('alloy-moe-layout-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const L = 2;
const H = 32;
const I = 48;
const TOKENIZER = { characters: TEXT_CHARACTERS, addBos: true, chatTemplate: '{{ messages }}' };

interface Family {
  base: TinyModel;
  experts: TinyModel[];
}
const families = new Map<TinyArch, Family>();

beforeAll(async () => {
  for (const arch of ['llama', 'qwen2', 'qwen3'] as const) {
    const base = await makeTinyModel(join(root, arch, 'base'), { arch, seed: 1, numLayers: L, hiddenSize: H, intermediateSize: I, vocabSize: 80, tokenizer: TOKENIZER, weightStd: 0.1 });
    const experts: TinyModel[] = [];
    for (let i = 0; i < 3; i++) experts.push(await makeFineTune(join(root, arch, `ex${i}`), base, { seed: 10 + i, deltaScale: 0.05 }));
    families.set(arch, { base, experts });
  }
});

async function build(arch: TinyArch, yaml: string, out: string, layout: MoeLayout = 'per-expert'): Promise<MoeReport> {
  const dir = join(root, arch);
  const { config } = parseMoeConfig(yaml);
  const output = await NodeOutputFolder.open(join(root, out));
  return runMoeMerge(config, { folder: (ref) => nodeModelFolder(join(dir, ref.path), ref.path) }, output, { seed: 7, layout, configText: yaml, outputName: out });
}

const EXPERTS_YAML = `
experts:
  - source_model: ex0
    positive_prompts: ["write a poem"]
  - source_model: ex1
    positive_prompts: ["solve the equation", "add these numbers"]
    negative_prompts: ["a poem"]
`;

function expectBytes(out: Map<string, ReadTensor>, name: string, source: TinyModel, sourceName: string): void {
  const tensor = out.get(name);
  expect(tensor, name).toBeDefined();
  const want = readModelDir(source.dir).tensors.get(sourceName)!;
  expect(tensor!.shape).toEqual(want.shape);
  expect(tensor!.dtype).toBe(want.dtype);
  expect(Buffer.from(tensor!.raw).equals(Buffer.from(want.raw)), `${name} = ${sourceName} byte for byte`).toBe(true);
}

/** The base's non-MLP tensors, copied unchanged under their own names. */
function expectBaseCopied(out: Map<string, ReadTensor>, base: TinyModel): string[] {
  const names = base.names.filter((n) => !/\.mlp\./.test(n));
  for (const n of names) expectBytes(out, n, base, n);
  return names;
}

function expectRouters(out: Map<string, ReadTensor>, report: MoeReport, name: (layer: number) => string, rows: [number, number]): void {
  for (let layer = 0; layer < L; layer++) {
    const t = out.get(name(layer))!;
    expect(t.shape).toEqual([rows[1] - rows[0], H]);
    expect(Array.from(t.values)).toEqual(Array.from(report.routers[layer].subarray(rows[0] * H, rows[1] * H)));
  }
}

describe('mixture-of-experts output layouts', () => {
  it('Mixtral (llama base): block_sparse_moe.experts.E.w1/w2/w3, block_sparse_moe.gate, MixtralForCausalLM config', async () => {
    const { base, experts } = families.get('llama')!;
    const report = await build('llama', `base_model: base\ngate_mode: cheap_embed\n${EXPERTS_YAML}`, 'mixtral');
    const dir = join(root, 'mixtral');
    const out = readModelDir(dir).tensors;
    const baseNames = expectBaseCopied(out, base);
    const expected = new Set(baseNames);
    for (let layer = 0; layer < L; layer++) {
      expected.add(`model.layers.${layer}.block_sparse_moe.gate.weight`);
      for (let e = 0; e < 2; e++) {
        for (const [w, proj] of [['w1', 'gate_proj'], ['w2', 'down_proj'], ['w3', 'up_proj']]) {
          const name = `model.layers.${layer}.block_sparse_moe.experts.${e}.${w}.weight`;
          expected.add(name);
          expectBytes(out, name, experts[e], `model.layers.${layer}.mlp.${proj}.weight`);
        }
      }
    }
    expect(new Set(out.keys())).toEqual(expected);
    expectRouters(out, report, (l) => `model.layers.${l}.block_sparse_moe.gate.weight`, [0, 2]);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['MixtralForCausalLM'], model_type: 'mixtral', num_local_experts: 2, num_experts_per_tok: 2, sliding_window: null, hidden_size: H, intermediate_size: I, num_hidden_layers: L, torch_dtype: 'float32' });
    // Tokenizer files and chat template from the base, unchanged; a model card and the config.
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      expect(readFileSync(join(dir, file)).equals(readFileSync(join(base.dir, file))), file).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')).chat_template).toBe('{{ messages }}');
    const card = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(card).toContain('Mixtral (per-expert tensor layout)');
    expect(card).toContain('2 experts, 2 used per token');
    expect(card).toContain('gate_mode: cheap_embed');
    expect(readFileSync(join(dir, 'mergekit_moe_config.yml'), 'utf8')).toContain('source_model: ex1');
    expect(report.architecture).toBe('Mixtral');
  });

  it('Mixtral, fused (Transformers 5) layout: experts.gate_up_proj [E, 2I, H] = each expert gate then up; experts.down_proj [E, H, I]', async () => {
    const { experts } = families.get('llama')!;
    await build('llama', `base_model: base\ngate_mode: cheap_embed\n${EXPERTS_YAML}`, 'mixtral-fused', 'fused');
    const out = readModelDir(join(root, 'mixtral-fused')).tensors;
    for (let layer = 0; layer < L; layer++) {
      const gateUp = out.get(`model.layers.${layer}.mlp.experts.gate_up_proj`)!;
      const down = out.get(`model.layers.${layer}.mlp.experts.down_proj`)!;
      expect(gateUp.shape).toEqual([2, 2 * I, H]);
      expect(down.shape).toEqual([2, H, I]);
      const src = (e: number, proj: string) => Buffer.from(readModelDir(experts[e].dir).tensors.get(`model.layers.${layer}.mlp.${proj}.weight`)!.raw);
      expect(Buffer.from(gateUp.raw).equals(Buffer.concat([src(0, 'gate_proj'), src(0, 'up_proj'), src(1, 'gate_proj'), src(1, 'up_proj')]))).toBe(true);
      expect(Buffer.from(down.raw).equals(Buffer.concat([src(0, 'down_proj'), src(1, 'down_proj')]))).toBe(true);
      expect(out.has(`model.layers.${layer}.mlp.gate.weight`)).toBe(true);
    }
    expect([...out.keys()].some((n) => n.includes('block_sparse_moe'))).toBe(false);
  });

  it('Qwen2-MoE (qwen2 base, one gated shared expert): mlp.experts.E.*, mlp.shared_expert.*, mlp.shared_expert_gate', async () => {
    const { base, experts } = families.get('qwen2')!;
    const yaml = `base_model: base\ngate_mode: hidden\n${EXPERTS_YAML}shared_experts:\n  - source_model: ex2\n    positive_prompts: ["hello"]\n`;
    const report = await build('qwen2', yaml, 'qwen2moe');
    const dir = join(root, 'qwen2moe');
    const out = readModelDir(dir).tensors;
    const expected = new Set(expectBaseCopied(out, base));
    for (let layer = 0; layer < L; layer++) {
      expected.add(`model.layers.${layer}.mlp.gate.weight`);
      expected.add(`model.layers.${layer}.mlp.shared_expert_gate.weight`);
      for (const proj of ['gate_proj', 'up_proj', 'down_proj']) {
        for (let e = 0; e < 2; e++) {
          expected.add(`model.layers.${layer}.mlp.experts.${e}.${proj}.weight`);
          expectBytes(out, `model.layers.${layer}.mlp.experts.${e}.${proj}.weight`, experts[e], `model.layers.${layer}.mlp.${proj}.weight`);
        }
        expected.add(`model.layers.${layer}.mlp.shared_expert.${proj}.weight`);
        expectBytes(out, `model.layers.${layer}.mlp.shared_expert.${proj}.weight`, experts[2], `model.layers.${layer}.mlp.${proj}.weight`);
      }
    }
    expect(new Set(out.keys())).toEqual(expected);
    expectRouters(out, report, (l) => `model.layers.${l}.mlp.gate.weight`, [0, 2]);
    expectRouters(out, report, (l) => `model.layers.${l}.mlp.shared_expert_gate.weight`, [2, 3]);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', num_experts: 2, num_experts_per_tok: 2, decoder_sparse_step: 1,
      norm_topk_prob: true, use_sliding_window: false, sliding_window: null, shared_expert_intermediate_size: I, moe_intermediate_size: I,
    });
  });

  it('Qwen2-MoE from a llama base: zero q/k/v biases are added (Qwen2-MoE always has them)', async () => {
    const yaml = `base_model: base\narchitecture: qwen\ngate_mode: random\nexperts:\n  - source_model: ex0\n  - source_model: ex1\nshared_experts:\n  - source_model: ex2\n`;
    await build('llama', yaml, 'llama-qwen2moe');
    const out = readModelDir(join(root, 'llama-qwen2moe')).tensors;
    for (let layer = 0; layer < L; layer++) {
      expect(Array.from(out.get(`model.layers.${layer}.self_attn.q_proj.bias`)!.values)).toEqual(new Array(H).fill(0));
      // 2 kv heads of head_dim 8.
      expect(out.get(`model.layers.${layer}.self_attn.k_proj.bias`)!.shape).toEqual([16]);
      expect(out.get(`model.layers.${layer}.self_attn.v_proj.bias`)!.values.every((v) => v === 0)).toBe(true);
      expect(out.has(`model.layers.${layer}.self_attn.o_proj.bias`)).toBe(false);
    }
  });

  it('Qwen3-MoE (qwen3 base): mlp.experts.E.*, mlp.gate, q/k norms from the base, Qwen3MoeForCausalLM config', async () => {
    const { base, experts } = families.get('qwen3')!;
    const yaml = `base_model: base\ngate_mode: hidden\nexperts_per_token: 1\n${EXPERTS_YAML}`;
    const report = await build('qwen3', yaml, 'qwen3moe');
    const dir = join(root, 'qwen3moe');
    const out = readModelDir(dir).tensors;
    const expected = new Set(expectBaseCopied(out, base));
    expect([...expected].some((n) => n.endsWith('self_attn.q_norm.weight'))).toBe(true);
    for (let layer = 0; layer < L; layer++) {
      expected.add(`model.layers.${layer}.mlp.gate.weight`);
      for (let e = 0; e < 2; e++) {
        for (const proj of ['gate_proj', 'up_proj', 'down_proj']) {
          expected.add(`model.layers.${layer}.mlp.experts.${e}.${proj}.weight`);
          expectBytes(out, `model.layers.${layer}.mlp.experts.${e}.${proj}.weight`, experts[e], `model.layers.${layer}.mlp.${proj}.weight`);
        }
      }
    }
    expect(new Set(out.keys())).toEqual(expected);
    expectRouters(out, report, (l) => `model.layers.${l}.mlp.gate.weight`, [0, 2]);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', num_experts: 2, num_experts_per_tok: 1, decoder_sparse_step: 1, norm_topk_prob: true, moe_intermediate_size: I });
  });

  it('DeepSeek MoE (llama base, ungated shared expert): mlp.experts.E.*, mlp.shared_experts.*, remote-code config', async () => {
    const { base, experts } = families.get('llama')!;
    const yaml = `base_model: base\narchitecture: deepseek\ngate_mode: cheap_embed\n${EXPERTS_YAML}shared_experts:\n  - source_model: ex2\n`;
    const report = await build('llama', yaml, 'deepseek');
    const dir = join(root, 'deepseek');
    const out = readModelDir(dir).tensors;
    const expected = new Set(expectBaseCopied(out, base));
    for (let layer = 0; layer < L; layer++) {
      expected.add(`model.layers.${layer}.mlp.gate.weight`);
      for (const proj of ['gate_proj', 'up_proj', 'down_proj']) {
        for (let e = 0; e < 2; e++) expected.add(`model.layers.${layer}.mlp.experts.${e}.${proj}.weight`);
        expected.add(`model.layers.${layer}.mlp.shared_experts.${proj}.weight`);
        expectBytes(out, `model.layers.${layer}.mlp.shared_experts.${proj}.weight`, experts[2], `model.layers.${layer}.mlp.${proj}.weight`);
      }
    }
    expect(new Set(out.keys())).toEqual(expected);
    // The shared expert has no prompts, so it gets no router row.
    expect(report.routers[0].length).toBe(2 * H);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['DeepseekForCausalLM'], model_type: 'deepseek', n_routed_experts: 2, n_shared_experts: 1, num_experts_per_tok: 2,
      first_k_dense_replace: 0, moe_layer_freq: 1, scoring_func: 'softmax', norm_topk_prob: true, moe_intermediate_size: I,
    });
    expect(config.auto_map.AutoModelForCausalLM).toBe('deepseek-ai/deepseek-moe-16b-base--modeling_deepseek.DeepseekForCausalLM');
  });

  it('dtype bfloat16 converts every float tensor (routers included) and records torch_dtype; shards get an index', async () => {
    const { config } = parseMoeConfig(`base_model: base\ngate_mode: cheap_embed\ndtype: bfloat16\n${EXPERTS_YAML}`);
    const output = await NodeOutputFolder.open(join(root, 'bf16'));
    const dir = join(root, 'llama');
    await runMoeMerge(config, { folder: (ref) => nodeModelFolder(join(dir, ref.path), ref.path) }, output, { outShardSize: 20_000 });
    const read = readModelDir(join(root, 'bf16'));
    expect(read.files.length).toBeGreaterThan(1);
    expect(existsSync(join(root, 'bf16', 'model.safetensors.index.json'))).toBe(true);
    expect([...read.tensors.values()].every((t) => t.dtype === 'BF16')).toBe(true);
    expect(JSON.parse(readFileSync(join(root, 'bf16', 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    // An f32 weight rounded to bf16: the top 16 bits, rounded to nearest even.
    const src = families.get('llama')!.experts[1].values.get('model.layers.1.mlp.up_proj.weight')!;
    const got = read.tensors.get('model.layers.1.block_sparse_moe.experts.1.w3.weight')!.values;
    const bits = new Uint32Array(Float32Array.from(src).buffer);
    const want = Float32Array.from(bits, (b) => new Float32Array(new Uint32Array([((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16]).buffer)[0]);
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(readdirSync(root).filter((f) => f.includes('.alloy-tmp-'))).toEqual([]);
  });
});
