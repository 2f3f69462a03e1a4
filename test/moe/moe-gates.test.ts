import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMoeConfig, type MoeGateMode } from '../../src/config';
import { loadTextTokenizer } from '../../src/model';
import { computeRouters, conditionNumber, degenerateWarning, planMoe, type MoePlan } from '../../src/moe';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel, TEXT_CHARACTERS, type TinyModel } from '../fixtures/models';
import { RUN_NUMPY_TESTS, requireNumpyPython } from '../helpers/python';
import { tempDir } from '../cli/run-alloy';

/**
 * Router weights against test/moe/reference_moe.py (numpy, float64, mergekit-moe's procedure:
 * one left-padded batch per expert, BOS as padding, positions as transformers numbers them) on
 * generated models. Tolerance: |ours − reference| ≤ 1e-5 + 1e-4·|reference| on every element of
 * every unit-length gate vector (f32 against f64).
 */
const RTOL = 1e-4;
const ATOL = 1e-5;
const SCRIPT = join(__dirname, 'reference_moe.py');
const root = tempDir('alloy-moe-gates-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const models = new Map<string, TinyModel>();
beforeAll(async () => {
  for (const arch of ['llama', 'mistral', 'qwen3'] as const) {
    const base = await makeTinyModel(join(root, arch, 'base'), {
      arch, seed: 31, numLayers: 3, hiddenSize: 32, intermediateSize: 48, vocabSize: 80, weightStd: 0.15, tokenizer: { characters: TEXT_CHARACTERS, addBos: true },
    });
    models.set(arch, base);
    for (let i = 0; i < 3; i++) await makeFineTune(join(root, arch, `ex${i}`), base, { seed: 40 + i });
  }
});

// Prompts of different lengths, so a batch is padded; negative prompts on two experts.
const YAML = (mode: MoeGateMode) => `base_model: base
gate_mode: ${mode}
experts:
  - source_model: ex0
    positive_prompts: ["write a short poem about the sea", "a sonnet"]
    negative_prompts: ["add two and three"]
  - source_model: ex1
    positive_prompts: ["add two and three", "what is seven times six?", "x"]
  - source_model: ex2
    positive_prompts: ["Translate into French: good morning"]
    negative_prompts: ["a sonnet", "write a short poem about the sea and the wind"]
`;

async function plan(arch: string, mode: MoeGateMode): Promise<MoePlan> {
  const { config } = parseMoeConfig(YAML(mode));
  return planMoe(config, { folder: (ref) => nodeModelFolder(join(root, arch, ref.path), ref.path) });
}

function reference(arch: string, mode: string, p: MoePlan): number[][][] {
  const request = { model: join(root, arch, 'base'), mode, experts: p.gated.map((g) => ({ positive: g.positive, negative: g.negative })) };
  const run = spawnSync(requireNumpyPython(), [SCRIPT], { input: JSON.stringify(request), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.status !== 0) throw new Error(`reference_moe.py failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { routers: number[][][] }).routers;
}

describe('prompts as mergekit-moe tokenises them', () => {
  it("each prompt is the BOS token's text + the prompt, tokenised without the post-processor's BOS", async () => {
    const p = await plan('llama', 'hidden');
    const tokenizer = await loadTextTokenizer(nodeModelFolder(join(root, 'llama', 'base')));
    expect(tokenizer.bosToken).toBe('<s>');
    const poem = tokenizer.encode('write a short poem about the sea', false);
    // The character tokenizer: one token per character, <s> is id 1, exactly once.
    expect(poem.length).toBe('write a short poem about the sea'.length);
    expect(p.gated[0].positive[0]).toEqual([1, ...poem]);
    expect(p.gated[1].positive[2]).toEqual([1, tokenizer.encode('x', false)[0]]);
    expect(p.gated[2].negative.length).toBe(2);
  });
});

describe.runIf(RUN_NUMPY_TESTS)('router weights vs the numpy reference of mergekit-moe', () => {
  const cases: [string, MoeGateMode, string][] = [
    ['llama', 'hidden', 'hidden'],
    ['llama', 'hidden_last', 'hidden'],
    ['mistral', 'hidden', 'hidden'],
    ['qwen3', 'hidden', 'hidden'],
    ['llama', 'hidden_avg', 'hidden_avg'],
    ['qwen3', 'hidden_avg', 'hidden_avg'],
    ['llama', 'cheap_embed', 'cheap_embed'],
  ];
  for (const [arch, mode, refMode] of cases) {
    it(`${arch}, gate_mode ${mode}`, async () => {
      const p = await plan(arch, mode);
      // Batches of 2 prompts: the result must not depend on how prompts are batched.
      const routers = await computeRouters(p, mode, { seed: 0, promptBatch: 2 });
      const ref = reference(arch, refMode, p);
      expect(routers.length).toBe(3);
      let worst = 0;
      routers.forEach((matrix, layer) => {
        for (let e = 0; e < 3; e++) {
          let norm = 0;
          for (let i = 0; i < 32; i++) {
            const a = matrix[e * 32 + i];
            const want = ref[layer][e][i];
            norm += a * a;
            const err = Math.abs(a - want);
            if (!(err <= ATOL + RTOL * Math.abs(want))) throw new Error(`layer ${layer} expert ${e} [${i}]: ours ${a}, reference ${want}`);
            worst = Math.max(worst, err);
          }
          expect(Math.sqrt(norm)).toBeCloseTo(1, 5);
        }
      });
      console.info(`moe gates ${arch} ${mode}: max |error| ${worst.toExponential(2)}`);
    });
  }
});

describe('random routers', () => {
  it('random: standard normal, reproducible from the seed, different for another seed', async () => {
    const p = await plan('llama', 'random');
    const a = await computeRouters(p, 'random', { seed: 5, promptBatch: 8 });
    const b = await computeRouters(p, 'random', { seed: 5, promptBatch: 8 });
    const c = await computeRouters(p, 'random', { seed: 6, promptBatch: 8 });
    expect(a.map((m) => Array.from(m))).toEqual(b.map((m) => Array.from(m)));
    expect(Array.from(a[0])).not.toEqual(Array.from(c[0]));
    const all = a.flatMap((m) => Array.from(m));
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    const sd = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / all.length);
    // 288 draws: mean within ±0.25 and sd within 0.8–1.2 of a standard normal (≈4 standard errors).
    expect(Math.abs(mean)).toBeLessThan(0.25);
    expect(sd).toBeGreaterThan(0.8);
    expect(sd).toBeLessThan(1.2);
  });

  it("uniform_random: inside ±1/√hidden like nn.Linear's initialisation, filling the range", async () => {
    const p = await plan('llama', 'uniform_random');
    const all = (await computeRouters(p, 'uniform_random', { seed: 1, promptBatch: 8 })).flatMap((m) => Array.from(m));
    const bound = Math.sqrt(1 / 32);
    expect(all.every((v) => Math.abs(v) <= bound)).toBe(true);
    expect(Math.max(...all)).toBeGreaterThan(0.9 * bound);
    expect(Math.min(...all)).toBeLessThan(-0.9 * bound);
  });
});

describe('degenerate routing', () => {
  it('condition numbers: hand-worked values', () => {
    // diag(1, 2) padded with zero columns: σ = 2, 1.
    expect(conditionNumber(Float32Array.from([1, 0, 0, 0, 2, 0]), 2, 3)).toBeCloseTo(2, 10);
    // [[3, 4]] has one singular value, 5: condition 1.
    expect(conditionNumber(Float32Array.from([3, 4]), 1, 2)).toBeCloseTo(1, 10);
    // Two equal rows: rank 1.
    expect(conditionNumber(Float32Array.from([1, 1, 1, 1]), 2, 2)).toBe(Infinity);
    // [[1, 1], [1, -1]]/√2 is orthogonal; [[1, 0.9], [0.9, 1]] has σ = 1.9, 0.1: 19.
    expect(conditionNumber(Float32Array.from([1, 0.9, 0.9, 1]), 2, 2)).toBeCloseTo(19, 4);
    // More rows than columns: the same singular values from the other Gram matrix.
    expect(conditionNumber(Float32Array.from([1, 0, 0, 2, 0, 0]), 3, 2)).toBeCloseTo(2, 10);
  });

  it("mergekit-moe's wording for 1, 2, several and all layers", () => {
    expect(degenerateWarning([], 4)).toBeNull();
    expect(degenerateWarning([2], 4)).toMatch(/^layer 2 has degenerate routing parameters/);
    expect(degenerateWarning([0, 1], 2)).toMatch(/^layers 0 and 1 have/);
    expect(degenerateWarning([0, 1, 3], 5)).toMatch(/^layers 0, 1, and 3 have/);
    expect(degenerateWarning([0, 1, 2], 3)).toMatch(/^ALL layers have/);
  });
});
