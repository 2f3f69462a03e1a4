import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAlloy, tempDir } from '../cli/run-alloy';
import {
  expectCaseOutput,
  makePrecisionModels,
  PRECISION_CASES,
  writeCaseConfig,
  type PrecisionModels,
} from '../tokenizer/embedding-precision';
import { within } from './helpers';

/**
 * Issue #16 on WebGPU: chunks of aligned embeddings that hold substituted or padding rows reach
 * the GPU in f32 next to the other inputs' bf16/f16 bytes; every row equals mergekit's f32 rule bit
 * for bit, as on the CPU (test/tokenizer/embedding-precision.test.ts).
 */

let dir: string;
let models: PrecisionModels;

beforeAll(async () => {
  dir = tempDir('alloy-gpu-embed-precision-');
  models = await makePrecisionModels(dir);
});

describe('aligned embeddings on --backend webgpu', () => {
  for (const c of PRECISION_CASES) {
    it(`${c.name}: every row as mergekit's f32 rule`, async () => {
      for (const dtype of ['float32', 'bfloat16'] as const) {
        const name = writeCaseConfig(dir, models, c, dtype);
        const r = await within(runAlloy(['merge', `${name}.yml`, name, '--backend', 'webgpu', '--memory', '4k'], dir), 300_000, `${name} on WebGPU`);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/webgpu backend on /);
        expectCaseOutput(join(dir, name), models, c, dtype);
      }
    });
  }
});
