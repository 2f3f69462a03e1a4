import { describe, expect, it } from 'vitest';
import { slerpCoefficients } from '../../src/methods';
import { expectClose } from '../helpers/expect-close';
import { runMethod } from '../helpers/run-method';

// Worked values of docs/methods.md §20.
describe('linear', () => {
  const a = [1, 2, 3];
  const b = [3, 2, 1];
  it('normalizes by the weight sum', async () => {
    const { values } = await runMethod('linear', [
      { values: a, params: { weight: 1 } },
      { values: b, params: { weight: 0.5 } },
    ], { params: { normalize: 1 } });
    expectClose(values, [1.666667, 2, 2.333333]);
  });
  it('sums without normalize', async () => {
    const { values } = await runMethod('linear', [
      { values: a, params: { weight: 1 } },
      { values: b, params: { weight: 0.5 } },
    ], { params: { normalize: 0 } });
    expectClose(values, [2.5, 3, 3.5]);
  });
  it('refuses weights that sum to zero when normalizing (mergekit writes NaN)', async () => {
    await expect(
      runMethod('linear', [
        { values: a, params: { weight: 1 } },
        { values: b, params: { weight: -1 } },
      ], { params: { normalize: 1 } }),
    ).rejects.toThrow(/sum to 0.*normalize: false/);
  });
});

describe('slerp', () => {
  const cases: [number[], number[], number, number[]][] = [
    [[1, 0], [0, 1], 0.5, [0.707107, 0.707107]],
    [[1, 0], [0, 1], 0.25, [0.92388, 0.382683]],
    [[2, 0], [0, 1], 0.5, [1.414214, 0.707107]],
    [[0, 0], [0, 2], 0.5, [0, 1.414214]],
    [[1, 1], [2, 2], 0.5, [1.5, 1.5]],
    [[1, 2, 3], [3, -1, 0.5], 0.3, [2.05074, 1.260432, 2.702376]],
  ];
  for (const [v0, v1, t, expected] of cases) {
    it(`slerp(${JSON.stringify(v0)}, ${JSON.stringify(v1)}, t=${t})`, async () => {
      const { values } = await runMethod('slerp', [{ values: v0 }, { values: v1 }], { baseIndex: 0, params: { t } });
      expectClose(values, expected, 1e-5, 1e-6);
    });
  }
  it('uses the base as v0 whatever its position', async () => {
    const { values } = await runMethod('slerp', [{ values: [0, 1] }, { values: [1, 0] }], {
      baseIndex: 1,
      params: { t: 0.25 },
    });
    expectClose(values, [0.92388, 0.382683]);
  });
  it('lerps antiparallel inputs', async () => {
    const { values } = await runMethod('slerp', [{ values: [1, 2] }, { values: [-1, -2] }], {
      baseIndex: 0,
      params: { t: 0.25 },
    });
    expectClose(values, [0.5, 1]);
  });
  it('returns a single input unchanged', async () => {
    const { values } = await runMethod('slerp', [{ values: [3, -4] }], { baseIndex: 0, params: { t: 0.7 } });
    expectClose(values, [3, -4], 0, 0);
  });
  it('coefficients extrapolate outside [0,1] like mergekit (no clamp)', () => {
    const [s0, s1] = slerpCoefficients(2, 1, 1, 0);
    expect(s0).toBeCloseTo(Math.sin(-Math.PI / 2), 12);
    expect(s1).toBeCloseTo(Math.sin(Math.PI), 12);
  });
});

describe('passthrough', () => {
  it('copies bytes exactly, including NaN payloads and subnormals', async () => {
    const input = new Float32Array([1.5, NaN, 1e-45, -0]);
    const { values } = await runMethod('passthrough', [{ values: input }]);
    expect(Array.from(new Uint32Array(values.buffer))).toEqual(Array.from(new Uint32Array(input.buffer)));
  });
  it('scales when scale is set', async () => {
    const { values } = await runMethod('passthrough', [{ values: [1, -2, 4], params: { scale: 0.5 } }]);
    expectClose(values, [0.5, -1, 2], 0, 0);
  });
});

