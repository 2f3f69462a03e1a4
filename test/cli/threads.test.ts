import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { runAlloy, tempDir, writeConfig } from './run-alloy';

/**
 * `--threads`: the merged files are byte-identical whether one thread or a pool of workers
 * computes them. The MLP matrices (512 × 768) are cut into several chunks large enough to go to
 * the workers (the small tensors run on the main thread), and multi-pass methods use the
 * workers' cross-pass cache.
 */
const CONFIGS: Record<string, string> = {
  linear: 'models:\n  - {model: ./base, parameters: {weight: 0.3}}\n  - {model: ./ft1, parameters: {weight: 0.7}}\nmerge_method: linear\n',
  ties: 'models:\n  - {model: ./ft1, parameters: {weight: 0.6, density: 0.5}}\n  - {model: ./ft2, parameters: {weight: 0.4, density: 0.7}}\nbase_model: ./base\nmerge_method: ties\n',
  dare_ties: 'models:\n  - {model: ./ft1, parameters: {weight: 0.6, density: 0.5}}\n  - {model: ./ft2, parameters: {weight: 0.4, density: 0.7}}\nbase_model: ./base\nmerge_method: dare_ties\n',
  della: 'models:\n  - {model: ./ft1, parameters: {weight: 0.6, density: 0.5, epsilon: 0.1}}\n  - {model: ./ft2, parameters: {weight: 0.4, density: 0.7, epsilon: 0.1}}\nbase_model: ./base\nmerge_method: della\n',
  model_stock: 'models:\n  - model: ./ft1\n  - model: ./ft2\nbase_model: ./base\nmerge_method: model_stock\n',
};

describe('alloy merge --threads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    const dims = { hiddenSize: 512, intermediateSize: 768, numLayers: 1, numHeads: 8, numKvHeads: 8, vocabSize: 64 };
    const base = await makeTinyModel(join(dir, 'base'), { seed: 1, dtype: 'BF16', ...dims });
    await makeFineTune(join(dir, 'ft1'), base, { seed: 2 });
    await makeFineTune(join(dir, 'ft2'), base, { seed: 3 });
  });

  for (const [method, yaml] of Object.entries(CONFIGS)) {
    it(`${method}: --threads 1 and --threads 3 write identical files`, async () => {
      writeConfig(dir, `${method}.yml`, yaml);
      const outputs: Buffer[] = [];
      for (const threads of ['1', '3']) {
        const out = `out-${method}-${threads}`;
        const r = await runAlloy(['merge', `${method}.yml`, out, '--backend', 'cpu', '--threads', threads, '--memory', '40M', '--random-seed', '5'], dir);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(threads === '1' ? /cpu backend;/ : /cpu backend on 3 threads/);
        outputs.push(readFileSync(join(dir, out, 'model.safetensors')));
      }
      expect(outputs[0].length).toBeGreaterThan(1_000_000);
      expect(outputs[1].equals(outputs[0])).toBe(true);
    });
  }

  it('rejects a thread count that is not a positive whole number', async () => {
    writeConfig(dir, 'l.yml', CONFIGS.linear);
    const r = await runAlloy(['merge', 'l.yml', 'out-bad', '--threads', '0'], dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--threads must be a whole number from 1 to 1024, not '0'");
  });
});
