/**
 * Independent, deliberately literal f64 implementations of docs/methods.md §8–15 (whole
 * tensors, the steps in mergekit's order, sort-based quantiles and top-k), used as expected values
 * by the method unit tests and the end-to-end CLI tests. Tensors are flat arrays with a shape.
 */

type Arr = ArrayLike<number>;

function f64(x: Arr): Float64Array {
  return Float64Array.from(x as ArrayLike<number>);
}
function sub(a: Arr, b: Arr): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => a[i] - b[i]);
}
function dotOf(a: Arr, b: Arr): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
function normOf(a: Arr): number {
  return Math.sqrt(dotOf(a, a));
}

/** Groups of flat indices that form the "vectors" of a tensor. */
function vectorGroups(shape: readonly number[], mode: 'flat' | 'rows' | 'dim0'): number[][] {
  const numel = shape.reduce((a, b) => a * b, 1);
  const all = Array.from({ length: numel }, (_, i) => i);
  if (mode === 'flat' || shape.length <= 1) return [all];
  if (mode === 'rows') {
    const cols = shape[shape.length - 1];
    return Array.from({ length: numel / cols }, (_, r) => all.slice(r * cols, (r + 1) * cols));
  }
  const period = numel / shape[0];
  return Array.from({ length: period }, (_, j) => all.filter((i) => i % period === j));
}

export function nuslerpRef(
  x0: Arr,
  x1: Arr,
  base: Arr | null,
  w0: number,
  w1: number,
  shape: readonly number[],
  options: { flatten?: boolean; rowWise?: boolean } = {},
): Float64Array {
  const t = Math.abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
  const v0 = base ? sub(x0, base) : f64(x0);
  const v1 = base ? sub(x1, base) : f64(x1);
  const mode = (options.flatten ?? true) ? 'flat' : options.rowWise ? 'dim0' : 'rows';
  const out = new Float64Array(v0.length);
  for (const group of vectorGroups(shape, mode)) {
    const a = group.map((i) => v0[i]);
    const b = group.map((i) => v1[i]);
    const na = Math.max(normOf(a), 1e-7);
    const nb = Math.max(normOf(b), 1e-7);
    const cos = Math.min(1, Math.max(-1, dotOf(a.map((v) => v / na), b.map((v) => v / nb))));
    const theta = Math.acos(cos);
    const sin = Math.sin(theta);
    group.forEach((i, k) => {
      out[i] = Math.abs(sin) < 1e-8 ? (1 - t) * a[k] + t * b[k] : (Math.sin((1 - t) * theta) * a[k] + Math.sin(t * theta) * b[k]) / sin;
    });
  }
  if (base) for (let i = 0; i < out.length; i++) out[i] += base[i];
  return out;
}

/** The literal steps of docs/methods.md §9, tangent included. */
export function multislerpRef(xs: Arr[], base: Arr | null, weights: number[], options: { normalize?: boolean; eps?: number } = {}): Float64Array {
  const eps = options.eps ?? 1e-8;
  if (xs.length === 1) return f64(xs[0]);
  const vs = xs.map((x) => (base ? sub(x, base) : f64(x)));
  const total = weights.reduce((a, b) => a + b, 0);
  const w = (options.normalize ?? true) ? weights.map((v) => v / total) : weights;
  const norms = vs.map(normOf);
  const units = vs.map((v, i) => v.map((e) => e / (norms[i] + eps)));
  const n = vs[0].length;
  const m = new Float64Array(n);
  units.forEach((u, i) => u.forEach((e, k) => (m[k] += w[i] * e)));
  const mNorm = normOf(m);
  const out = new Float64Array(n);
  if (mNorm < eps) {
    if (vs.length !== 2) throw new Error('antipodal');
    for (let k = 0; k < n; k++) out[k] = w[0] * vs[0][k] + w[1] * vs[1][k] + (base ? base[k] : 0);
    return out;
  }
  const mu = m.map((e) => e / mNorm);
  const tangent = new Float64Array(n);
  units.forEach((u, i) => {
    const along = dotOf(u, mu);
    u.forEach((e, k) => (tangent[k] += w[i] * (e - along * mu[k])));
  });
  const tau = normOf(tangent) + eps;
  const scale = w.reduce((s, wi, i) => s + wi * norms[i], 0);
  for (let k = 0; k < n; k++) out[k] = (mu[k] * Math.cos(tau) + tangent[k] * (Math.sin(tau) / tau)) * scale + (base ? base[k] : 0);
  return out;
}

