import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { multislerpRef } from '../helpers/method-references';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

const w = (weight: number): { weight: number } => ({ weight });

describe('multislerp (docs/methods.md §9)', () => {
  it('is the weighted unit mean direction times the weighted norm (docs/methods.md §20)', async () => {
    const { values } = await runMethod('multislerp', [{ values: [1, 0], params: w(0.75) }, { values: [0, 1], params: w(0.25) }], {
      params: { normalize_weights: 1, eps: 1e-8 },
    });
    expectClose(values, [0.948683, 0.316228]);
  });

  it('matches the literal steps (tangent included) on random task vectors, with and without normalize_weights', async () => {
    const base = randomArray(300, 1, 0.02);
    const xs = [2, 3, 4].map((seed) => perturbed(base, seed, 0.005));
    const weights = [0.5, 0.3, 0.4];
    for (const normalize of [true, false]) {
      const { values } = await runMethod(
        'multislerp',
        [{ values: xs[0], params: w(weights[0]) }, { values: base }, { values: xs[1], params: w(weights[1]) }, { values: xs[2], params: w(weights[2]) }],
        { baseIndex: 1, params: { normalize_weights: normalize ? 1 : 0, eps: 1e-8 } },
      );
      expectClose(values, multislerpRef(xs, base, weights, { normalize }), 1e-5, 1e-7);
    }
    // A large eps shows in both the unit vectors and cos(τ).
    const { values } = await runMethod('multislerp', xs.map((x, i) => ({ values: x, params: w(weights[i]) })), {
      params: { normalize_weights: 1, eps: 0.05 },
    });
    expectClose(values, multislerpRef(xs, null, weights, { eps: 0.05 }), 1e-5, 1e-7);
  });

  it('returns a lone model unchanged even with a base, and the base when only it has the tensor', async () => {
    const one = await runMethod('multislerp', [{ values: [5, 5] }, { values: [1, 2], params: w(0.3) }], {
      baseIndex: 0,
      params: { normalize_weights: 1, eps: 1e-8 },
    });
    expectClose(one.values, [1, 2], 0, 0);
    const baseOnly = await runMethod('multislerp', [{ values: [5, 6] }], { baseIndex: 0, params: { normalize_weights: 1, eps: 1e-8 } });
    expectClose(baseOnly.values, [5, 6], 0, 0);
  });

  it('falls back to the weighted sum for an antipodal pair, and refuses antipodal sets of three', async () => {
    // task vectors [2, 0] and [-1, 0] with equal weights: the unit mean is 0
    const pair = await runMethod('multislerp', [{ values: [1, 1] }, { values: [3, 1], params: w(1) }, { values: [0, 1], params: w(1) }], {
      baseIndex: 0,
      params: { normalize_weights: 1, eps: 1e-8 },
    });
    expectClose(pair.values, [1.5, 1]);
    await expect(
      runMethod('multislerp', [{ values: [1, 0], params: w(1) }, { values: [-1, 0], params: w(2) }, { values: [2, 0], params: w(1) }], {
        params: { normalize_weights: 1, eps: 1e-8 },
      }),
    ).rejects.toThrow(/cancel out/);
  });

  it('returns the base when every task vector is zero (mergekit raises for three or more models)', async () => {
    const base = [0.5, -1, 2];
    const { values } = await runMethod('multislerp', [{ values: base }, ...[1, 2, 3].map((v) => ({ values: base, params: w(v) }))], {
      baseIndex: 0,
      params: { normalize_weights: 1, eps: 1e-8 },
    });
    expectClose(values, base, 0, 0);
  });

  it('handles a zero task vector among others', async () => {
    const base = randomArray(50, 9);
    const xs = [base, perturbed(base, 10, 0.1), perturbed(base, 11, 0.1)];
    const { values } = await runMethod('multislerp', [{ values: base }, ...xs.map((x) => ({ values: x, params: w(1) }))], {
      baseIndex: 0,
      params: { normalize_weights: 1, eps: 1e-8 },
    });
    expectClose(values, multislerpRef(xs, base, [1, 1, 1]), 1e-5, 1e-6);
  });

  it('refuses weights that sum to zero when normalizing', async () => {
    await expect(
      runMethod('multislerp', [{ values: [1, 0], params: w(1) }, { values: [0, 1], params: w(-1) }], { params: { normalize_weights: 1, eps: 1e-8 } }),
    ).rejects.toThrow(/sum to 0/);
  });
});
