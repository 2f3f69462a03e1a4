import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvaluateProgress } from '../../src/worker/api';
import { EngineService } from '../../src/worker/engine-service';
import { writeDemoModels } from '../../scripts/generate-demo-models';
import { runAlloy, tempDir } from '../cli/run-alloy';
import { memoryOpfs } from '../helpers/memory-opfs';
import { serveStatic, type StaticServer } from '../e2e/static-server';

/**
 * The worker's `evaluate` against `alloy eval` on the same files: the demo models and outputs
 * merged by the worker, copied to disk for the CLI.
 */

let demoDir: string;
let demoServer: StaticServer;
const USER_TEXT = 'The quick brown fox jumps over the lazy dog. Merging models is fun, and checking them is wiser.\n';

beforeAll(async () => {
  demoDir = tempDir('alloy-eval-demo-');
  await writeDemoModels(join(demoDir, 'demo-models'));
  demoServer = await serveStatic(demoDir);
});
afterAll(async () => {
  await demoServer.close();
  rmSync(demoDir, { recursive: true, force: true });
});

function service(): EngineService {
  return new EngineService({ storageRoot: async () => memoryOpfs().root, demoBaseUrl: `${demoServer.url}/demo-models/`, defaults: { hubUrl: 'http://127.0.0.1:9' } });
}

const INPUTS = ['alloy-demo-math', 'alloy-demo-code'];
const bindings = INPUTS.map((name) => ({ key: name, source: { kind: 'demo' as const, name } }));
const linear = (weight: number, normalize: boolean) =>
  ['merge_method: linear', 'models:', ...INPUTS.flatMap((m) => [`  - model: ${m}`, '    parameters:', `      weight: ${weight}`]), 'parameters:', `  normalize: ${normalize}`, 'dtype: float32', ''].join('\n');

async function mergeInto(engine: EngineService, yaml: string, outputName: string): Promise<void> {
  await engine.merge({ yaml, models: bindings, outputName, backend: 'cpu', randomSeed: 1 }, () => undefined);
}

/** Copies a worker output to disk, next to the demo models, for the CLI. */
async function copyOut(engine: EngineService, name: string): Promise<void> {
  const dir = join(demoDir, 'demo-models', name);
  mkdirSync(dir, { recursive: true });
  const [output] = (await engine.listOutputs()).filter((o) => o.outputName === name);
  for (const f of output.files) writeFileSync(join(dir, f.name), Buffer.from(await (await engine.outputFile(name, f.name)).arrayBuffer()));
}

describe('EngineService.evaluate', () => {
  it('scores the inputs and the output with the numbers alloy eval gives for the same files', async () => {
    const engine = service();
    await mergeInto(engine, linear(0.5, true), 'fine');
    const progress: EvaluateProgress[] = [];
    const result = await engine.evaluate({ models: bindings, output: { outputName: 'fine' }, text: USER_TEXT }, (p) => progress.push(p));

    expect(result.texts.map((t) => t.label)).toEqual(['bundled text', 'your text']);
    expect(result.models.map((m) => [m.name, m.role])).toEqual([
      ['alloy-demo-math', 'input'],
      ['alloy-demo-code', 'input'],
      ['fine', 'output'],
    ]);
    expect(progress[0]).toEqual({ phase: 'opening', done: 0, total: 6 });
    expect(progress.filter((p) => p.phase === 'scoring').map((p) => p.done)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(progress.at(-1)).toEqual({ phase: 'done', done: 6, total: 6 });
    // The average of two fine-tunes of one base is no worse than them: nothing is flagged.
    expect(result.flags).toEqual([]);

    await copyOut(engine, 'fine');
    writeFileSync(join(demoDir, 'user.txt'), USER_TEXT);
    const cli = await runAlloy(['eval', ...INPUTS, 'fine', '--text', '../user.txt', '--json'], join(demoDir, 'demo-models'));
    expect(cli.code).toBe(0);
    const json = JSON.parse(cli.stdout) as { texts: { models: { model: string; perplexity: number; tokens: number }[] }[] };
    json.texts.forEach((text, c) =>
      text.models.forEach((m, r) => {
        const app = result.models[r].scores[c];
        expect(app.tokens).toBe(m.tokens);
        // Same code on the same bytes: equal to the last bits; 1e-12 relative leaves room for nothing else.
        expect(Math.abs(app.perplexity - m.perplexity) / m.perplexity).toBeLessThan(1e-12);
      }),
    );
    // Random tiny models: perplexity near the vocabulary size (512), not 1 and not 1e6.
    expect(result.models[0].scores[0].perplexity).toBeGreaterThan(100);
    expect(result.models[0].scores[0].perplexity).toBeLessThan(5000);
  }, 120_000);

  it('flags a broken output with the explanation and what to try', async () => {
    const engine = service();
    // Weights summed ×12 without normalising: logits blow up, the model predicts nothing well.
    await mergeInto(engine, linear(6, false), 'broken');
    const result = await engine.evaluate({ models: bindings, output: { outputName: 'broken' } }, () => undefined);
    const output = result.models.find((m) => m.role === 'output')!;
    const bestInput = Math.min(...result.models.filter((m) => m.role === 'input').map((m) => m.scores[0].perplexity));
    expect(output.scores[0].perplexity).toBeGreaterThan(1.5 * bestInput);
    expect(result.flags).toHaveLength(1);
    expect(result.flags[0]).toMatchObject({ text: 0, model: 'broken' });
    expect(result.flags[0].ratio).toBeCloseTo(output.scores[0].perplexity / bestInput, 6);
    expect(result.flags[0].explanation).toMatch(/^broken is .* more perplexed by this text than alloy-demo-(math|code) .*Try another merge method, a lower density/);
  }, 120_000);

  it('says what is wrong: a missing output, a text too short, a cancel', async () => {
    const engine = service();
    await expect(engine.evaluate({ models: bindings, output: { outputName: 'nope' } }, () => undefined)).rejects.toThrow(
      /^there is no output named "nope" in this browser's storage/,
    );
    await expect(engine.evaluate({ models: bindings, text: 'a' }, () => undefined)).rejects.toThrow(/^Your text gives only 1 token\(s\) with the tokenizer of alloy-demo-math: paste a longer text\.$/);
    let refused: unknown;
    const running = engine.evaluate({ models: bindings }, () => {
      // While it reads, the cache cannot be emptied under it.
      void engine.deleteCached('org/x').catch((error: unknown) => (refused ??= error));
      void engine.cancel();
    });
    await expect(running).rejects.toThrow('The evaluation was cancelled.');
    expect(String(refused)).toBe('Error: cannot delete cached models while an evaluation reads them: cancel it first');
    // The engine is free again afterwards.
    const again = await engine.evaluate({ models: bindings.slice(0, 1), text: USER_TEXT }, () => undefined);
    expect(again.models[0].scores).toHaveLength(2);
  }, 120_000);
});
