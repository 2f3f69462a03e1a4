import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel, TINY_ARCHS } from './fixtures/models';
import { RUN_PYTHON_TESTS, requirePython } from './helpers/python';
import {
  bf16BitsToF32,
  decodeSafetensors,
  encodeSafetensors,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  readModelDir,
  readSafetensorsHeader,
} from './fixtures/safetensors';

const root = mkdtempSync(join(tmpdir(), 'alloy-fixtures-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('half-precision codecs', () => {
  it('bf16 rounds to nearest, ties to even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even (down)
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80); // rounds up to +Inf
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
  });

  it('f16 rounds to nearest, ties to even, with subnormals and overflow', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie → even (0)
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie → even (2)
    expect(f32ToF16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the normals
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
  });

  it('decoding then encoding returns every non-NaN bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f16 = f16BitsToF32(h);
      if (!Number.isNaN(f16)) expect(f32ToF16Bits(f16)).toBe(h);
      const bf = bf16BitsToF32(h);
      if (!Number.isNaN(bf) && f32ToBf16Bits(bf) !== h) expect.fail(`bf16 ${h.toString(16)}`);
    }
  });
});

describe('safetensors writer/reader', () => {
  it('pads the header to 8 bytes and keeps data contiguous', () => {
    const bytes = encodeSafetensors([
      { name: 'a', dtype: 'F32', shape: [2], values: [1, 2] },
      { name: 'b', dtype: 'BF16', shape: [3], values: [1, 2, 3] },
      { name: 'c', dtype: 'BOOL', shape: [], values: [1] },
    ]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(header.b.data_offsets).toEqual([8, 14]);
    const back = decodeSafetensors(bytes);
    expect([...back.get('b')!.values]).toEqual([1, 2, 3]);
    expect(back.get('c')!.shape).toEqual([]);
  });
});

describe('tiny models', () => {
  it('writes a sharded bf16 llama that reads back exactly', async () => {
    const dir = join(root, 'llama-bf16');
    const model = await makeTinyModel(dir, { arch: 'llama', dtype: 'BF16', shards: 3, seed: 7 });
    expect(model.files).toEqual([
      'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors',
    ]);
    const read = readModelDir(dir);
    expect(read.files).toEqual(model.files);
    expect([...read.tensors.keys()].sort()).toEqual([...model.names].sort());
    expect(model.names).toContain('lm_head.weight');
    expect(model.names).toHaveLength(1 + 2 * 9 + 2);
    let total = 0;
    for (const name of model.names) {
      const t = read.tensors.get(name)!;
      expect(t.dtype).toBe('BF16');
      expect(t.shape).toEqual(model.shapes.get(name));
      expect(bitsOf(t.values)).toEqual(bitsOf(model.values.get(name)!));
      expect(read.fileOf.get(name)).toBe(model.fileOf.get(name));
      total += t.raw.byteLength;
    }
    expect(read.index?.metadata).toEqual({ total_size: total });
    expect(model.shapes.get('model.layers.0.self_attn.k_proj.weight')).toEqual([16, 32]);
    expect(model.shapes.get('model.layers.1.mlp.down_proj.weight')).toEqual([32, 48]);
    for (const f of model.files) {
      const h = readSafetensorsHeader(join(dir, f));
      expect((8 + h.headerLength) % 8).toBe(0);
      expect(h.metadata).toEqual({ format: 'pt' });
    }
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 32, intermediate_size: 48,
      num_hidden_layers: 2, vocab_size: 64, num_attention_heads: 4, num_key_value_heads: 2,
      tie_word_embeddings: false, torch_dtype: 'bfloat16',
    });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    expect(Object.keys(tok.model.vocab)).toHaveLength(64);
    expect(tok.added_tokens.map((t: { content: string }) => t.content)).toEqual(['<unk>', '<s>', '</s>']);
  });

  it('is deterministic per seed and independent of the tensor set', async () => {
    const a = await makeTinyModel(join(root, 'det-a'), { seed: 3, tokenizer: false });
    const b = await makeTinyModel(join(root, 'det-b'), { seed: 3, tokenizer: false });
    const c = await makeTinyModel(join(root, 'det-c'), { seed: 4, tokenizer: false });
    const tied = await makeTinyModel(join(root, 'det-tied'), { seed: 3, tied: true, tokenizer: false });
    expect(readFileSync(join(a.dir, 'model.safetensors'))).toEqual(readFileSync(join(b.dir, 'model.safetensors')));
    expect(c.values.get('model.embed_tokens.weight')).not.toEqual(a.values.get('model.embed_tokens.weight'));
    expect(tied.names).not.toContain('lm_head.weight');
    expect(tied.config.tie_word_embeddings).toBe(true);
    expect(tied.values.get('model.embed_tokens.weight')).toEqual(a.values.get('model.embed_tokens.weight'));
    expect(tied.values.get('model.layers.1.mlp.up_proj.weight')).toEqual(a.values.get('model.layers.1.mlp.up_proj.weight'));
  });

  it('makes fine-tunes as base + deltas', async () => {
    const base = await makeTinyModel(join(root, 'ft-base'), { arch: 'qwen2', seed: 1 });
    const ft = await makeFineTune(join(root, 'ft'), base, { seed: 2, deltaScale: 0.01 });
    const sparse = await makeFineTune(join(root, 'ft-sparse'), base, { seed: 2, deltaDensity: 0.25, normDeltas: false, dtype: 'F16' });
    expect(ft.names).toEqual(base.names);
    expect(ft.config).toEqual(base.config);
    const read = readModelDir(ft.dir).tensors;
    let sumSq = 0;
    let n = 0;
    for (const name of base.names) {
      const d = ft.values.get(name)!.map((v, i) => v - base.values.get(name)![i]);
      expect(bitsOf(read.get(name)!.values)).toEqual(bitsOf(ft.values.get(name)!));
      for (const x of d) { sumSq += x * x; n++; }
    }
    expect(Math.sqrt(sumSq / n)).toBeGreaterThan(0.009);
    expect(Math.sqrt(sumSq / n)).toBeLessThan(0.011);
    expect(ft.values.get('model.norm.weight')).not.toEqual(base.values.get('model.norm.weight'));
    expect(ft.values.get('model.layers.0.self_attn.q_proj.bias')).not.toEqual(base.values.get('model.layers.0.self_attn.q_proj.bias'));
    // Sparse: norms untouched, about a quarter of the other elements changed.
    expect(sparse.dtype).toBe('F16');
    expect(sparse.config.torch_dtype).toBe('float16');
    const norm = base.values.get('model.norm.weight')!;
    expect(sparse.values.get('model.norm.weight')).toEqual(Float32Array.from(norm, (v) => f16BitsToF32(f32ToF16Bits(v))));
    const e = base.values.get('model.embed_tokens.weight')!;
    const s = sparse.values.get('model.embed_tokens.weight')!;
    const changed = s.filter((v, i) => Math.abs(v - e[i]) > 1e-3).length / s.length;
    expect(changed).toBeGreaterThan(0.15);
    expect(changed).toBeLessThan(0.3);
  });

  it('writes every architecture and added tokens', async () => {
    for (const arch of TINY_ARCHS) {
      const m = await makeTinyModel(join(root, `all-${arch}`), { arch, dtype: 'F16', shards: 2 });
      const read = readModelDir(m.dir);
      expect(read.tensors.size, arch).toBe(m.names.length);
    }
    const chatml = await makeTinyModel(join(root, 'chatml'), { vocabSize: 66, tokenizer: { addedTokens: ['<|im_start|>', '<|im_end|>'] } });
    const tok = JSON.parse(readFileSync(join(chatml.dir, 'tokenizer.json'), 'utf8'));
    expect(Object.keys(tok.model.vocab)).toHaveLength(64);
    expect(tok.added_tokens.slice(3)).toMatchObject([{ id: 64, content: '<|im_start|>' }, { id: 65, content: '<|im_end|>' }]);
    const neox = readModelDir(join(root, 'all-gpt_neox')).tensors;
    expect(neox.get('gpt_neox.layers.0.attention.bias')!.dtype).toBe('BOOL');
    expect(neox.get('gpt_neox.layers.0.attention.masked_bias')!.shape).toEqual([]);
  });
});

