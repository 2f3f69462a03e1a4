/**
 * Alloy against numbers mergekit itself computed: test/fixtures/mergekit/generate.py ran
 * mergekit's own merge code on the tiny models in test/fixtures/mergekit/models for every
 * config in test/fixtures/mergekit/configs and committed the outputs in golden/. Here
 * `alloy merge` runs the same configs on the same models and must agree.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelDir, readSafetensorsFile, roundToDtype, type ReadTensor } from '../fixtures/safetensors';
import { METHODS } from '../../src/methods';
import { runAlloy, tempDir } from '../cli/run-alloy';
import { ulp } from '../helpers/ulp';

const FIXTURES = join(__dirname, '..', 'fixtures', 'mergekit');
const SEED = '7';

interface GoldenCase {
  readonly name: string;
  readonly method: string;
  readonly kind: 'exact' | 'dare' | 'della';
  readonly dtypes: string[];
  readonly tensors: number;
}
interface Manifest {
  readonly mergekit_commit: string;
  readonly torch: string;
  readonly cases: GoldenCase[];
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'golden', 'manifest.json'), 'utf8')) as Manifest;
const scratch = tempDir('alloy-golden-');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let runs = 0;
async function alloyMerge(name: string): Promise<Map<string, ReadTensor>> {
  const out = join(scratch, `${name}-${runs++}`);
  const r = await runAlloy(['merge', join('configs', `${name}.yml`), out, '--random-seed', SEED], FIXTURES);
  expect(r.stderr, `alloy merge ${name}`).not.toMatch(/alloy:/);
  expect(r.code, `alloy merge ${name}: ${r.stderr}`).toBe(0);
  return readModelDir(out).tensors;
}

function golden(name: string): Map<string, ReadTensor> {
  return readSafetensorsFile(join(FIXTURES, 'golden', `${name}.safetensors`));
}

function model(name: string): Map<string, ReadTensor> {
  return readModelDir(join(FIXTURES, 'models', name)).tensors;
}

// ---------------------------------------------------------------------------------------------
// Units in the last place, counted on the float lattice of the stored dtype.

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);

/** Position of x among the f32 values in order (±0 both at 0). */
function lattice(x: number): number {
  f32[0] = x;
  const b = i32[0];
  return b < 0 ? -(b & 0x7fffffff) : b;
}

/**
 * Distance in ulps of the dtype between two values stored in that dtype: steps on the f32
 * lattice (bf16 values are f32 with 16 zero low bits); for f16 (subnormal below 6.1e-5, where an
 * f32 step count would not do) the difference over the ulp of the smaller magnitude.
 */
function ulpDistance(a: number, b: number, dtype: string): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  if (dtype === 'F16') return Math.abs(a - b) / ulp(Math.min(Math.abs(a), Math.abs(b)), 'F16');
  const d = Math.abs(lattice(a) - lattice(b));
  return dtype === 'BF16' ? d / 65536 : d;
}

interface Worst {
  ulps: number;
  tensor: string;
  index: number;
  got: number;
  expected: number;
}

/** Largest |x| per element over every fixture model's tensor of that name (undefined when none has it, e.g. a layer a slice added). */
function inputScale(name: string): Float32Array | undefined {
  let out: Float32Array | undefined;
  for (const m of INPUTS) {
    const t = m.get(name);
    if (!t) continue;
    out ??= new Float32Array(t.values.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.max(out[i], Math.abs(t.values[i]));
  }
  return out;
}

/**
 * Worst difference in ulps of the output dtype. With `scaled`, an ulp is taken at the element's
 * scale — the largest of |expected| and the inputs' |x| — since `base + Σ wᵢ·(xᵢ − base)` rounds at
 * the inputs' magnitude in any implementation: a result far smaller than its inputs (cancellation)
 * carries absolute errors of the inputs' ulp, which are many of its own ulps.
 */
function worstUlps(actual: Map<string, ReadTensor>, expected: Map<string, ReadTensor>, scaled: boolean): Worst {
  const worst: Worst = { ulps: 0, tensor: '', index: -1, got: 0, expected: 0 };
  for (const [name, g] of expected) {
    const a = actual.get(name)!;
    const scale = scaled ? inputScale(name) : undefined;
    for (let i = 0; i < g.values.length; i++) {
      const d = scale
        ? Math.abs(a.values[i] - g.values[i]) / ulp(Math.max(Math.abs(g.values[i]), scale[i]), g.dtype as 'F32' | 'F16' | 'BF16')
        : ulpDistance(a.values[i], g.values[i], g.dtype);
      if (d > worst.ulps) Object.assign(worst, { ulps: d, tensor: name, index: i, got: a.values[i], expected: g.values[i] });
    }
  }
  return worst;
}

function expectSameLayout(actual: Map<string, ReadTensor>, expected: Map<string, ReadTensor>): void {
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, g] of expected) {
    const a = actual.get(name)!;
    expect({ name, dtype: a.dtype, shape: a.shape }).toEqual({ name, dtype: g.dtype, shape: g.shape });
  }
}