/** The literal iteration of docs/methods.md §10 on whole vectors. */
export function karcherRef(xs: Arr[], maxIter = 10, tol = 1e-5): Float64Array {
  if (xs.length === 1) return f64(xs[0]);
  const n = xs[0].length;
  const alphas = xs.map(() => 1 / xs.length);
  const norms = xs.map(normOf);
  const units = xs.map((x, i) => (norms[i] === 0 ? new Float64Array(n) : f64(x).map((v) => v / norms[i])));
  const valid = norms.flatMap((v, i) => (v > tol ? [i] : []));
  if (valid.length === 0) return new Float64Array(n);
  const a = valid.map(() => 1 / valid.length);
  let u = new Float64Array(n);
  valid.forEach((i, k) => units[i].forEach((v, e) => (u[e] += a[k] * v)));
  const un = normOf(u);
  u = un < tol ? Float64Array.from(units[valid[0]]) : u.map((v) => v / un);
  for (let iter = 0; iter < maxIter; iter++) {
    const T = new Float64Array(n);
    valid.forEach((i, k) => {
      const cos = Math.min(1, Math.max(-1, dotOf(u, units[i])));
      const theta = Math.acos(cos);
      if (theta < tol) return;
      const f = (a[k] * theta) / Math.sin(theta);
      for (let e = 0; e < n; e++) T[e] += f * (units[i][e] - cos * u[e]);
    });
    const tn = normOf(T);
    if (tn < tol) break;
    u = u.map((v, e) => Math.cos(tn) * v + (Math.sin(tn) * T[e]) / tn);
    const len = normOf(u);
    if (len > tol) u = u.map((v) => v / len);
  }
  const s = alphas.reduce((acc, al, i) => acc + al * norms[i], 0);
  return u.map((v) => s * v);
}

export function modelStockRef(base: Arr, others: Arr[], shape: readonly number[], filterWise = false): Float64Array {
  const out = new Float64Array(base.length);
  const N = others.length;
  for (const group of vectorGroups(shape, filterWise ? 'rows' : 'flat')) {
    const offsets = others.map((x) => group.map((i) => x[i] - base[i]));
    let total = 0;
    let pairs = 0;
    for (let i = 0; i < N; i++) {
      for (let j = i + 1; j < N; j++) {
        const c = dotOf(offsets[i], offsets[j]) / Math.max(normOf(offsets[i]) * normOf(offsets[j]), 1e-6);
        total += Math.min(1, Math.max(-1, c));
        pairs++;
      }
    }
    const cos = total / pairs;
    const t = (N * cos) / (1 + (N - 1) * cos);
    for (const i of group) {
      const mean = others.reduce((s, x) => s + x[i], 0) / N;
      out[i] = t * mean + (1 - t) * base[i];
    }
  }
  return out;
}

export function nearswapRef(a: Arr, b: Arr, t: number): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => {
    const w = Math.min(1, Math.max(0, t / Math.max(Math.abs(a[i] - b[i]), 1e-6)));
    return w * b[i] + (1 - w) * a[i];
  });
}

