import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeSafetensorsHeader } from '../src/storage';

/** Shape of the generated benchmark models (Llama layout, bf16). */
export interface BenchModelSpec {
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly vocab: number;
}

function tensorList(spec: BenchModelSpec): { name: string; shape: number[] }[] {
  const { hidden: h, intermediate: i, layers, vocab } = spec;
  const list = [{ name: 'model.embed_tokens.weight', shape: [vocab, h] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    list.push(
      { name: `${p}input_layernorm.weight`, shape: [h] },
      { name: `${p}self_attn.q_proj.weight`, shape: [h, h] },
      { name: `${p}self_attn.k_proj.weight`, shape: [h, h] },
      { name: `${p}self_attn.v_proj.weight`, shape: [h, h] },
      { name: `${p}self_attn.o_proj.weight`, shape: [h, h] },
      { name: `${p}post_attention_layernorm.weight`, shape: [h] },
      { name: `${p}mlp.up_proj.weight`, shape: [i, h] },
      { name: `${p}mlp.gate_proj.weight`, shape: [i, h] },
      { name: `${p}mlp.down_proj.weight`, shape: [h, i] },
    );
  }
  list.push({ name: 'model.norm.weight', shape: [h] }, { name: 'lm_head.weight', shape: [vocab, h] });
  return list;
}

/**
 * Writes a bf16 Llama-layout model with pseudo-random weights: the same `seed` gives a base, other
 * seeds with `baseSeed` give "fine-tunes" (base + small deltas) so that delta methods see real deltas.
 * Values come from a cheap xorshift, written block by block so memory stays small.
 */
export async function writeBenchModel(dir: string, spec: BenchModelSpec, seed: number, baseSeed?: number): Promise<number> {
  const stamp = JSON.stringify({ spec, seed, baseSeed });
  const stampFile = join(dir, '.bench-stamp');
  const file = join(dir, 'model.safetensors');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return (await open(file, 'r').then(async (f) => { const s = (await f.stat()).size; await f.close(); return s; }));
  mkdirSync(dir, { recursive: true });
  const tensors = tensorList(spec);
  const entries = tensors.map((t) => ({ name: t.name, dtype: 'BF16' as const, shape: t.shape, byteLength: t.shape.reduce((a, b) => a * b, 1) * 2 }));
  const header = encodeSafetensorsHeader(entries);
  const handle = await open(file, 'w');
  let position = 0;
  const write = async (bytes: Uint8Array): Promise<void> => {
    await handle.write(bytes, 0, bytes.length, position);
    position += bytes.length;
  };
  await write(header);
  const block = new Uint16Array(1 << 22);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (const t of entries) {
    let baseState = (seed * 2654435761 + t.name.length * 97) >>> 0 || 1;
    let deltaState = ((seed + 1) * 40503 + t.name.length) >>> 0 || 1;
    if (baseSeed !== undefined) baseState = (baseSeed * 2654435761 + t.name.length * 97) >>> 0 || 1;
    const isNorm = t.shape.length === 1;
    let remaining = t.byteLength / 2;
    while (remaining > 0) {
      const n = Math.min(block.length, remaining);
      for (let k = 0; k < n; k++) {
        baseState ^= baseState << 13;
        baseState ^= baseState >>> 17;
        baseState ^= baseState << 5;
        let v = isNorm ? 1 : ((baseState >>> 0) / 4294967296 - 0.5) * 0.04;
        if (baseSeed !== undefined) {
          deltaState ^= deltaState << 13;
          deltaState ^= deltaState >>> 17;
          deltaState ^= deltaState << 5;
          v += ((deltaState >>> 0) / 4294967296 - 0.5) * 0.004;
        }
        f32[0] = v;
        block[k] = (u32[0] + 0x7fff + ((u32[0] >>> 16) & 1)) >>> 16;
      }
      await write(new Uint8Array(block.buffer, 0, n * 2));
      remaining -= n;
    }
  }
  await handle.close();
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: spec.hidden,
      intermediate_size: spec.intermediate,
      num_hidden_layers: spec.layers,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      vocab_size: spec.vocab,
      torch_dtype: 'bfloat16',
      tie_word_embeddings: false,
    }, null, 2),
  );
  writeFileSync(stampFile, stamp);
  return position;
}

/**
 * A character-level tokenizer (tokenizer.json + tokenizer_config.json with `<s>` as BOS) for the
 * bench models, so that `alloy moe` with gate_mode hidden can tokenise its prompts.
 */
export function writeBenchTokenizer(dir: string): void {
  const characters = [...' abcdefghijklmnopqrstuvwxyz.,?'];
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  characters.forEach((c, i) => (vocab[c] = 3 + i));
  const special = ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizer = {
    version: '1.0', truncation: null, padding: null, added_tokens: special, normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', tokenizer_class: 'PreTrainedTokenizerFast' }));
}
