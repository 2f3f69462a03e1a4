import { describe, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { nearswapRef } from '../helpers/method-references';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

describe('nearswap (docs/methods.md §13)', () => {
  it('takes close values and steps toward far ones (docs/methods.md §20)', async () => {
    const { values } = await runMethod('nearswap', [{ values: [0, 1] }, { values: [0.5, 1.00001] }], { baseIndex: 0, params: { t: 0.1 } });
    expectClose(values, [0.1, 1.00001], 1e-6, 1e-7);
  });

  it('matches the reference elementwise, with the base in either position', async () => {
    const a = randomArray(500, 1, 0.02);
    const b = perturbed(a, 2, 0.001);
    b[0] = a[0]; // |a − b| = 0 → floor 1e-6 → w = 1
    for (const t of [0, 1e-4, 5e-4, 1]) {
      const first = await runMethod('nearswap', [{ values: a }, { values: b }], { baseIndex: 0, params: { t } });
      expectClose(first.values, nearswapRef(a, b, t), 1e-6, 1e-9);
      const second = await runMethod('nearswap', [{ values: b }, { values: a }], { baseIndex: 1, params: { t } });
      expectClose(second.values, nearswapRef(a, b, t), 1e-6, 1e-9);
    }
  });

  it('returns the base when the other model lacks the tensor', async () => {
    const { values } = await runMethod('nearswap', [{ values: [3, 4] }], { baseIndex: 0, params: { t: 0.1 } });
    expectClose(values, [3, 4], 0, 0);
  });
});
