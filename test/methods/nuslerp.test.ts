import { describe, expect, it } from 'vitest';
import { expectClose } from '../helpers/expect-close';
import { nuslerpRef } from '../helpers/method-references';
import { runMethod } from '../helpers/run-method';
import { randomArray } from '../helpers/random-arrays';

const flat = { nuslerp_flatten: 1, nuslerp_row_wise: 0 };
const rows = { nuslerp_flatten: 0, nuslerp_row_wise: 0 };
const columns = { nuslerp_flatten: 0, nuslerp_row_wise: 1 };
const w = (weight: number): { weight: number } => ({ weight });

describe('nuslerp (docs/methods.md §8)', () => {
  it('with weights 1/1 and no base equals slerp at t = 0.5 (docs/methods.md §20)', async () => {
    const { values } = await runMethod('nuslerp', [{ values: [1, 0], params: w(1) }, { values: [0, 1], params: w(1) }], { params: flat });
    expectClose(values, [0.707107, 0.707107]);
  });

  it('takes t = w2 / (w1 + w2)', async () => {
    const { values } = await runMethod('nuslerp', [{ values: [1, 0], params: w(3) }, { values: [0, 1], params: w(1) }], { params: flat });
    expectClose(values, [0.92388, 0.382683]);
    const r = await runMethod('nuslerp', [{ values: [1, 2, 3], params: w(0.7) }, { values: [3, -1, 0.5], params: w(0.3) }], { params: flat });
    expectClose(r.values, [2.05074, 1.260432, 2.702376]);
  });

  it('uses t = 0.5 when the weights sum to (almost) zero', async () => {
    const { values } = await runMethod('nuslerp', [{ values: [1, 0], params: w(1) }, { values: [0, 1], params: w(-1 + 1e-7) }], { params: flat });
    expectClose(values, [0.707107, 0.707107]);
  });

  it('interpolates task vectors around a base and adds the base back', async () => {
    const { values } = await runMethod(
      'nuslerp',
      [{ values: [2, 1], params: w(1) }, { values: [1, 1] }, { values: [1, 2], params: w(1) }],
      { baseIndex: 1, params: flat },
    );
    expectClose(values, [1.707107, 1.707107]);
  });

  it('lerps colinear and antiparallel vectors, and slerps from a zero vector', async () => {
    const colinear = await runMethod('nuslerp', [{ values: [1, 1], params: w(1) }, { values: [2, 2], params: w(1) }], { params: flat });
    expectClose(colinear.values, [1.5, 1.5]);
    const antiparallel = await runMethod('nuslerp', [{ values: [1, 2], params: w(3) }, { values: [-1, -2], params: w(1) }], { params: flat });
    expectClose(antiparallel.values, [0.5, 1]);
    const zero = await runMethod('nuslerp', [{ values: [0, 0], params: w(1) }, { values: [0, 2], params: w(1) }], { params: flat });
    expectClose(zero.values, [0, 1.414214]);
    const bothZero = await runMethod('nuslerp', [{ values: [0, 0], params: w(1) }, { values: [0, 0], params: w(1) }], { params: flat });
    expectClose(bothZero.values, [0, 0], 0, 0);
  });

  it('works row by row, or along dimension 0 with nuslerp_row_wise', async () => {
    for (const shape of [[6, 5], [3, 4, 5], [7]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const [a, b, base] = [randomArray(n, 1), randomArray(n, 2), randomArray(n, 3)];
      for (const [params, mode] of [[rows, {}], [columns, { rowWise: true }]] as const) {
        const { values } = await runMethod('nuslerp', [{ values: a, params: w(0.6) }, { values: base }, { values: b, params: w(0.4) }], {
          baseIndex: 1,
          shape,
          params,
        });
        expectClose(values, nuslerpRef(a, b, base, 0.6, 0.4, shape, { flatten: false, ...mode }), 1e-5, 1e-6);
      }
    }
  });

  it('row_wise interpolates each column on its own: a zero column stays zero, others are slerped', async () => {
    // columns: [1,0]→[0,1] (orthogonal), [0,0]→[0,0]
    const { values } = await runMethod('nuslerp', [{ values: [1, 0, 0, 0], params: w(1) }, { values: [0, 0, 1, 0], params: w(1) }], {
      shape: [2, 2],
      params: columns,
    });
    expectClose(values, [0.707107, 0, 0.707107, 0]);
  });

  it('returns a lone tensor unchanged', async () => {
    const { values } = await runMethod('nuslerp', [{ values: [3, -4], params: w(1) }], { params: flat });
    expectClose(values, [3, -4], 0, 0);
  });

  it('refuses anything but two models (plus the base)', async () => {
    const three = [{ values: [1, 0], params: w(1) }, { values: [0, 1], params: w(1) }, { values: [1, 1], params: w(1) }];
    await expect(runMethod('nuslerp', three, { params: flat })).rejects.toThrow(/exactly two models/);
    await expect(
      runMethod('nuslerp', [{ values: [1, 0] }, { values: [0, 1], params: w(1) }], { baseIndex: 0, params: flat }),
    ).rejects.toThrow(/exactly two models plus the base/);
  });

  it('cuts mismatched embeddings to the common top-left block (docs/methods.md §1)', async () => {
    const a = randomArray(5 * 4, 4);
    const b = randomArray(4 * 3, 5);
    const base = randomArray(4 * 4, 6);
    const cut = (x: Float32Array, cols: number): Float32Array =>
      Float32Array.from({ length: 12 }, (_, i) => x[Math.floor(i / 3) * cols + (i % 3)]);
    const { values } = await runMethod(
      'nuslerp',
      [{ values: a, shape: [5, 4], params: w(1) }, { values: b, shape: [4, 3], params: w(2) }, { values: base, shape: [4, 4] }],
      { baseIndex: 2, shape: [4, 3], isEmbed: true, params: flat, name: 'model.embed_tokens.weight' },
    );
    expectClose(values, nuslerpRef(cut(a, 4), b, cut(base, 4), 1, 2, [4, 3]), 1e-5, 1e-6);
  });
});