// CI installs Python's safetensors (.ci/run): there the test must run, never skip.
describe.skipIf(!RUN_PYTHON_TESTS)("python's safetensors agrees", () => {
  it('lists the same keys and values', async () => {
    const dir = join(root, 'py');
    const model = await makeTinyModel(dir, { arch: 'qwen2', dtype: 'F16', shards: 2, seed: 11 });
    const bf = await makeTinyModel(join(root, 'py-bf16'), { dtype: 'BF16', seed: 11 });
    const script = `
import json, sys
from safetensors import safe_open
out = []
for path in sys.argv[1:]:
    with safe_open(path, framework="numpy") as f:
        d = {}
        for k in f.keys():
            try:
                d[k] = [float(x) for x in f.get_tensor(k).astype("float64").ravel()[:5]]
            except Exception:
                d[k] = None  # numpy has no bfloat16
        out.append(d)
print(json.dumps(out))`;
    const paths = [...model.files.map((f) => join(dir, f)), join(bf.dir, 'model.safetensors')];
    const py = JSON.parse(execFileSync(requirePython(), ['-c', script, ...paths], { encoding: 'utf8' })) as Record<string, number[] | null>[];
    const shards = py.slice(0, model.files.length);
    const merged = Object.assign({}, ...shards) as Record<string, number[] | null>;
    expect(Object.keys(merged).sort()).toEqual([...model.names].sort());
    for (const name of model.names) expect(merged[name]).toEqual([...model.values.get(name)!.slice(0, 5)]);
    expect(Object.keys(py[py.length - 1]).sort()).toEqual([...bf.names].sort());
  });
});
