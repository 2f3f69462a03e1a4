/**
 * Alloy against numbers mergekit itself computed: test/fixtures/mergekit/generate.py ran
 * mergekit's own merge code on the tiny models in test/fixtures/mergekit/models for every
 * config in test/fixtures/mergekit/configs and committed the outputs in golden/. Here
 * `alloy merge` runs the same configs on the same models and must agree.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readModelDir, readSafetensorsFile, type ReadTensor } from '../fixtures/safetensors';
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

async function alloyMerge(name: string): Promise<Map<string, ReadTensor>> {
  const out = join(scratch, name);
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

/** Distance in ulps of the dtype between two values stored in that dtype (bf16 values are f32 with 16 zero low bits). */
function ulpDistance(a: number, b: number, dtype: string): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
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

/** Largest |x| per element over every fixture model's tensor of that name (empty when none has it). */
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
        ? Math.abs(a.values[i] - g.values[i]) / ulp(Math.max(Math.abs(g.values[i]), scale[i]), g.dtype as 'F32' | 'BF16')
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
 * Tolerances. bf16 outputs of an f32 computation (`dtype: float32`, `out_dtype: bfloat16`): one
 * bf16 ulp of the value itself (measured: 0 — every element identical). bf16 computations
 * (`dtype: bfloat16`: mergekit rounds every step to bf16, Alloy computes in f32 and rounds once,
 * docs/compatibility.md "all methods"): one bf16 ulp at the element's scale (see worstUlps).
 * f32 outputs: mergekit rounds each f32 step of its formula (and sums in hash order), so it is
 * itself a few f32 ulps from the exact result; the budget is its step count for that formula, at
 * the element's scale. For linear_f32 mergekit is 1.71 ulp from the f64 result and Alloy 0.90.
 */
const F32_BUDGET: Record<string, number> = {
  breadcrumbs: 1, breadcrumbs_ties: 1, ram: 1, ramplus_tl: 1,
  linear: 2, slerp: 2, nuslerp: 2, nearswap: 2, task_arithmetic: 2, ties: 2, sce: 2,
  // Iterative or Gram-matrix methods: more rounded steps (multislerp: the closed form of
  // docs/compatibility.md; karcher: up to 10 iterations; model_stock: cosines, then t).
  karcher: 3, multislerp: 4, model_stock: 4,
};
const BF16_COMPUTE = new Set(['linear_bf16', 'task_arithmetic_bf16']);
function budget(c: GoldenCase): number {
  return c.dtypes.includes('F32') ? F32_BUDGET[c.method] : 1;
}

const measured: string[] = [];
afterAll(() => {
  if (process.env.ALLOY_GOLDEN_REPORT) writeFileSync(process.env.ALLOY_GOLDEN_REPORT, measured.join('\n') + '\n');
});

describe(`mergekit golden outputs (mergekit ${manifest.mergekit_commit.slice(0, 12)}, torch ${manifest.torch})`, () => {
  it('cover every merge method', () => {
    const methods = new Set(manifest.cases.map((c) => c.method));
    expect([...methods].sort()).toEqual([
      'arcee_fusion', 'breadcrumbs', 'breadcrumbs_ties', 'dare_linear', 'dare_ties', 'della', 'della_linear',
      'karcher', 'linear', 'model_stock', 'multislerp', 'nearswap', 'nuslerp', 'passthrough', 'ram',
      'ramplus_tl', 'sce', 'slerp', 'task_arithmetic', 'ties',
    ]);
    expect(new Set(manifest.cases.flatMap((c) => c.dtypes))).toEqual(new Set(['F32', 'BF16']));
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
      } else if (BF16_COMPUTE.has(c.name)) {
        expect(w.ulps, `${w.tensor}[${w.index}]: alloy ${w.got}, mergekit ${w.expected}`).toBeLessThanOrEqual(1);
      } else {
        expect(raw.ulps, `${raw.tensor}[${raw.index}]: alloy ${raw.got}, mergekit ${raw.expected}`).toBeLessThanOrEqual(1);
      }
    }, 60_000);
  }
});