/** docs/methods.md §11 with exact quantiles over all elements (no sampling). Also returns the importance and threshold. */
export function arceeFusionRef(base: Arr, x: Arr, shape: readonly number[]): { values: Float64Array; importance: Float64Array; threshold: number } {
  const importance = new Float64Array(base.length);
  for (const row of vectorGroups(shape, 'rows')) {
    const softmax = (v: Arr): number[] => {
      const vals = row.map((i) => v[i]);
      const max = Math.max(...vals);
      const e = vals.map((value) => Math.exp(value - max));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((value) => value / s + 1e-8);
    };
    const p = softmax(x);
    const q = softmax(base);
    const kl = p.reduce((acc, pk, k) => acc + pk * Math.log(pk / q[k]), 0);
    row.forEach((i) => (importance[i] = Math.abs(x[i] - base[i]) * kl));
  }
  const sorted = Float64Array.from(importance).sort();
  const n = sorted.length;
  const Q = (q: number): number => sorted[Math.floor(q * (n - 1))];
  const threshold = Q(0.5) + 1.5 * (Q(0.75) - Q(0.25));
  const values = Float64Array.from({ length: n }, (_, i) => base[i] + (x[i] - base[i]) * (importance[i] >= threshold ? 1 : 0));
  return { values, importance, threshold };
}

/** docs/methods.md §14; top-k ties kept in index order (mergekit: arbitrary). */
export function sceRef(base: Arr, xs: Arr[], selectTopk = 1): Float64Array {
  const n = base.length;
  const m = xs.length;
  const tvs = xs.map((x) => sub(x, base));
  if (selectTopk < 1) {
    const variance = Float64Array.from({ length: n }, (_, i) => {
      const mean = tvs.reduce((s, tv) => s + tv[i], 0) / m;
      return tvs.reduce((s, tv) => s + (tv[i] - mean) ** 2, 0) / m;
    });
    const nonzero = variance.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0);
    const k = selectTopk <= 0 ? 0 : Math.floor(nonzero * selectTopk);
    const order = Array.from(variance.keys()).sort((a, b) => variance[b] - variance[a] || a - b);
    const keep = new Uint8Array(n);
    for (const i of order.slice(0, k)) keep[i] = 1;
    for (const tv of tvs) for (let i = 0; i < n; i++) tv[i] *= keep[i];
  }
  const s = tvs.map((tv) => tv.reduce((acc, v) => acc + v * v, 0) / n);
  const total = s.reduce((a, b) => a + b, 0);
  const omega = Math.abs(total) < 1e-6 ? s.map(() => 1 / m) : s.map((v) => v / total);
  return Float64Array.from({ length: n }, (_, i) => {
    const majority = tvs.reduce((acc, tv) => acc + tv[i], 0) >= 0 ? 1 : -1;
    let num = 0;
    let den = 0;
    tvs.forEach((tv, j) => {
      if (Math.sign(tv[i]) === majority) {
        num += tv[i] * omega[j];
        den += omega[j];
      }
    });
    return base[i] + num / Math.max(den, 1e-6);
  });
}

/** docs/methods.md §15, both variants (plus: ramplus_tl with r, alpha). */
export function ramRef(base: Arr, xs: Arr[], options: { epsilon?: number; plus?: { r: number; alpha: number } } = {}): Float64Array {
  const eps = options.epsilon ?? 1e-5;
  const n = base.length;
  const tvs = xs.map((x) => sub(x, base));
  const active = tvs.map((tv) => Array.from(tv, (v) => Math.abs(v) > eps));
  const count = Array.from({ length: n }, (_, i) => active.reduce((s, a) => s + (a[i] ? 1 : 0), 0));
  const lambdas = tvs.map((_, j) => {
    if (!options.plus) return 1;
    let shared = 0;
    let unique = 0;
    for (let i = 0; i < n; i++) {
      if (active[j][i] && count[i] > 1) shared++;
      if (active[j][i] && count[i] === 1) unique++;
    }
    const rho = shared / Math.max(unique, eps);
    return 1 + options.plus.r * Math.min(options.plus.alpha, Math.max(0, rho));
  });
  return Float64Array.from({ length: n }, (_, i) => {
    let merged = 0;
    tvs.forEach((tv, j) => {
      if (!active[j][i]) return;
      merged += count[i] === 1 ? lambdas[j] * tv[i] : tv[i] / Math.max(count[i], 1);
    });
    return base[i] + merged;
  });
}
