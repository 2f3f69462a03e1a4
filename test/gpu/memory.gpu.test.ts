import { describe, expect, it } from 'vitest';
import { findMethod } from '../../src/methods';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod, type ArrayInput } from '../helpers/run-method';
import { disposeAll, gpuBackend, within } from './helpers';

/**
 * GPU memory stays within the engine's budget whatever the tensor size: a 1.5M-element tensor
 * merged with a few-MiB budget never has more GPU buffers allocated than the budget.
 */

const SHAPE = [1536, 1024];
const N = SHAPE[0] * SHAPE[1];
const BASE = randomArray(N, 1, 0.02);
const MODELS = [2, 3, 4].map((seed) => perturbed(BASE, seed, 0.005));

const CASES: { method: string; params?: Record<string, number>; model?: Record<string, number> }[] = [
  { method: 'linear' },
  { method: 'task_arithmetic' },
  { method: 'ties', params: { normalize: 1 }, model: { density: 0.4 } },
  { method: 'dare_ties', model: { density: 0.5 } },
  { method: 'della', model: { density: 0.5, epsilon: 0.1 } },
  { method: 'breadcrumbs_ties', model: { density: 0.5, gamma: 0.05 } },
  { method: 'multislerp' },
  { method: 'model_stock' },
  { method: 'sce', params: { select_topk: 0.5 } },
];

describe('GPU memory high-water mark ≤ the budget', () => {
  for (const budget of [4 << 20, 16 << 20]) {
    for (const c of CASES) {
      it(`${c.method}, ${budget >> 20} MiB budget, ${N} elements × 4 bf16 inputs (${(N * 8) >> 20} MiB)`, async () => {
        const method = findMethod(c.method)!;
        const inputs: ArrayInput[] = [BASE, ...MODELS].map((values, k) => ({
          values,
          dtype: 'BF16',
          params: { weight: [0.25, 0.3, 0.2, 0.25][k], ...(k > 0 || method.base === 'member' ? c.model : {}) },
        }));
        const gpu = await gpuBackend({ budgetBytes: budget });
        try {
          await within(
            runMethod(c.method, inputs, {
              backend: gpu,
              baseIndex: method.base === 'member' ? -1 : 0,
              shape: SHAPE,
              dtype: 'BF16',
              params: c.params ?? {},
              budgetBytes: budget,
            }),
            300_000,
            c.method,
          );
          expect(gpu.memory.highWaterBytes).toBeGreaterThan(0);
          expect(gpu.memory.highWaterBytes, `high-water ${(gpu.memory.highWaterBytes / 2 ** 20).toFixed(2)} MiB`).toBeLessThanOrEqual(budget);
        } finally {
          await disposeAll([gpu]);
        }
      });
    }
  }
});
