import { describe, expect, it } from 'vitest';
import { addScaledProduct, moduleScale, parseLoraConfig, patternKey, targetsModule } from '../../src/lora';
import { factorize, memoryRowBlocks, orthonormalColumns, randomizedSvd, symmetricEigen } from '../../src/lora/extract';
import { randomValues } from './adapters';

describe('addScaledProduct (the CPU reference of ΔW rows = scale·B[rows]·A)', () => {
  it('matches a float64 triple loop on odd sizes', () => {
    const [rows, rank, cols] = [7, 6, 13]; // one group of four ranks and two more
    const left = randomValues(rows * rank, 1, 1);
    const right = randomValues(rank * cols, 2, 1);
    const out = randomValues(rows * cols, 3, 1);
    const expected = Float64Array.from(out);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let k = 0; k < rank; k++) s += left[i * rank + k] * right[k * cols + j];
        expected[i * cols + j] += 0.75 * s;
      }
    }
    addScaledProduct(out, left, right, rows, rank, cols, 0.75);
    for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - expected[i])).toBeLessThan(1e-6);
  });

  it('hand-worked values; NaN and Inf propagate as in B@A (0·Inf is NaN); subnormal weights survive a zero product', () => {
    // out 2×2, L 2×1, R 1×2
    const out = new Float32Array([1, 2, 1e-40, 4]);
    addScaledProduct(out, new Float32Array([2, 0]), new Float32Array([3, -1]), 2, 1, 2, 0.5);
    expect([...out]).toEqual([4, 1, Math.fround(1e-40), 4]);
    const inf = new Float32Array([1, 1]);
    addScaledProduct(inf, new Float32Array([0]), new Float32Array([Infinity, 2]), 1, 1, 2, 1);
    expect(Number.isNaN(inf[0])).toBe(true);
    expect(inf[1]).toBe(1);
    const nan = new Float32Array([1]);
    addScaledProduct(nan, new Float32Array([NaN]), new Float32Array([1]), 1, 1, 1, 1);
    expect(Number.isNaN(nan[0])).toBe(true);
  });
});

describe('adapter_config.json semantics (PEFT)', () => {
  const config = parseLoraConfig(
    JSON.stringify({
      peft_type: 'LORA', r: 16, lora_alpha: 32, target_modules: ['q_proj', 'v_proj'],
      rank_pattern: { 'layers.0.self_attn.q_proj': 4, '^model\\.layers\\.1\\..*': 8 }, alpha_pattern: { v_proj: 2 },
    }),
    'adapter_config.json',
  );
  it('scale = alpha / r with per-module patterns (exact name, dotted suffix, regex)', () => {
    expect(moduleScale(config, 'model.layers.0.self_attn.q_proj')).toEqual({ rank: 4, alpha: 32, scale: 8 });
    expect(moduleScale(config, 'model.layers.2.self_attn.q_proj')).toEqual({ rank: 16, alpha: 32, scale: 2 });
    expect(moduleScale(config, 'model.layers.2.self_attn.v_proj')).toEqual({ rank: 16, alpha: 2, scale: 0.125 });
    expect(patternKey(config.rankPattern, 'model.layers.10.self_attn.q_proj')).toBeUndefined();
    // A suffix must start at a dot: 'xq_proj' is not 'q_proj'.
    expect(targetsModule(config, 'model.layers.0.self_attn.q_proj')).toBe(true);
    expect(targetsModule(config, 'model.layers.0.self_attn.xq_proj')).toBe(false);
  });
  it('rsLoRA: alpha / √r', () => {
    const rs = parseLoraConfig(JSON.stringify({ r: 16, lora_alpha: 8, use_rslora: true }), 'x');
    expect(moduleScale(rs, 'a.b').scale).toBe(2);
  });
  it('a string target_modules is a full-match regex', () => {
    const re = parseLoraConfig(JSON.stringify({ r: 2, lora_alpha: 2, target_modules: '.*\\.(q|v)_proj' }), 'x');
    expect(targetsModule(re, 'model.layers.0.self_attn.q_proj')).toBe(true);
    expect(targetsModule(re, 'model.layers.0.self_attn.q_proj.extra')).toBe(false);
  });
  it('refuses DoRA, other PEFT types, bad JSON and bad ranks with the file named', () => {
    expect(() => parseLoraConfig('{"use_dora": true}', 'dir/adapter_config.json')).toThrow(/^dir\/adapter_config\.json: this is a DoRA adapter/);
    expect(() => parseLoraConfig('{"peft_type": "PROMPT_TUNING"}', 'f')).toThrow(/peft_type is "PROMPT_TUNING"/);
    expect(() => parseLoraConfig('{', 'f')).toThrow(/^f is not valid JSON/);
    expect(() => parseLoraConfig('{"r": 2.5}', 'f')).toThrow(/r must be an integer/);
    expect(() => parseLoraConfig('{"r": 4, "rank_pattern": {"q": -1}}', 'f')).toThrow(/rank_pattern\["q"\] must be a positive number/);
  });
});