describe('task_arithmetic', () => {
  const inputs = [
    { values: [1, 1] },
    { values: [2, 0], params: { weight: 0.5 } },
    { values: [1, 3], params: { weight: 0.5 } },
  ];
  it('adds weighted task vectors to the base', async () => {
    const { values } = await runMethod('task_arithmetic', inputs, { baseIndex: 0, params: { normalize: 0, lambda: 1 } });
    expectClose(values, [1.5, 1.5]);
  });
  it('scales the merged delta by lambda', async () => {
    const { values } = await runMethod('task_arithmetic', inputs, { baseIndex: 0, params: { normalize: 0, lambda: 2 } });
    expectClose(values, [2, 2]);
  });
  it('returns the base when only the base has the tensor', async () => {
    const { values } = await runMethod('task_arithmetic', [{ values: [7, 8] }], { baseIndex: 0, params: {} });
    expectClose(values, [7, 8], 0, 0);
  });
});

describe('ties', () => {
  const base = { values: [0, 0, 0, 0] };
  const d1 = [1, -2, 3, 0.5];
  const d2 = [-1, -1, 1, -4];
  it('elects signs and averages agreeing deltas (weights 1/1)', async () => {
    const { values } = await runMethod(
      'ties',
      [base, { values: d1, params: { weight: 1, density: 1 } }, { values: d2, params: { weight: 1, density: 1 } }],
      { baseIndex: 0, params: { normalize: 1 } },
    );
    expectClose(values, [1, -1.5, 2, -4]);
  });
  it('elects the sign from the weighted deltas (weights 0.5/1)', async () => {
    const { values } = await runMethod(
      'ties',
      [base, { values: d1, params: { weight: 0.5, density: 1 } }, { values: d2, params: { weight: 1, density: 1 } }],
      { baseIndex: 0, params: { normalize: 1 } },
    );
    expectClose(values, [-1, -1.333333, 1.666667, -4]);
  });
  it('keeps the largest magnitudes at density 0.5', async () => {
    const { values } = await runMethod('ties', [base, { values: d1, params: { weight: 1, density: 0.5 } }], {
      baseIndex: 0,
      params: { normalize: 1 },
    });
    expectClose(values, [0, -2, 3, 0], 0, 0);
  });
  it('rescales the kept deltas to the original L1 norm', async () => {
    const { values } = await runMethod('ties', [base, { values: d1, params: { weight: 1, density: 0.5 } }], {
      baseIndex: 0,
      params: { normalize: 1, rescale: 1 },
    });
    expectClose(values, [0, -2.6, 3.9, 0]);
  });
  it('rejects a density that keeps no element', async () => {
    await expect(
      runMethod('ties', [base, { values: d1, params: { weight: 1, density: 0.2 } }], { baseIndex: 0, params: {} }),
    ).rejects.toThrow(/keeps no element/);
  });
  it('breaks ties at the threshold in index order, the same for every chunk size', async () => {
    const n = 10_000;
    const delta = new Float32Array(n);
    for (let i = 0; i < n; i++) delta[i] = i % 7 === 0 ? 3 : i % 2 ? 1 : -1; // many equal magnitudes
    const inputs = [{ values: new Float32Array(n) }, { values: delta, params: { weight: 1, density: 0.3 } }];
    const whole = await runMethod('ties', inputs, { baseIndex: 0, params: { normalize: 1 } });
    const chunked = await runMethod('ties', inputs, { baseIndex: 0, params: { normalize: 1 }, budgetBytes: 4096 });
    const k = Math.floor(0.3 * n);
    const kept = whole.values.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0);
    expect(kept).toBe(k);
    // every 3 kept; the remaining budget goes to the first ±1 elements in index order
    const threes = Math.ceil(n / 7);
    let seen = 0;
    for (let i = 0; i < n; i++) {
      if (Math.abs(delta[i]) === 1) {
        expect(whole.values[i] !== 0).toBe(seen < k - threes);
        seen++;
      }
    }
    expect(Buffer.from(chunked.bytes).equals(Buffer.from(whole.bytes))).toBe(true);
  });
});
