import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ForwardModel } from '../../src/model';
import type { ModelFolder } from '../../src/storage';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeTinyModel, type TinyModelOptions } from '../fixtures/models';

const root = mkdtempSync(join(tmpdir(), 'alloy-forward-errors-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let count = 0;
async function open(options: TinyModelOptions): Promise<ForwardModel> {
  const dir = join(root, `m${count++}`);
  await makeTinyModel(dir, { tokenizer: false, ...options });
  return ForwardModel.open(nodeModelFolder(dir, 'tiny'));
}

describe('the forward pass refuses what it cannot run, before any arithmetic', () => {
  it('families it does not implement', async () => {
    await expect(open({ arch: 'gpt2' })).rejects.toThrow(/Model tiny: model_type "gpt2" is not supported by Alloy's forward pass \(supported: llama, mistral, qwen2, qwen3, gemma, gemma2, phi3\)/);
    await expect(open({ arch: 'gemma3' })).rejects.toThrow(/model_type "gemma3_text" is not supported/);
  });

  it('a missing tensor, named', async () => {
    await expect(open({ omit: ['model.layers.1.mlp.up_proj.weight'] })).rejects.toThrow(/tensor model.layers.1.mlp.up_proj.weight is missing/);
  });

  it('a config that does not match the weights', async () => {
    await expect(open({ config: { intermediate_size: 40 } })).rejects.toThrow(/tensor model.layers.0.mlp.down_proj.weight has shape \[32, 48\] but config.json implies \[32, 40\]/);
  });

  it('an unsupported RoPE scaling', async () => {
    await expect(open({ config: { rope_scaling: { rope_type: 'mrope', mrope_section: [1, 1] } } })).rejects.toThrow(/rope_scaling type "mrope" is not supported/);
  });

  it('a missing or broken config.json', async () => {
    const dir = join(root, 'noconfig');
    await makeTinyModel(dir, { tokenizer: false });
    rmSync(join(dir, 'config.json'));
    await expect(ForwardModel.open(nodeModelFolder(dir, 'x'))).rejects.toThrow(/config.json is missing/);
    writeFileSync(join(dir, 'config.json'), '{"model_type": ');
    await expect(ForwardModel.open(nodeModelFolder(dir, 'x'))).rejects.toThrow(/config.json is not valid JSON/);
  });

  it('sequences longer than the sliding window, token ids outside the vocabulary, empty batches', async () => {
    const model = await open({ arch: 'mistral', config: { sliding_window: 4 } });
    try {
      await expect(model.run([[1, 2, 3, 4, 5]])).rejects.toThrow(/5 tokens is longer than the sliding window \(4\)/);
      await expect(model.run([[1, 64]])).rejects.toThrow(/token id 64 of sequence 0 is outside the vocabulary \(0..63\)/);
      await expect(model.run([])).rejects.toThrow(/batch is empty/);
      await expect(model.run([[1], []])).rejects.toThrow(/empty/);
      expect((await model.run([[1, 2, 3, 4]], { logits: 'last' })).logits!.length).toBe(64);
      const first = model.run([[1, 2]]);
      await expect(model.run([[1, 2]])).rejects.toThrow(/already running a batch/);
      await first;
    } finally {
      await model.close();
    }
  });

  it("'last' logits and hidden states are the last real token's rows of 'all', on either padding side", async () => {
    const model = await open({ arch: 'qwen2', weightStd: 0.2 });
    try {
      const seqs = [[1, 2, 3], [4, 5, 6, 7, 8]];
      for (const padding of ['left', 'right'] as const) {
        const all = await model.run(seqs, { padding, logits: 'all' });
        const last = await model.run(seqs, { padding, logits: 'last' });
        seqs.forEach((seq, b) => {
          const t = padding === 'right' ? seq.length - 1 : all.tokens - 1;
          expect(Array.from(last.logits!.subarray(b * 64, b * 64 + 64))).toEqual(Array.from(all.logits!.subarray((b * all.tokens + t) * 64, (b * all.tokens + t + 1) * 64)));
        });
      }
      // hiddenStates 'last' keeps exactly the last real token's row of every entry.
      for (const padding of ['left', 'right'] as const) {
        const all = await model.run(seqs, { padding, hiddenStates: true });
        const last = await model.run(seqs, { padding, hiddenStates: 'last' });
        expect(last.hiddenStates!.length).toBe(all.hiddenStates!.length);
        last.hiddenStates!.forEach((h, i) => {
          expect(h.length).toBe(2 * 32);
          seqs.forEach((seq, b) => {
            const t = padding === 'right' ? seq.length - 1 : all.tokens - 1;
            expect(Array.from(h.subarray(b * 32, b * 32 + 32))).toEqual(Array.from(all.hiddenStates![i].subarray((b * all.tokens + t) * 32, (b * all.tokens + t + 1) * 32)));
          });
        });
      }
      // A sequence alone gives the same numbers as in a padded batch (padding never leaks in).
      const alone = await model.run([seqs[0]], { logits: 'last' });
      const batched = await model.run(seqs, { padding: 'left', logits: 'last' });
      expect(Array.from(batched.logits!.subarray(0, 64))).toEqual(Array.from(alone.logits!));
    } finally {
      await model.close();
    }
  });
});

describe('streaming: what the forward pass reads', () => {
  it('never reads more than one weight block at a time, and only the embedding rows of the tokens present', async () => {
    const dir = join(root, 'streamed');
    const made = await makeTinyModel(dir, { tokenizer: false, numLayers: 3 });
    const reads: number[] = [];
    const inner = nodeModelFolder(dir, 'streamed');
    const folder: ModelFolder = {
      ...inner,
      id: inner.id,
      listFiles: () => inner.listFiles(),
      readText: (file) => inner.readText(file),
      async open(file) {
        const source = await inner.open(file);
        if (!source) return null;
        return { name: source.name, size: source.size, read: (offset, length) => (reads.push(length), source.read(offset, length)), close: () => source.close?.() ?? Promise.resolve() };
      },
    };
    const model = await ForwardModel.open(folder);
    reads.length = 0; // the header reads of open()
    const block = 1024;
    try {
      await model.run([[5, 9, 5, 17]], { blockBytes: block, logits: 'all' });
    } finally {
      await model.close();
    }
    expect(Math.max(...reads)).toBeLessThanOrEqual(block);
    // Every weight is read once, except the embedding: 3 distinct token rows of 32 f32 values.
    const total = [...made.values.entries()].reduce((sum, [, v]) => sum + v.length * 4, 0);
    const embedBytes = 64 * 32 * 4;
    expect(reads.reduce((a, b) => a + b, 0)).toBe(total - embedBytes + 3 * 32 * 4);
  });
});