const INPUTS = ['base', 'ft1', 'ft2', 'ft3'].flatMap((m) => [model(`${m}-f32`), model(`${m}-bf16`)]);

/**
 * Tolerances. bf16 and f16 outputs of an f32 computation (`dtype: float32`, `out_dtype`): one
 * ulp of the output dtype of the value itself (measured: 0 — every element identical). bf16 computations
 * (`dtype: bfloat16`: mergekit rounds every step to bf16, Alloy computes in f32 and rounds once,
 * docs/compatibility.md "all methods"): one bf16 ulp at the element's scale (see worstUlps).
 * f32 outputs: mergekit rounds each f32 step of its formula (and sums in hash order), so it is
 * itself a few f32 ulps (at the element's scale) from the exact result — for linear_f32 1.71,
 * Alloy 0.90, task_arithmetic_f32 1.58 both. The budgets are the largest differences measured
 * when the goldens were made, so that any change in Alloy's numbers shows.
 */
const F32_BUDGET: Record<string, number> = {
  breadcrumbs: 1, breadcrumbs_ties: 1, ram: 1, ramplus_tl: 1,
  linear: 2, slerp: 2, nuslerp: 2, nearswap: 2, task_arithmetic: 2, ties: 2, sce: 2,
  // Iterative or Gram-matrix methods: more rounded steps (multislerp: the closed form of
  // docs/compatibility.md; karcher: up to 10 iterations; model_stock: cosines, then t).
  karcher: 3, multislerp: 4, model_stock: 4,
};
/**
 * Cases where mergekit rounds every step to bf16: `dtype: bfloat16`, except slerp (which computes
 * in f32 whatever the dtype) and passthrough (a copy).
 */
function roundsEveryStepInBf16(c: GoldenCase): boolean {
  if (c.method === 'slerp' || c.method === 'passthrough') return false;
  return /^dtype: bfloat16$/m.test(readFileSync(join(FIXTURES, 'configs', `${c.name}.yml`), 'utf8'));
}
function budget(c: GoldenCase): number {
  return c.dtypes.includes('F32') ? F32_BUDGET[c.method] : 1;
}

const measured: string[] = [];
afterAll(() => {
  if (process.env.ALLOY_GOLDEN_REPORT) writeFileSync(process.env.ALLOY_GOLDEN_REPORT, measured.join('\n') + '\n');
});

