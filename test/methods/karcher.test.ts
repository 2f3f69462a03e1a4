import { describe, expect, it } from 'vitest';
import { karcherCoefficients } from '../../src/methods/karcher';
import { expectClose } from '../helpers/expect-close';
import { karcherRef } from '../helpers/method-references';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

const params = { max_iter: 10, tol: 1e-5 };

describe('karcher (docs/methods.md §10)', () => {
  it('averages directions on the sphere and scales by the mean norm (docs/methods.md §20)', async () => {
    const { values } = await runMethod('karcher', [{ values: [2, 0] }, { values: [0, 1] }], { params });
    expectClose(values, [1.06066, 1.06066]);
  });

  it('matches the literal iteration on whole vectors (Gram-matrix iteration, one apply pass)', async () => {
    const base = randomArray(400, 1, 0.02);
    const cases = [
      [base, perturbed(base, 2, 0.01), perturbed(base, 3, 0.01)],
      [randomArray(400, 4), randomArray(400, 5, 2), randomArray(400, 6, 0.5), randomArray(400, 7)],
      [randomArray(400, 8), randomArray(400, 9, 3)],
    ];
    for (const xs of cases) {
      for (const p of [params, { max_iter: 1, tol: 1e-5 }, { max_iter: 50, tol: 1e-9 }]) {
        const { values } = await runMethod('karcher', xs.map((x) => ({ values: x })), { params: p });
        expectClose(values, karcherRef(xs, p.max_iter, p.tol), 2e-5, 1e-6);
      }
    }
  });

  it('leaves zero (and tiny) tensors out of the iteration but counts them in the mean norm', async () => {
    const xs = [[3, 0, 0], [0, 0, 0], [0, 4, 0], [1e-7, 0, 0]];
    const { values } = await runMethod('karcher', xs.map((x) => ({ values: x })), { params });
    expectClose(values, karcherRef(xs, 10, 1e-5), 1e-5, 1e-7);
    const zeros = await runMethod('karcher', [{ values: [0, 0] }, { values: [0, 0] }], { params });
    expectClose(zeros.values, [0, 0], 0, 0);
  });

  it('handles parallel and antipodal inputs like the literal iteration', async () => {
    for (const xs of [[[1, 2], [2, 4]], [[1, 0], [-1, 0]], [[1, 0], [-1, 0], [0, 1]]]) {
      const { values } = await runMethod('karcher', xs.map((x) => ({ values: x })), { params });
      expectClose(values, karcherRef(xs, 10, 1e-5), 1e-5, 1e-6);
    }
  });

  it('returns a lone tensor unchanged and averages the base like any other model', async () => {
    const lone = await runMethod('karcher', [{ values: [3, -4] }], { params });
    expectClose(lone.values, [3, -4], 0, 0);
    const xs = [randomArray(20, 1), randomArray(20, 2), randomArray(20, 3)];
    const plain = await runMethod('karcher', xs.map((x) => ({ values: x })), { params });
    const withBase = await runMethod('karcher', xs.map((x) => ({ values: x })), { params, baseIndex: 1 });
    expect(Array.from(withBase.values)).toEqual(Array.from(plain.values));
  });

  it('rectifies mismatched embeddings like the other methods (mergekit skips it and fails)', async () => {
    const a = randomArray(5 * 4, 1);
    const b = randomArray(4 * 3, 2);
    const cut = Float32Array.from({ length: 12 }, (_, i) => a[Math.floor(i / 3) * 4 + (i % 3)]);
    const { values } = await runMethod('karcher', [{ values: a, shape: [5, 4] }, { values: b, shape: [4, 3] }], {
      shape: [4, 3],
      isEmbed: true,
      params,
      name: 'lm_head.weight',
    });
    expectClose(values, karcherRef([cut, b]), 1e-5, 1e-6);
  });

  it('coefficients reproduce the docs/methods.md §20 example from a Gram matrix alone', () => {
    const k = karcherCoefficients([[4, 0], [0, 1]], 10, 1e-5);
    expectClose(k, [1.06066 / 2, 1.06066]);
  });
});
