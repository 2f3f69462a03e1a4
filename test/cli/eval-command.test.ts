import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVAL_TEXT, loadTextTokenizer } from '../../src/model';
import { nodeModelFolder } from '../../src/storage/node-fs';
import { makeFineTune, makeTinyModel, TEXT_CHARACTERS as CHARACTERS, type TinyModel } from '../fixtures/models';
import { RUN_NUMPY_TESTS, requireNumpyPython } from '../helpers/python';
import { runAlloy, tempDir } from './run-alloy';

const dir = tempDir('alloy-eval-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let base: TinyModel;
beforeAll(async () => {
  const tokenizer = { characters: CHARACTERS, addBos: true };
  base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', vocabSize: 96, weightStd: 0.1, seed: 3, tokenizer });
  await makeFineTune(join(dir, 'ft'), base, { seed: 4, deltaScale: 0.01 });
  // What a broken merge looks like: the same model with its weights blown up.
  await makeFineTune(join(dir, 'broken'), base, { seed: 5, deltaScale: 1.5 });
  await makeTinyModel(join(dir, 'gpt2'), { arch: 'gpt2', vocabSize: 96, tokenizer });
  await makeTinyModel(join(dir, 'notok'), { arch: 'llama', vocabSize: 96, tokenizer: false });
  writeFileSync(join(dir, 'notes.txt'), 'the quick brown fox jumps over the lazy dog. '.repeat(8));
  writeFileSync(join(dir, 'empty.txt'), ' \n\n ');
  mkdirSync(join(dir, 'afolder'));
});

interface EvalJson {
  maxTokens: number;
  texts: { label: string; models: { model: string; perplexity: number; tokens: number }[]; flags: { name: string; bestOther: string }[] }[];
}

describe('alloy eval', () => {
  it('prints the perplexities side by side and flags the broken model with what to try', async () => {
    const r = await runAlloy(['eval', 'base', 'ft', 'broken', '--text', 'notes.txt', '--max-tokens', '200'], dir);
    expect(r.stderr).toContain('scoring base on bundled text (200 tokens)');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^Perplexity, lower is better \(bundled text: Jane Austen, Pride and Prejudice/);
    expect(lines[1]).toMatch(/^model\s+bundled text\s+notes\.txt$/);
    expect(lines[2]).toMatch(/^base\s+\d+\.\d\d \(200 tokens\)\s+\d+\.\d\d \(200 tokens\)$/);
    expect(lines[4]).toMatch(/^broken\s+\S+ \(200 tokens\) !\s+\S+ \(200 tokens\) !$/);
    expect(r.stdout).toMatch(/flag \(bundled text\): broken is over 1000× more perplexed by this text than (base|ft) .*Try another merge method/);
    expect(r.stdout).toMatch(/flag \(notes\.txt\): broken is/);
    expect(r.stdout).not.toMatch(/flag \([^)]*\): (base|ft) is/);
  });

  it.runIf(RUN_NUMPY_TESTS)('--json: the numbers equal the numpy reference on the same token ids (windows of the 128-token context)', async () => {
    const r = await runAlloy(['eval', 'base', 'broken', '--json', '--max-tokens', '300'], dir);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as EvalJson;
    expect(json.maxTokens).toBe(300);
    expect(json.texts[0].flags.map((f) => [f.name, f.bestOther])).toEqual([['broken', 'base']]);
    const ids = (await loadTextTokenizer(nodeModelFolder(join(dir, 'base'), 'base'))).encode(EVAL_TEXT).slice(0, 300);
    for (const [i, name] of ['base', 'broken'].entries()) {
      const run = spawnSync(requireNumpyPython(), [join(__dirname, '../model/reference_forward.py')], {
        input: JSON.stringify({ model: join(dir, name), ids, window: 128 }),
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).toBe(0);
      const ref = JSON.parse(run.stdout) as { perplexity: number };
      const ours = json.texts[0].models[i];
      expect(ours.tokens).toBe(300);
      expect(Math.abs(ours.perplexity - ref.perplexity)).toBeLessThanOrEqual(1e-4 * ref.perplexity);
    }
  });

  it('one model: no comparison, no flag', async () => {
    const r = await runAlloy(['eval', 'broken', '--max-tokens', '20', '--quiet'], dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toContain('flag');
  });

  const failures: [string, string[], number, RegExp][] = [
    ['no model', ['eval'], 2, /eval takes one or more model folders/],
    ['a missing model folder', ['eval', 'base', 'nope'], 1, /Model nope: folder .*nope does not exist\. alloy eval reads local model folders/],
    ['a file given as a model', ['eval', 'notes.txt'], 1, /Model notes\.txt: .*notes\.txt is not a folder/],
    ['a missing text file', ['eval', 'base', '--text', 'missing.txt'], 2, /cannot read the text file .*missing\.txt: no such file/],
    ['a folder as the text file', ['eval', 'base', '--text', 'afolder'], 2, /cannot read the text file .*afolder: it is a folder/],
    ['an empty text file', ['eval', 'base', '--text', 'empty.txt'], 2, /the text file .*empty\.txt is empty/],
    ['a bad --max-tokens', ['eval', 'base', '--max-tokens', '1'], 2, /--max-tokens must be an integer from 2 to 1000000, not '1'/],
    ['a family the forward pass does not run', ['eval', 'base', 'gpt2'], 1, /Model gpt2: model_type "gpt2" is not supported by Alloy's forward pass/],
    ['a model without tokenizer.json', ['eval', 'notok'], 1, /Model notok: tokenizer\.json is missing/],
  ];
  for (const [label, args, code, message] of failures) {
    it(`${label}: exit ${code} with a message, nothing on stdout`, async () => {
      const r = await runAlloy(args, dir);
      expect(r.code).toBe(code);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    });
  }
});