describe(`mergekit golden outputs (mergekit ${manifest.mergekit_commit.slice(0, 12)}, torch ${manifest.torch})`, () => {
  it('cover every merge method', () => {
    const methods = [...new Set(manifest.cases.map((c) => c.method))].sort();
    expect(methods).toEqual([
      'arcee_fusion', 'breadcrumbs', 'breadcrumbs_ties', 'dare_linear', 'dare_ties', 'della', 'della_linear',
      'karcher', 'linear', 'model_stock', 'multislerp', 'nearswap', 'nuslerp', 'passthrough', 'ram',
      'ramplus_tl', 'sce', 'slerp', 'task_arithmetic', 'ties',
    ]);
    // A method added to Alloy needs a golden case too.
    expect(METHODS.map((m) => m.name).sort()).toEqual(methods);
    expect([...Object.keys(RANDOM_CASES), ...Object.keys(MULTI_CASES)].sort()).toEqual(manifest.cases.filter((c) => c.kind !== 'exact' && c.dtypes.includes('F32')).map((c) => c.name).sort());
    expect(new Set(manifest.cases.flatMap((c) => c.dtypes))).toEqual(new Set(['F32', 'F16', 'BF16']));
  });

  for (const c of manifest.cases.filter((k) => k.kind === 'exact' && k.method !== 'arcee_fusion')) {
    it(`${c.name}: every tensor within ${budget(c)} ulp of mergekit's`, async () => {
      const actual = await alloyMerge(c.name);
      const expected = golden(c.name);
      expectSameLayout(actual, expected);
      const raw = worstUlps(actual, expected, false);
      const w = worstUlps(actual, expected, true);
      measured.push(`${c.name}: raw ${raw.ulps} ulp (${raw.tensor}[${raw.index}] ${raw.got} vs ${raw.expected}); scaled ${w.ulps.toFixed(3)} (${w.tensor}[${w.index}] ${w.got} vs ${w.expected})`);
      if (c.dtypes.includes('F32')) {
        expect(w.ulps, `${w.tensor}[${w.index}]: alloy ${w.got}, mergekit ${w.expected}`).toBeLessThanOrEqual(budget(c));
      } else if (roundsEveryStepInBf16(c)) {
        expect(w.ulps, `${w.tensor}[${w.index}]: alloy ${w.got}, mergekit ${w.expected}`).toBeLessThanOrEqual(1);
      } else {
        expect(raw.ulps, `${raw.tensor}[${raw.index}]: alloy ${raw.got}, mergekit ${raw.expected}`).toBeLessThanOrEqual(1);
      }
    }, 60_000);
  }
});

// ---------------------------------------------------------------------------------------------
// arcee_fusion: the importance |x − b|·KL(softmax(x) ‖ softmax(b)) per row is computed in f32 by
// both implementations, and the KL of two nearly equal rows is a small difference of large terms:
// both are ~10⁻³ (relative) off the exact KL on these models (mergekit up to 2.5e-3 here; an f32
// per-op model of Alloy's steps up to 5.3e-3), rounded differently. The mask
// importance ≥ median + 1.5·IQR is discontinuous, so an element whose importance lies within
// that band of the threshold can be kept by one and not the other (docs/compatibility.md).
// Outside the band both must take the exact (f64) decision, and elsewhere agree within 1 ulp.

const FUSION_BAND = 1e-2; // |importance − threshold| / threshold; both sides carry ≤ 5.3e-3

function softmaxRows(x: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[r * cols + j]);
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += out[r * cols + j] = Math.exp(x[r * cols + j] - max);
    for (let j = 0; j < cols; j++) out[r * cols + j] = out[r * cols + j] / sum + 1e-8;
  }
  return out;
}

/** Importances and the median + 1.5·IQR threshold, all in f64. */
function fusionImportance(base: ReadTensor, other: ReadTensor): { importance: Float64Array; threshold: number } {
  const cols = base.shape[base.shape.length - 1];
  const rows = base.values.length / cols;
  const p = softmaxRows(other.values, rows, cols);
  const q = softmaxRows(base.values, rows, cols);
  const importance = new Float64Array(base.values.length);
  for (let r = 0; r < rows; r++) {
    let kl = 0;
    for (let j = 0; j < cols; j++) kl += p[r * cols + j] * Math.log(p[r * cols + j] / q[r * cols + j]);
    for (let j = 0; j < cols; j++) importance[r * cols + j] = Math.abs(other.values[r * cols + j] - base.values[r * cols + j]) * kl;
  }
  const sorted = Float64Array.from(importance).sort();
  const at = (f: number): number => sorted[Math.floor(f * (sorted.length - 1))];
  return { importance, threshold: at(0.5) + 1.5 * (at(0.75) - at(0.25)) };
}

