import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVAL_TEXT, ForwardModel, explainFlag, flagWorseModels, loadTextTokenizer, perplexity, perplexityWindows, type TextTokenizer } from '../../src/model';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeTinyModel, TEXT_CHARACTERS as CHARACTERS } from '../fixtures/models';
import { RUN_NUMPY_TESTS, requireNumpyPython } from '../helpers/python';

const root = mkdtempSync(join(tmpdir(), 'alloy-perplexity-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function numpyPerplexity(dir: string, ids: number[], window: number): { perplexity: number; scored: number } {
  const run = spawnSync(requireNumpyPython(), [join(__dirname, 'reference_forward.py')], {
    input: JSON.stringify({ model: dir, ids, window }),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  if (run.status !== 0) throw new Error(`reference_forward.py failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as { perplexity: number; scored: number };
}

describe('perplexity windows', () => {
  it('hand-worked: 10 tokens, window 4 → stride 2, each token scored once', () => {
    expect(perplexityWindows(10, 4)).toEqual([
      { begin: 0, end: 4, from: 1 },
      { begin: 2, end: 6, from: 4 },
      { begin: 4, end: 8, from: 6 },
      { begin: 6, end: 10, from: 8 },
    ]);
    expect(perplexityWindows(3, 8)).toEqual([{ begin: 0, end: 3, from: 1 }]);
  });

  it('every token after the first is scored exactly once, for many lengths and windows', () => {
    for (let n = 2; n < 40; n++) {
      for (let w = 2; w < 12; w++) {
        const seen = new Array<number>(n).fill(0);
        for (const win of perplexityWindows(n, w)) for (let t = win.from; t < win.end; t++) seen[t]++;
        expect(seen, `n=${n} w=${w}`).toEqual([0, ...new Array<number>(n - 1).fill(1)]);
      }
    }
    expect(() => perplexityWindows(10, 1)).toThrow(/at least 2 tokens/);
  });
});

describe('flagging a model far worse than the others', () => {
  const m = (name: string, perplexity: number, tokensKey = 'same') => ({ name, perplexity, tokensKey });

  it('flags above 1.5× the best of the others, not at or below', () => {
    expect(flagWorseModels([m('a', 10), m('b', 12), m('merged', 15)])).toEqual([]);
    const flags = flagWorseModels([m('a', 10), m('b', 12), m('merged', 15.01)]);
    expect(flags.map((f) => [f.name, f.bestOther, f.ratio])).toEqual([['merged', 'a', 1.501]]);
    expect(explainFlag(flags[0])).toMatch(/^merged is 1\.5× more perplexed by this text than a \(15\.01 vs 10\.00\).*Try another merge method, a lower density/);
  });

  it('the best model is compared with the next best; a single model is never flagged', () => {
    expect(flagWorseModels([m('only', 1e6)])).toEqual([]);
    expect(flagWorseModels([m('a', 100), m('b', 10)]).map((f) => f.name)).toEqual(['a']);
  });

  it('NaN or infinite perplexity is always flagged; other tokenizers are not compared', () => {
    expect(flagWorseModels([m('a', 10), m('nan', Number.NaN), m('inf', Number.POSITIVE_INFINITY)]).map((f) => f.name)).toEqual(['nan', 'inf']);
    expect(flagWorseModels([m('a', 10), m('other-tokenizer', 100, 'different')])).toEqual([]);
  });
});

describe.runIf(RUN_NUMPY_TESTS)('perplexity vs numpy', () => {
  let dir: string;
  let model: ForwardModel;
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    dir = join(root, 'chars');
    await makeTinyModel(dir, { arch: 'llama', vocabSize: 96, weightStd: 0.3, seed: 5, tokenizer: { characters: CHARACTERS, addBos: true } });
    model = await ForwardModel.open(nodeModelFolder(dir, 'chars'));
    tokenizer = await loadTextTokenizer(nodeModelFolder(dir, 'chars'));
  });
  afterAll(() => model.close());

  it('tokenizes with the model tokenizer.json (BOS from the post-processor, characters as tokens)', () => {
    // <s> = 1, then ' ' = 3, 'a' = 4, …: "It is" → I (3 + 36 + 8 = 47), t, ' ', i, s.
    expect(tokenizer.encode('It is')).toEqual([1, 47, 23, 3, 12, 22]);
  });

  for (const [label, tokens, window] of [
    ['one window', 60, 128],
    ['windows of 16 (stride 8)', 61, 16],
    ['odd window 7', 40, 7],
  ] as const) {
    it(`${label}: equals the numpy computation`, async () => {
      const ids = tokenizer.encode(EVAL_TEXT).slice(0, tokens);
      const ours = await perplexity(model, ids, { window, batch: 3 });
      const ref = numpyPerplexity(dir, ids, window);
      expect(ours.scored).toBe(ref.scored);
      expect(ours.scored).toBe(tokens - 1);
      expect(Math.abs(ours.perplexity - ref.perplexity)).toBeLessThanOrEqual(1e-4 * ref.perplexity);
      // A model of random weights is no better than chance on real text: well above 1.
      expect(ours.perplexity).toBeGreaterThan(5);
    });
  }
});
