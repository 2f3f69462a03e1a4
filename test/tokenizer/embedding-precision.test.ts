/**
 * Issue #16 on the CPU backend: substituted and padding embedding rows are built in f32, as
 * mergekit builds them (see ./embedding-precision.ts for the models and the expected rows).
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAlloy, tempDir } from '../cli/run-alloy';
import { expectCaseOutput, makePrecisionModels, PRECISION_CASES, writeCaseConfig, type PrecisionModels } from './embedding-precision';

describe('substituted and padding embedding rows are built in f32 (issue #16)', () => {
  let dir: string;
  let models: PrecisionModels;

  beforeAll(async () => {
    dir = tempDir('alloy-embed-precision-');
    models = await makePrecisionModels(dir);
  });

  for (const c of PRECISION_CASES) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      it(`${c.name}, dtype: ${dtype}`, async () => {
        const name = writeCaseConfig(dir, models, c, dtype);
        const r = await runAlloy(['merge', `${name}.yml`, name, '--quiet', '--backend', 'cpu'], dir);
        expect(r.code, r.stderr).toBe(0);
        expectCaseOutput(join(dir, name), models, c, dtype);
      });
    }
  }

  it('a small memory budget (rows assembled in many chunks) gives the same rows', async () => {
    const c = PRECISION_CASES[3];
    const name = writeCaseConfig(dir, models, c, 'float32');
    const r = await runAlloy(['merge', `${name}.yml`, `${name}-small`, '--quiet', '--backend', 'cpu', '--memory', '2k'], dir);
    expect(r.code, r.stderr).toBe(0);
    expectCaseOutput(join(dir, `${name}-small`), models, c, 'float32');
  });
});
