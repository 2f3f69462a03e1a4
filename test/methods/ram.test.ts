import { describe, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { ramRef } from '../helpers/method-references';
import { randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

describe('ram and ramplus_tl (docs/methods.md §15)', () => {
  const base = { values: [0, 0, 0] };
  const tv1 = { values: [0, 1, 2] };
  const tv2 = { values: [0, 0, 4] };
  it('ram: sums unique contributions and averages shared ones (docs/methods.md §20)', async () => {
    const { values } = await runMethod('ram', [base, tv1, tv2], { baseIndex: 0, params: { epsilon: 1e-5 } });
    expectClose(values, [0, 1, 3]);
  });
  it('ramplus_tl: boosts unique contributions by λ = 1 + r·clamp(shared/unique, 0, alpha) (docs/methods.md §20)', async () => {
    const { values } = await runMethod('ramplus_tl', [base, tv1, tv2], { baseIndex: 0, params: { r: 0.1, alpha: 0.2, epsilon: 1e-5 } });
    expectClose(values, [0, 1.02, 3]);
  });

  it('match the reference on sparse random task vectors with an activity threshold', async () => {
    const n = 2000;
    const b = randomArray(n, 1, 0.02);
    const xs = [2, 3, 4].map((seed) => {
      const d = randomArray(n, seed, 0.01);
      const mask = randomArray(n, seed + 10);
      return b.map((v, i) => (mask[i] > 0.3 ? v + d[i] : v));
    });
    const inputs = [{ values: xs[0] }, { values: b }, { values: xs[1] }, { values: xs[2] }];
    const ram = await runMethod('ram', inputs, { baseIndex: 1, params: { epsilon: 0.004 } });
    expectClose(ram.values, ramRef(b, xs, { epsilon: 0.004 }), 1e-6, 1e-8);
    for (const [r, alpha] of [[0.1, 0.2], [0.5, 3]]) {
      const plus = await runMethod('ramplus_tl', inputs, { baseIndex: 1, params: { r, alpha, epsilon: 0.004 } });
      expectClose(plus.values, ramRef(b, xs, { epsilon: 0.004, plus: { r, alpha } }), 1e-6, 1e-8);
    }
  });

  it('return the base when only the base has the tensor', async () => {
    for (const method of ['ram', 'ramplus_tl']) {
      const { values } = await runMethod(method, [{ values: [1, 2] }], { baseIndex: 0, params: { r: 0.1, alpha: 0.2, epsilon: 1e-5 } });
      expectClose(values, [1, 2], 0, 0);
    }
  });
});