describe('mergekit golden outputs: arcee_fusion', () => {
  it('arcee_fusion_f32: equals mergekit except within f32 rounding of the threshold', async () => {
    const actual = await alloyMerge('arcee_fusion_f32');
    const expected = golden('arcee_fusion_f32');
    expectSameLayout(actual, expected);
    const base = model('base-f32');
    const other = model('ft1-f32');
    let total = 0;
    const flips: string[] = [];
    for (const [name, g] of expected) {
      const a = actual.get(name)!.values;
      const b = base.get(name)!;
      const { importance, threshold } = fusionImportance(b, other.get(name)!);
      for (let i = 0; i < g.values.length; i++) {
        total++;
        const inBand = Math.abs(importance[i] - threshold) <= FUSION_BAND * threshold;
        if (!inBand) {
          // The fused value is b + (x − b)·mask: x itself (ft1 changes every element) or b.
          const exactKeeps = importance[i] >= threshold;
          expect(a[i] !== b.values[i], `${name}[${i}]: Alloy's mask against the f64 importance`).toBe(exactKeeps);
          expect(g.values[i] !== b.values[i], `${name}[${i}]: mergekit's mask against the f64 importance`).toBe(exactKeeps);
        }
        if (ulpDistance(a[i], g.values[i], 'F32') <= 1) continue;
        expect(inBand, `${name}[${i}]: alloy ${a[i]}, mergekit ${g.values[i]}, importance ${importance[i]} vs threshold ${threshold}`).toBe(true);
        flips.push(`${name}[${i}] importance ${importance[i]} vs threshold ${threshold}`);
      }
    }
    measured.push(`arcee_fusion_f32: ${flips.length} of ${total} elements on the other side of mergekit's threshold: ${flips.join('; ')}`);
    expect(flips.length).toBeLessThanOrEqual(total * 0.005);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// DARE and DELLA draw random masks (mergekit: torch's global RNG; Alloy: a counter-based hash,
// docs/compatibility.md), so no element-wise comparison is possible. Each case merges one
// fine-tune that changes every element, so the mask can be read off an output (an element is kept
// iff it differs from the base), and then both mergekit's output and Alloy's must satisfy what
// the method promises:
//   - a dropped element is exactly the base;
//   - a kept one is b + λ·w·δ·s (normalize off), with s = Σ|δ| / Σ|kept δ| the L1 rescale of
//     that tensor's mask (mergekit's `rescale: true`), within the f32 budget of the formula at
//     the element's scale: mergekit rounds the L1 sums (in f32), δ·mask, ·s, ·w, ·λ and + b
//     (measured up to 5.1 ulp), Alloy sums in f64 (docs/compatibility.md) (measured up to 3.3);
//   - the kept count matches Σ p over the elements (binomial, 5 standard deviations), with
//     p = density for DARE and, for DELLA, p = density − ε + 2ε·(rank − 1)/(n − 1) by magnitude
//     rank within each row — checked separately over each row's larger and smaller half, where
//     the two methods differ.
// Parameters as in test/fixtures/mergekit/configs/<case>.yml.

interface RandomCase {
  readonly weight: number;
  readonly lambda: number;
  readonly density: (name: string) => number;
  readonly epsilon: number;
}

/** A two-value gradient: by layer, and its first value for tensors outside the layers. */
const layerDensity = (d0: number, d1: number) => (name: string): number => (name.includes('layers.1.') ? d1 : d0);

const RANDOM_CASES: Record<string, RandomCase> = {
  dare_linear_f32: { weight: 0.7, lambda: 0.9, density: layerDensity(0.5, 0.8), epsilon: 0 },
  dare_ties_f32: { weight: 0.7, lambda: 1, density: () => 0.6, epsilon: 0 },
  della_f32: { weight: 0.8, lambda: 1.2, density: () => 0.5, epsilon: 0.2 },
  della_linear_f32: { weight: 0.8, lambda: 1, density: layerDensity(0.4, 0.6), epsilon: 0.15 },
};

/** Keep probabilities of every element: DARE's density, or DELLA's magnitude-rank ramp per row. */
function keepProbabilities(delta: Float64Array, shape: number[], density: number, epsilon: number): Float64Array {
  const p = new Float64Array(delta.length).fill(density);
  if (epsilon === 0) return p;
  const cols = shape[shape.length - 1];
  for (let r = 0; r < delta.length / cols; r++) {
    const idx = Array.from({ length: cols }, (_, j) => r * cols + j).sort((i, j) => Math.abs(delta[i]) - Math.abs(delta[j]));
    idx.forEach((i, rank) => (p[i] = density - epsilon + (2 * epsilon * rank) / (cols - 1)));
  }
  return p;
}

interface MaskStats {
  kept: number;
  expected: number;
  variance: number;
  /** The same over the larger half of each row's magnitudes. */
  keptTop: number;
  expectedTop: number;
  varianceTop: number;
  worstUlps: number;
  worstAt: string;
}

/** Reads the mask off `out`, checks the kept values' formula, and accumulates the mask statistics. */
function checkRandomMerge(c: RandomCase, out: Map<string, ReadTensor>): MaskStats {
  const base = model('base-f32');
  const ft = model('ft1-f32');
  const st: MaskStats = { kept: 0, expected: 0, variance: 0, keptTop: 0, expectedTop: 0, varianceTop: 0, worstUlps: 0, worstAt: '' };
  for (const [name, o] of out) {
    const b = base.get(name)!.values;
    const x = ft.get(name)!.values;
    const delta = Float64Array.from(x, (v, i) => v - b[i]);
    const kept = Array.from(o.values, (v, i) => v !== b[i]);
    let l1 = 0;
    let l1Kept = 0;
    delta.forEach((d, i) => {
      l1 += Math.abs(d);
      if (kept[i]) l1Kept += Math.abs(d);
    });
    const s = l1 / l1Kept;
    for (let i = 0; i < delta.length; i++) {
      expect(delta[i], `${name}[${i}]: ft1 changes every element`).not.toBe(0);
      if (!kept[i]) continue;
      const want = b[i] + c.lambda * c.weight * delta[i] * s;
      const err = Math.abs(o.values[i] - want) / ulp(Math.max(Math.abs(want), Math.abs(b[i]), Math.abs(x[i])), 'F32');
      if (err > st.worstUlps) Object.assign(st, { worstUlps: err, worstAt: `${name}[${i}]: ${o.values[i]} vs ${want}` });
    }
    const p = keepProbabilities(delta, o.shape, c.density(name), c.epsilon);
    const cols = o.shape[o.shape.length - 1];
    for (let r = 0; r < delta.length / cols; r++) {
      const row = Array.from({ length: cols }, (_, j) => r * cols + j).sort((i, j) => Math.abs(delta[j]) - Math.abs(delta[i]));
      row.forEach((i, k) => {
        st.kept += kept[i] ? 1 : 0;
        st.expected += p[i];
        st.variance += p[i] * (1 - p[i]);
        if (k < cols / 2) {
          st.keptTop += kept[i] ? 1 : 0;
          st.expectedTop += p[i];
          st.varianceTop += p[i] * (1 - p[i]);
        }
      });
    }
  }
  return st;
}

function expectMaskStatistics(st: MaskStats, who: string): void {
  expect(Math.abs(st.kept - st.expected), `${who}: kept ${st.kept}, expected ${st.expected.toFixed(1)}`).toBeLessThanOrEqual(5 * Math.sqrt(st.variance));
  expect(Math.abs(st.keptTop - st.expectedTop), `${who}: kept ${st.keptTop} of the larger halves, expected ${st.expectedTop.toFixed(1)}`)
    .toBeLessThanOrEqual(5 * Math.sqrt(st.varianceTop));
}

// Several fine-tunes without rescale: per element, the output must equal the method's formula
// (below, in f64) for one of the 2ⁿ keep/drop combinations. A model's mask is read off where
// every matching combination agrees on it (not where, e.g., its delta is 0 or the sign consensus
// drops it anyway); that does not depend on its own draw, so the kept rates stay unbiased.

interface MultiCase {
  readonly models: readonly string[];
  readonly weight: (model: number, tensor: string) => number;
  readonly density: readonly number[];
  readonly epsilon: readonly number[];
  readonly consensus: boolean;
  readonly normalize: boolean;
  readonly lambda: number;
}

const MULTI_CASES: Record<string, MultiCase> = {
  dare_ties_multi_f32: {
    models: ['ft1', 'ft2'], density: [0.5, 0.7], epsilon: [0, 0], consensus: true, normalize: true, lambda: 1.3,
    // ft2's weight is the gradient [0.3, 0.9]: by layer, and its first value for tensors outside
    // the layers (mergekit's rule, which the exact gradient cases above also pin down).
    weight: (m, t) => (m === 0 ? 0.6 : t.includes('layers.1.') ? 0.9 : 0.3),
  },
  dare_linear_multi_f32: {
    models: ['ft1', 'ft3'], density: [0.6, 0.5], epsilon: [0, 0], consensus: false, normalize: true, lambda: 1,
    weight: (m) => (m === 0 ? 0.4 : 0.6),
  },
  della_multi_f32: {
    models: ['ft1', 'ft2'], density: [0.4, 0.6], epsilon: [0.1, 0.3], consensus: true, normalize: true, lambda: 1,
    weight: (m) => (m === 0 ? 0.5 : 0.8),
  },
};

/** The merged delta of generalized task arithmetic for one element, given which deltas are kept. */
function mergedDelta(deltas: readonly number[], weights: readonly number[], kept: readonly boolean[], c: MultiCase): number {
  const wd = deltas.map((d, i) => (kept[i] ? d * weights[i] : 0));
  let mixed = 0;
  let divisor = 0;
  if (c.consensus) {
    const majority = wd.reduce((a, b) => a + b, 0) >= 0 ? 1 : -1;
    wd.forEach((v, i) => {
      if (Math.sign(v) !== majority) return;
      mixed += v;
      divisor += weights[i];
    });
    if (divisor === 0) divisor = 1;
  } else {
    mixed = wd.reduce((a, b) => a + b, 0);
    divisor = weights.reduce((a, b) => a + b, 0);
    if (Math.abs(divisor) < 1e-8) divisor = 1;
  }
  return (c.normalize ? mixed / divisor : mixed) * c.lambda;
}

interface MultiStats {
  perModel: { determined: number; kept: number; expected: number; variance: number; keptTop: number; expectedTop: number; varianceTop: number }[];
  unexplained: number;
  firstUnexplained: string;
}

const MULTI_ULPS = 4; // at the element's scale: deltas, products, sums, the division, λ, + base

function checkMultiMerge(c: MultiCase, out: Map<string, ReadTensor>): MultiStats {
  const base = model('base-f32');
  const fts = c.models.map((m) => model(`${m}-f32`));
  const n = c.models.length;
  const st: MultiStats = {
    perModel: c.models.map(() => ({ determined: 0, kept: 0, expected: 0, variance: 0, keptTop: 0, expectedTop: 0, varianceTop: 0 })),
    unexplained: 0,
    firstUnexplained: '',
  };
  const combos = Array.from({ length: 2 ** n }, (_, k) => Array.from({ length: n }, (_, i) => ((k >> i) & 1) === 1));
  for (const [name, o] of out) {
    const b = base.get(name)!.values;
    const xs = fts.map((f) => f.get(name)!.values);
    const deltas = xs.map((x) => Float64Array.from(x, (v, i) => v - b[i]));
    const weights = c.models.map((_, m) => c.weight(m, name));
    const probs = deltas.map((d, m) => keepProbabilities(d, o.shape, c.density[m], c.epsilon[m]));
    const cols = o.shape[o.shape.length - 1];
    // Position of each element within its row's magnitude order, per model (0 = largest).
    const order = deltas.map((d) => {
      const pos = new Int32Array(d.length);
      for (let r = 0; r < d.length / cols; r++) {
        Array.from({ length: cols }, (_, j) => r * cols + j)
          .sort((i, j) => Math.abs(d[j]) - Math.abs(d[i]))
          .forEach((i, k) => (pos[i] = k));
      }
      return pos;
    });
    for (let i = 0; i < b.length; i++) {
      let scale = Math.abs(b[i]);
      for (const x of xs) scale = Math.max(scale, Math.abs(x[i]));
      const tol = MULTI_ULPS * ulp(Math.max(scale, Math.abs(o.values[i])), 'F32');
      const d = deltas.map((dm) => dm[i]);
      const matching = combos.filter((kept) => Math.abs(b[i] + mergedDelta(d, weights, kept, c) - o.values[i]) <= tol);
      if (matching.length === 0) {
        if (st.unexplained++ === 0) st.firstUnexplained = `${name}[${i}] = ${o.values[i]}, base ${b[i]}, deltas ${d.join(', ')}`;
        continue;
      }
      for (let m = 0; m < n; m++) {
        if (!matching.every((kept) => kept[m] === matching[0][m])) continue;
        const pm = st.perModel[m];
        const p = probs[m][i];
        pm.determined++;
        pm.kept += matching[0][m] ? 1 : 0;
        pm.expected += p;
        pm.variance += p * (1 - p);
        if (order[m][i] < cols / 2) {
          pm.keptTop += matching[0][m] ? 1 : 0;
          pm.expectedTop += p;
          pm.varianceTop += p * (1 - p);
        }
      }
    }
  }
  return st;
}

describe('mergekit golden outputs: random masks (DARE, DELLA)', () => {
  for (const [name, c] of Object.entries(RANDOM_CASES)) {
    it(`${name}: mergekit's and Alloy's outputs both keep, rescale and drop as the method says`, async () => {
      const expected = golden(name);
      const actual = await alloyMerge(name);
      expectSameLayout(actual, expected);
      const mk = checkRandomMerge(c, expected);
      const ours = checkRandomMerge(c, actual);
      measured.push(`${name}: mergekit kept ${mk.kept}/${mk.expected.toFixed(1)} (top halves ${mk.keptTop}/${mk.expectedTop.toFixed(1)}), formula ${mk.worstUlps.toFixed(3)} ulp; ` +
        `alloy kept ${ours.kept}/${ours.expected.toFixed(1)} (top halves ${ours.keptTop}/${ours.expectedTop.toFixed(1)}), formula ${ours.worstUlps.toFixed(3)} ulp (${ours.worstAt})`);
      // The check of the checker: mergekit's own output satisfies the same invariants.
      expectMaskStatistics(mk, `mergekit ${name}`);
      expect(mk.worstUlps, `mergekit ${mk.worstAt}`).toBeLessThanOrEqual(6);
      expectMaskStatistics(ours, `alloy ${name}`);
      expect(ours.worstUlps, `alloy ${ours.worstAt}`).toBeLessThanOrEqual(4);
    }, 60_000);
  }

  for (const [name, c] of Object.entries(MULTI_CASES)) {
    it(`${name}: every element is the formula for some keep/drop choice per model, kept at the right rates`, async () => {
      const expected = golden(name);
      const actual = await alloyMerge(name);
      expectSameLayout(actual, expected);
      const mk = checkMultiMerge(c, expected);
      const ours = checkMultiMerge(c, actual);
      const show = (st: MultiStats): string => st.perModel.map((m, i) => `${c.models[i]} ${m.kept}/${m.expected.toFixed(1)} of ${m.determined}`).join(', ');
      measured.push(`${name}: mergekit ${show(mk)}, unexplained ${mk.unexplained}; alloy ${show(ours)}, unexplained ${ours.unexplained} (${ours.firstUnexplained})`);
      for (const [who, st] of [['mergekit', mk], ['alloy', ours]] as const) {
        expect(st.unexplained, `${who} ${name}: ${st.firstUnexplained}`).toBe(0);
        st.perModel.forEach((m, i) => {
          expect(m.determined, `${who} ${c.models[i]}: masks read off`).toBeGreaterThan(400);
          expect(Math.abs(m.kept - m.expected), `${who} ${c.models[i]}: kept ${m.kept}, expected ${m.expected.toFixed(1)}`)
            .toBeLessThanOrEqual(5 * Math.sqrt(m.variance));
          expect(Math.abs(m.keptTop - m.expectedTop), `${who} ${c.models[i]}: kept ${m.keptTop} of the larger halves, expected ${m.expectedTop.toFixed(1)}`)
            .toBeLessThanOrEqual(5 * Math.sqrt(m.varianceTop));
        });
      }
    }, 60_000);
  }

  it('dare_ties_bf16: the f32 result rounded once to bf16, in mergekit and in Alloy', async () => {
    // Same seed and the same tensors in the same order as dare_ties_f32, so each implementation
    // draws the same masks for both cases: the bf16 output is its f32 output rounded.
    const pairs: [string, Map<string, ReadTensor>, Map<string, ReadTensor>][] = [
      ['mergekit', golden('dare_ties_bf16'), golden('dare_ties_f32')],
      ['alloy', await alloyMerge('dare_ties_bf16'), await alloyMerge('dare_ties_f32')],
    ];
    for (const [who, bf16, f32out] of pairs) {
      expectSameLayout(bf16, new Map([...f32out].map(([n, t]) => [n, { ...t, dtype: 'BF16' as const }])));
      let worst = 0;
      for (const [name, t] of bf16) {
        const rounded = roundToDtype(f32out.get(name)!.values, 'BF16');
        for (let i = 0; i < rounded.length; i++) worst = Math.max(worst, ulpDistance(t.values[i], rounded[i], 'BF16'));
      }
      measured.push(`dare_ties_bf16 (${who}): max ${worst} bf16 ulp from its f32 output rounded`);
      expect(worst, who).toBeLessThanOrEqual(1);
    }
  }, 60_000);
});
