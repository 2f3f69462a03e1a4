/**
 * Independent, deliberately naive implementations of the formulas of docs/methods.md (f64, sort-based
 * top-k), used as the expected values of end-to-end tests.
 */

export function linearRef(xs: Float32Array[], ws: number[], normalize = true): Float64Array {
  const out = new Float64Array(xs[0].length);
  const total = ws.reduce((a, b) => a + b, 0);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    xs.forEach((x, j) => (s += ws[j] * x[i]));
    out[i] = normalize ? s / total : s;
  }
  return out;
}

export function slerpRef(v0: Float32Array, v1: Float32Array, t: number): Float64Array {
  let n0 = 0, n1 = 0, dot = 0;
  for (let i = 0; i < v0.length; i++) {
    n0 += v0[i] * v0[i];
    n1 += v1[i] * v1[i];
    dot += v0[i] * v1[i];
  }
  n0 = Math.sqrt(n0);
  n1 = Math.sqrt(n1);
  const c = dot / ((n0 > 1e-8 ? n0 : 1) * (n1 > 1e-8 ? n1 : 1));
  const out = new Float64Array(v0.length);
  if (Math.abs(c) > 0.9995) {
    for (let i = 0; i < out.length; i++) out[i] = (1 - t) * v0[i] + t * v1[i];
    return out;
  }
  const th = Math.acos(c);
  const s0 = Math.sin((1 - t) * th) / Math.sin(th);
  const s1 = Math.sin(t * th) / Math.sin(th);
  for (let i = 0; i < out.length; i++) out[i] = s0 * v0[i] + s1 * v1[i];
  return out;
}

/** Keeps the floor(density·n) largest |x| (sort-based), optional L1 rescale. */
export function magnitudePruneRef(x: Float64Array, density: number, rescale: boolean): Float64Array {
  if (density >= 1) return x;
  const k = Math.floor(density * x.length);
  const order = Array.from(x.keys()).sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b);
  const out = new Float64Array(x.length);
  for (const i of order.slice(0, k)) out[i] = x[i];
  if (rescale) {
    const before = x.reduce((s, v) => s + Math.abs(v), 0);
    const after = out.reduce((s, v) => s + Math.abs(v), 0);
    if (before >= 1e-7 && after >= 1e-7) for (let i = 0; i < out.length; i++) out[i] *= before / after;
  }
  return out;
}

export function tiesRef(
  base: Float32Array,
  others: Float32Array[],
  weights: number[],
  densities: number[],
  options: { normalize?: boolean; consensus?: boolean; lambda?: number } = {},
): Float64Array {
  const normalize = options.normalize ?? true;
  const consensus = options.consensus ?? true;
  const deltas = others.map((x, j) => {
    const d = new Float64Array(x.length);
    for (let i = 0; i < d.length; i++) d[i] = x[i] - base[i];
    return magnitudePruneRef(d, densities[j], false);
  });
  const out = new Float64Array(base.length);
  const wsum = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < out.length; i++) {
    const wd = deltas.map((d, j) => d[i] * weights[j]);
    let mixed = 0;
    let divisor = 0;
    if (consensus) {
      const majority = wd.reduce((a, b) => a + b, 0) >= 0 ? 1 : -1;
      wd.forEach((v, j) => {
        if (Math.sign(v) === majority) {
          mixed += v;
          divisor += weights[j];
        }
      });
      if (divisor === 0) divisor = 1;
    } else {
      mixed = wd.reduce((a, b) => a + b, 0);
      divisor = Math.abs(wsum) < 1e-8 ? 1 : wsum;
    }
    if (normalize) mixed /= divisor;
    out[i] = base[i] + mixed * (options.lambda ?? 1);
  }
  return out;
}