describe('randomized SVD building blocks', () => {
  it('Jacobi: eigenpairs of a hand-worked symmetric matrix, descending', () => {
    // [[2,1],[1,2]]: eigenvalues 3 (1,1)/√2 and 1 (1,−1)/√2.
    const { values, vectors } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
    expect(values[0]).toBeCloseTo(3, 14);
    expect(values[1]).toBeCloseTo(1, 14);
    expect(Math.abs(vectors[0 * 2 + 0])).toBeCloseTo(Math.SQRT1_2, 14);
    expect(vectors[0 * 2 + 0] * vectors[1 * 2 + 0]).toBeGreaterThan(0);
    expect(vectors[0 * 2 + 1] * vectors[1 * 2 + 1]).toBeLessThan(0);
  });

  it('Householder QR: orthonormal Q spanning the columns, also for dependent columns', () => {
    const m = 9;
    const x = Float64Array.from(randomValues(m, 5, 1));
    // columns: x, 2x (dependent), e0
    const cols = new Float64Array(m * 3);
    cols.set(x, 0);
    cols.set(x.map((v) => 2 * v), m);
    cols[2 * m] = 1;
    const q = orthonormalColumns(Float64Array.from(cols), m, 3);
    for (let a = 0; a < 3; a++) {
      for (let b = 0; b < 3; b++) {
        let dot = 0;
        for (let i = 0; i < m; i++) dot += q[a * m + i] * q[b * m + i];
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 12);
      }
    }
    // x lies in span(q0): its projection onto q0 has x's norm.
    let p = 0;
    let n = 0;
    for (let i = 0; i < m; i++) {
      p += q[i] * x[i];
      n += x[i] * x[i];
    }
    expect(Math.abs(p)).toBeCloseTo(Math.sqrt(n), 12);
  });

  it('an exactly rank-3 matrix is recovered to rounding at rank 3, with its singular values', async () => {
    const [m, n, r] = [40, 25, 3];
    const u = randomValues(m * r, 11, 1);
    const v = randomValues(r * n, 12, 1);
    const w = new Float32Array(m * n);
    addScaledProduct(w, u, v, m, r, n, 1);
    const svd = await randomizedSvd(memoryRowBlocks(w, m, n, 7), { k: 8, powerIterations: 1, seed: 3, label: 't' });
    const f = factorize(svd, { maxRank: 3, distributeScale: true, svEpsilon: 0 });
    const back = new Float32Array(m * n);
    addScaledProduct(back, f.b, f.a, m, 3, n, 1);
    let err = 0;
    let norm = 0;
    for (let i = 0; i < w.length; i++) {
      err += (back[i] - w[i]) ** 2;
      norm += w[i] ** 2;
    }
    expect(Math.sqrt(err / norm)).toBeLessThan(1e-6);
    // Σσ² = ‖W‖², and directions beyond the rank carry nothing.
    expect(f.sigma.reduce((s, x) => s + x * x, 0) / norm).toBeCloseTo(1, 6);
    expect(svd.sigma[3] / svd.sigma[0]).toBeLessThan(1e-6);
    // --sv-epsilon drops the empty directions.
    expect(factorize(svd, { maxRank: 8, distributeScale: true, svEpsilon: 1e-3 * svd.sigma[0] }).rank).toBe(3);
  });
});
