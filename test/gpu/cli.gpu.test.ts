import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeFineTune, makeTinyModel } from '../fixtures/models';
import { readModelDir } from '../fixtures/safetensors';
import { runAlloy, tempDir, writeConfig, type CliResult } from '../cli/run-alloy';
import { ulp } from '../helpers/ulp';
import { within } from './helpers';

/**
 * `alloy merge --backend webgpu` end to end on tiny generated models: the output has the same
 * files, tensors, dtypes and shapes as `--backend cpu`, and every value within 1 ulp of the
 * output dtype (bytes identical for DARE, whose masks are random).
 */

const CONFIGS: Record<string, string[]> = {
  ties: [
    'models:',
    '  - model: ./base',
    '  - {model: ./ft1, parameters: {density: 0.6, weight: 0.7}}',
    '  - {model: ./ft2, parameters: {density: 0.4, weight: 0.5}}',
    '  - {model: ./ft3, parameters: {density: 0.5, weight: 0.3}}',
    'merge_method: ties',
    'base_model: ./base',
    'parameters: {normalize: true}',
    'dtype: bfloat16',
  ],
  dare_linear: [
    'models:',
    '  - {model: ./ft1, parameters: {density: 0.5, weight: 0.6}}',
    '  - {model: ./ft2, parameters: {density: 0.7, weight: 0.4}}',
    'merge_method: dare_linear',
    'base_model: ./base',
    'dtype: float16',
  ],
  slerp: [
    'models:',
    '  - model: ./base',
    '  - model: ./ft1',
    'merge_method: slerp',
    'base_model: ./base',
    'parameters: {t: [0, 0.3, 1]}',
    'out_dtype: float32',
  ],
};

const FLAGS: Record<string, string[]> = {
  ties: ['--memory', '64k'],
  dare_linear: ['--random-seed', '7', '--out-shard-size', '20k'],
  slerp: [],
};

let dir: string;
const cpuRuns = new Map<string, CliResult>();

beforeAll(async () => {
  dir = tempDir('alloy-gpu-cli-');
  const base = await makeTinyModel(join(dir, 'base'), { arch: 'llama', dtype: 'BF16', seed: 21, numLayers: 3 });
  for (const [k, seed] of [[1, 22], [2, 23], [3, 24]]) await makeFineTune(join(dir, `ft${k}`), base, { seed, deltaScale: 0.02 });
  // The CPU merges first: no GPU device exists yet (see helpers.ts).
  for (const [name, lines] of Object.entries(CONFIGS)) {
    writeConfig(dir, `${name}.yml`, lines.join('\n'));
    cpuRuns.set(name, await runAlloy(['merge', `${name}.yml`, `cpu-${name}`, '--backend', 'cpu', '--quiet', ...FLAGS[name]], dir));
  }
});

describe('alloy merge --backend webgpu', () => {
  for (const name of Object.keys(CONFIGS)) {
    it(`${name}: the same model as --backend cpu, within 1 ulp`, async () => {
      const cpu = cpuRuns.get(name)!;
      expect(cpu.code, cpu.stderr).toBe(0);
      const gpu = await within(
        runAlloy(['merge', `${name}.yml`, `gpu-${name}`, '--backend', 'webgpu', ...FLAGS[name]], dir),
        300_000,
        `${name} merge on WebGPU`,
      );
      expect(gpu.code, gpu.stderr).toBe(0);
      expect(gpu.stderr).toMatch(/webgpu backend on /);
      const a = readModelDir(join(dir, `cpu-${name}`));
      const b = readModelDir(join(dir, `gpu-${name}`));
      expect(b.files).toEqual(a.files);
      expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
      for (const [tensor, expected] of a.tensors) {
        const got = b.tensors.get(tensor)!;
        expect(got.dtype, tensor).toBe(expected.dtype);
        expect(got.shape, tensor).toEqual(expected.shape);
        const dtype = expected.dtype as 'F32' | 'F16' | 'BF16';
        if (name === 'dare_linear') expect(Buffer.from(got.raw).equals(Buffer.from(expected.raw)), tensor).toBe(true);
        let worst = 0;
        for (let i = 0; i < expected.values.length; i++) {
          worst = Math.max(worst, Math.abs(got.values[i] - expected.values[i]) / ulp(expected.values[i], dtype));
        }
        expect(worst, tensor).toBeLessThanOrEqual(1);
      }
      for (const file of ['config.json', 'mergekit_config.yml']) {
        expect(readFileSync(join(dir, `gpu-${name}`, file), 'utf8'), file).toBe(readFileSync(join(dir, `cpu-${name}`, file), 'utf8'));
      }
    });
  }
});
