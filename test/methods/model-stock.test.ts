import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { modelStockRef } from '../helpers/method-references';
import { perturbed, randomArray } from '../helpers/random-arrays';
import { runMethod } from '../helpers/run-method';

describe('model_stock (docs/methods.md §12)', () => {
  it('interpolates by t = 2c/(1+c) toward the average (docs/methods.md §20)', async () => {
    const { values } = await runMethod('model_stock', [{ values: [0, 0] }, { values: [1, 0] }, { values: [1, 1] }], {
      baseIndex: 0,
      params: { filter_wise: 0 },
    });
    expectClose(values, [0.828427, 0.414214]);
  });

  it('gives the base for orthogonal or zero task vectors', async () => {
    const orthogonal = await runMethod('model_stock', [{ values: [2, 1] }, { values: [1, 1] }, { values: [1, 2] }], {
      baseIndex: 1,
      params: { filter_wise: 0 },
    });
    expectClose(orthogonal.values, [1, 1]);
    const zero = await runMethod('model_stock', [{ values: [1, 2] }, { values: [1, 2] }, { values: [1, 2] }], {
      baseIndex: 0,
      params: { filter_wise: 0 },
    });
    expectClose(zero.values, [1, 2], 0, 0);
  });

  it('gives the plain average for identical task vectors', async () => {
    const { values } = await runMethod('model_stock', [{ values: [1, 1] }, { values: [2, 3] }, { values: [2, 3] }], {
      baseIndex: 0,
      params: { filter_wise: 0 },
    });
    expectClose(values, [2, 3]);
  });

  it('matches the reference over the whole tensor and per row (filter_wise), for three fine-tunes', async () => {
    const shape = [12, 10];
    const base = randomArray(120, 1, 0.02);
    const fts = [2, 3, 4].map((seed) => perturbed(base, seed, 0.01));
    // make one row's task vectors agree strongly, so rows differ
    for (const ft of fts) for (let j = 0; j < 10; j++) ft[j] = base[j] + 0.01 * (j + 1);
    for (const filterWise of [false, true]) {
      const { values } = await runMethod('model_stock', [{ values: fts[0] }, { values: base }, { values: fts[1] }, { values: fts[2] }], {
        baseIndex: 1,
        shape,
        params: { filter_wise: filterWise ? 1 : 0 },
      });
      expectClose(values, modelStockRef(base, fts, shape, filterWise), 1e-5, 1e-7);
    }
  });

  it('returns the base when only the base has the tensor; refuses the base plus one', async () => {
    const baseOnly = await runMethod('model_stock', [{ values: [4, 5] }], { baseIndex: 0, params: { filter_wise: 0 } });
    expectClose(baseOnly.values, [4, 5], 0, 0);
    await expect(
      runMethod('model_stock', [{ values: [0, 0] }, { values: [1, 0] }], { baseIndex: 0, params: { filter_wise: 0 } }),
    ).rejects.toThrow(/at least two others/);
  });

  it('refuses exactly opposite task vectors (infinite t; mergekit writes inf/NaN)', async () => {
    await expect(
      runMethod('model_stock', [{ values: [0, 0] }, { values: [1, 2] }, { values: [-1, -2] }], { baseIndex: 0, params: { filter_wise: 0 } }),
    ).rejects.toThrow(/opposite directions/);
  });

  it('cuts mismatched embeddings to the common top-left block (docs/methods.md §1)', async () => {
    const base = randomArray(4 * 4, 1);
    const a = perturbed(randomArray(5 * 3, 2), 3, 0.1);
    const b = randomArray(4 * 3, 4);
    const cut = (x: Float32Array, cols: number): Float32Array => Float32Array.from({ length: 12 }, (_, i) => x[Math.floor(i / 3) * cols + (i % 3)]);
    const { values } = await runMethod('model_stock', [{ values: base, shape: [4, 4] }, { values: a, shape: [5, 3] }, { values: b, shape: [4, 3] }], {
      baseIndex: 0,
      shape: [4, 3],
      isEmbed: true,
      params: { filter_wise: 0 },
      name: 'model.embed_tokens.weight',
    });
    expectClose(values, modelStockRef(cut(base, 4), [cut(a, 3), b], [4, 3]), 1e-5, 1e-6);
  });
});
