import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebGpuBackend } from '../../src/gpu';
import { ForwardModel, type ForwardOptions, type ForwardResult } from '../../src/model';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { runAlloy, type CliResult } from '../cli/run-alloy';
import { makeTinyModel, TEXT_CHARACTERS, type TinyModelOptions } from '../fixtures/models';
import { disposeAll, gpuBackend, within } from './helpers';

/**
 * The forward pass on --backend webgpu against the CPU reference (docs/model.md §7): logits,
 * every hidden state and log p(target) of every real token agree within 1e-5 + 1e-4·|cpu| (the
 * tolerance the CPU pass meets against numpy in f64), on tiny models of the families whose blocks
 * differ (plain llama, Gemma 2's caps and sandwich norms, Qwen3's q/k norms, Phi-3's fused
 * projections), with left padding and weights read in blocks of a few rows. CPU runs first.
 */
const RTOL = 1e-4;
const ATOL = 1e-5;
const root = mkdtempSync(join(tmpdir(), 'alloy-forward-gpu-'));
const SEQUENCES = [
  [1, 5, 9, 13, 40, 2, 63],
  [1, 7, 7],
  [1, 30, 12, 4, 55, 61, 3, 8, 19],
];
const BASE: TinyModelOptions = { hiddenSize: 32, numHeads: 4, numKvHeads: 2, intermediateSize: 48, numLayers: 2, vocabSize: 64, weightStd: 0.15, tokenizer: false };

interface Case {
  readonly name: string;
  readonly model: TinyModelOptions;
  readonly run: ForwardOptions;
  dir?: string;
  cpu?: ForwardResult;
}

const cases: Case[] = [
  { name: 'llama, right padding', model: { arch: 'llama', seed: 41 }, run: {} },
  { name: 'gemma2 with soft caps, left padding', model: { arch: 'gemma2', seed: 42, weightStd: 0.4, config: { attn_logit_softcapping: 0.5, final_logit_softcapping: 1.5 } }, run: { padding: 'left' } },
  { name: 'qwen3 (q/k norms), weights in blocks of 3 rows', model: { arch: 'qwen3', seed: 43 }, run: { blockBytes: 3 * 32 * 4 } },
  { name: 'phi3 (fused qkv and gate_up)', model: { arch: 'phi3', seed: 44 }, run: {} },
];

function runOptions(c: Case): ForwardOptions {
  const targets = SEQUENCES.map((seq) => seq.map((_, j) => (j + 1 < seq.length ? seq[j + 1] : -1)));
  return { ...c.run, hiddenStates: true, logits: 'all', targets };
}

async function forward(dir: string, options: { matrix?: WebGpuBackend['matrix'] }, run: ForwardOptions): Promise<ForwardResult> {
  const model = await ForwardModel.open(nodeModelFolder(dir, dir), options);
  try {
    return await model.run(SEQUENCES, run);
  } finally {
    await model.close();
  }
}

/** Compares the cells of real tokens, `width` values each. */
function compare(gpu: Float32Array, cpu: Float32Array, r: ForwardResult, width: number, what: string): number {
  let worst = 0;
  r.lengths.forEach((n, b) => {
    const first = r.padding === 'right' ? 0 : r.tokens - n;
    for (let t = first; t < first + n; t++) {
      for (let i = 0; i < width; i++) {
        const at = (b * r.tokens + t) * width + i;
        if (Number.isNaN(cpu[at]) && Number.isNaN(gpu[at])) continue; // no target here
        const err = Math.abs(gpu[at] - cpu[at]);
        if (!(err <= ATOL + RTOL * Math.abs(cpu[at]))) throw new Error(`${what}: sequence ${b}, token ${t}, index ${i}: webgpu ${gpu[at]}, cpu ${cpu[at]}`);
        worst = Math.max(worst, err);
      }
    }
  });
  return worst;
}

let backend: WebGpuBackend | undefined;
let evalCpu: CliResult;

interface EvalJson {
  texts: { models: { perplexity: number; tokens: number }[] }[];
}

beforeAll(async () => {
  await makeTinyModel(join(root, 'eval'), { arch: 'llama', vocabSize: 96, weightStd: 0.1, seed: 45, tokenizer: { characters: TEXT_CHARACTERS, addBos: true } });
  evalCpu = await runAlloy(['eval', 'eval', '--json', '--max-tokens', '40', '--backend', 'cpu'], root);
  for (const c of cases) {
    c.dir = join(root, c.name.replace(/\W+/g, '-'));
    await makeTinyModel(c.dir, { ...BASE, ...c.model });
    c.cpu = await forward(c.dir, {}, runOptions(c));
  }
  backend = await gpuBackend();
}, 180_000);

afterAll(async () => {
  await disposeAll([backend]);
  rmSync(root, { recursive: true, force: true });
}, 60_000);

describe('forward pass on WebGPU against the CPU reference', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const gpu = await within(forward(c.dir!, { matrix: backend!.matrix }, runOptions(c)), 120_000, `forward ${c.name}`);
      const cpu = c.cpu!;
      expect(gpu.tokens).toBe(cpu.tokens);
      compare(gpu.logits!, cpu.logits!, cpu, 64, 'logits');
      cpu.hiddenStates!.forEach((h, i) => compare(gpu.hiddenStates![i], h, cpu, 32, `hidden state ${i}`));
      cpu.targetLogProbs!.forEach((lp, b) => compare(gpu.targetLogProbs![b], lp, { ...cpu, batch: 1, lengths: [cpu.lengths[b]] }, 1, `log p, sequence ${b}`));
      // The comparison is not vacuous: the logits spread well beyond the tolerance.
      const spread = Math.max(...cpu.logits!) - Math.min(...cpu.logits!);
      expect(spread).toBeGreaterThan(0.1);
    }, 180_000);
  }

  it('alloy eval --backend webgpu: the perplexity of --backend cpu within 1e-4', async () => {
    expect(evalCpu.code, evalCpu.stderr).toBe(0);
    const gpu = await within(runAlloy(['eval', 'eval', '--json', '--max-tokens', '40', '--backend', 'webgpu'], root), 180_000, 'alloy eval on WebGPU');
    expect(gpu.code, gpu.stderr).toBe(0);
    const a = (JSON.parse(evalCpu.stdout) as EvalJson).texts[0].models[0];
    const b = (JSON.parse(gpu.stdout) as EvalJson).texts[0].models[0];
    expect(b.tokens).toBe(40);
    expect(a.perplexity).toBeGreaterThan(1);
    expect(Math.abs(b.perplexity - a.perplexity)).toBeLessThanOrEqual(1e-4 * a.perplexity);
  }, 200_000);
});
