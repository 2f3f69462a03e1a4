/**
 * The CPU reference of the matrix operations (docs/model.md §7) — the forward pass's arithmetic
 * and LoRA's product — over plain Float32Arrays in row-major layout. The WebGPU kernels are tested
 * against these functions within the tolerances docs/model.md §7 states. Sums are accumulated in
 * f64 (a JS number) and stored as f32: the reference is at least as accurate as anything tested
 * against it.
 */

/**
 * y[r, o] = Σ_i x[r, i] · w[o, i] (+ bias[o]) for `rows` rows of x [rows, inDim] and a weight
 * block w [outDim, inDim] in the PyTorch `nn.Linear` layout. Writes `y` as [rows, yStride] starting
 * at column `yOffset`, so a weight streamed in row blocks fills its slice of the output.
 * Loop order: four weight rows at a time (they stay in L1) against every x row, two x rows at a
 * time (x is the small activation matrix, kept in L2), so each weight block is read from memory
 * once, not once per row.
 */
export function matmulTransposed(
  x: Float32Array,
  rows: number,
  inDim: number,
  w: Float32Array,
  outDim: number,
  y: Float32Array,
  yStride = outDim,
  yOffset = 0,
  bias?: Float32Array,
): void {
  if (x.length < rows * inDim) throw new RangeError(`matmul: x holds ${x.length} values, ${rows}×${inDim} needed`);
  if (w.length < outDim * inDim) throw new RangeError(`matmul: w holds ${w.length} values, ${outDim}×${inDim} needed`);
  if (y.length < (rows - 1) * yStride + yOffset + outDim) throw new RangeError('matmul: output too small');
  let o = 0;
  for (; o + 4 <= outDim; o += 4) {
    const w0 = o * inDim;
    const w1 = w0 + inDim;
    const w2 = w1 + inDim;
    const w3 = w2 + inDim;
    const b0 = bias ? bias[o] : 0;
    const b1 = bias ? bias[o + 1] : 0;
    const b2 = bias ? bias[o + 2] : 0;
    const b3 = bias ? bias[o + 3] : 0;
    let r = 0;
    // Two activation rows at a time: each weight value loaded feeds two sums.
    for (; r + 2 <= rows; r += 2) {
      const xa = r * inDim;
      const xb = xa + inDim;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      let c0 = 0;
      let c1 = 0;
      let c2 = 0;
      let c3 = 0;
      for (let i = 0; i < inDim; i++) {
        const u = x[xa + i];
        const v = x[xb + i];
        const q0 = w[w0 + i];
        const q1 = w[w1 + i];
        const q2 = w[w2 + i];
        const q3 = w[w3 + i];
        a0 += u * q0;
        a1 += u * q1;
        a2 += u * q2;
        a3 += u * q3;
        c0 += v * q0;
        c1 += v * q1;
        c2 += v * q2;
        c3 += v * q3;
      }
      const ya = r * yStride + yOffset + o;
      const yb = ya + yStride;
      y[ya] = a0 + b0;
      y[ya + 1] = a1 + b1;
      y[ya + 2] = a2 + b2;
      y[ya + 3] = a3 + b3;
      y[yb] = c0 + b0;
      y[yb + 1] = c1 + b1;
      y[yb + 2] = c2 + b2;
      y[yb + 3] = c3 + b3;
    }
    for (; r < rows; r++) {
      const xBase = r * inDim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < inDim; i++) {
        const xi = x[xBase + i];
        s0 += xi * w[w0 + i];
        s1 += xi * w[w1 + i];
        s2 += xi * w[w2 + i];
        s3 += xi * w[w3 + i];
      }
      const yBase = r * yStride + yOffset + o;
      y[yBase] = s0 + b0;
      y[yBase + 1] = s1 + b1;
      y[yBase + 2] = s2 + b2;
      y[yBase + 3] = s3 + b3;
    }
  }
  for (; o < outDim; o++) {
    const w0 = o * inDim;
    const b0 = bias ? bias[o] : 0;
    for (let r = 0; r < rows; r++) {
      const xBase = r * inDim;
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[xBase + i] * w[w0 + i];
      y[r * yStride + yOffset + o] = s + b0;
    }
  }
}

/**
 * RMSNorm over the last dimension: y = x / sqrt(mean(x²) + eps) · (offset + w). `offset` is 1
 * for Gemma's norms (which store w − 1), 0 elsewhere. In place when `out === x`.
 */
export function rmsNorm(
  x: Float32Array,
  rows: number,
  dim: number,
  weight: Float32Array,
  eps: number,
  offset: number,
  out: Float32Array = new Float32Array(rows * dim),
): Float32Array {
  if (weight.length !== dim) throw new RangeError(`rmsNorm: weight has ${weight.length} values, dimension is ${dim}`);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let sum = 0;
    for (let i = 0; i < dim; i++) sum += x[base + i] * x[base + i];
    // Rounded to f32 before the product, as PyTorch's f32 rsqrt is.
    const scale = Math.fround(1 / Math.sqrt(Math.fround(sum / dim) + eps));
    for (let i = 0; i < dim; i++) out[base + i] = Math.fround(x[base + i] * scale) * (offset + weight[i]);
  }
  return out;
}

/** Softmax of `row[start, start+len)` in place, shifted by the maximum; -Inf entries become 0. */
export function softmaxInPlace(row: Float32Array, start: number, len: number): void {
  let max = -Infinity;
  for (let i = 0; i < len; i++) if (row[start + i] > max) max = row[start + i];
  if (max === -Infinity) {
    // Nothing to attend to (a padding query): zeros, not NaN.
    row.fill(0, start, start + len);
    return;
  }
  let sum = 0;
  for (let i = 0; i < len; i++) {
    const e = Math.exp(row[start + i] - max);
    row[start + i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < len; i++) row[start + i] *= inv;
}

/**
 * Rotary position embedding in the Hugging Face ("rotate half") layout, in place, on x viewed as
 * [tokens, heads, headDim]: the first `rotaryDim` values of each head are split into halves (a, b)
 * and rotated pairwise, (a, b) → (a·cos − b·sin, b·cos + a·sin), with angle position · invFreq[k]
 * and cos/sin multiplied by `attentionScaling` (YaRN and LongRoPE scale them).
 */
export function applyRope(
  x: Float32Array,
  tokens: number,
  heads: number,
  headDim: number,
  positions: ArrayLike<number>,
  invFreq: Float32Array,
  attentionScaling = 1,
): void {
  const half = invFreq.length;
  const rotaryDim = 2 * half;
  if (rotaryDim > headDim) throw new RangeError(`rope: ${rotaryDim} rotary dimensions exceed the head dimension ${headDim}`);
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let t = 0; t < tokens; t++) {
    const p = positions[t];
    for (let k = 0; k < half; k++) {
      // The angle is rounded to f32 first, as position_ids (f32) × inv_freq (f32) is in PyTorch.
      const angle = Math.fround(p * invFreq[k]);
      cos[k] = Math.cos(angle) * attentionScaling;
      sin[k] = Math.sin(angle) * attentionScaling;
    }
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let k = 0; k < half; k++) {
        const a = x[base + k];
        const b = x[base + k + half];
        x[base + k] = a * cos[k] - b * sin[k];
        x[base + k + half] = b * cos[k] + a * sin[k];
      }
    }
  }
}

/**
 * out[m×n] = a[m×k] · b[k×n], all row-major: each sum accumulated in f64 in k order and rounded
 * once to f32.
 */
export function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  if (a.length < m * k || b.length < k * n) throw new RangeError(`matmul: operands too small for ${m}×${k}·${k}×${n}`);
  const out = new Float32Array(m * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const c = a[i * k + p];
      const row = p * n;
      for (let j = 0; j < n; j++) acc[j] += c * b[row + j];
    }
    out.set(acc, i * n);
  }
  return out;
}

/** SiLU (swish): x · sigmoid(x). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** GELU with the tanh approximation (`gelu_pytorch_tanh`, `gelu_new`). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/** Exact GELU (`gelu`), through erf. */
export function geluExact(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/**
 * erf through the Chebyshev-fitted erfc of Numerical Recipes (fractional error below 1.2e-7
 * everywhere): JavaScript has no Math.erf, and Abramowitz & Stegun 7.1.26 (2.5e-5) is too coarse.
 */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
          t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

/** Gated MLP activation in place: gate[i] = act(gate[i]) · up[i]. */
export function gatedActivation(gate: Float32Array, up: Float32Array, act: (x: number) => number): void {
  for (let i = 0; i < gate.length; i++) gate[i] = act(gate[i]) * up[i];
}

/** cap · tanh(x / cap), Gemma 2's soft capping of attention scores and logits. */
export function softcap(x: Float32Array, start: number, len: number, cap: number): void {
  for (let i = start; i < start + len; i++) x[i] = cap * Math.tanh(x[i] / cap);
}

/** a += b, element-wise. */
export function addInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

/**
 * Causal grouped-query attention for one sequence: q [tokens, heads, headDim], k and v
 * [tokens, kvHeads, headDim] (query head h reads key/value head ⌊h / (heads / kvHeads)⌋).
 * Query t attends to keys s ≤ t with `valid[s]`; a query that is not valid itself gets zeros.
 * Scores are q·k · `scale`, then soft-capped when `softcapValue` is given.
 */
export function causalAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  tokens: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  valid: ArrayLike<boolean>,
  scale: number,
  softcapValue: number | null,
  out: Float32Array = new Float32Array(tokens * heads * headDim),
): Float32Array {
  if (heads % kvHeads !== 0) throw new RangeError(`attention: ${heads} heads are not a multiple of ${kvHeads} key/value heads`);
  const group = heads / kvHeads;
  const scores = new Float32Array(tokens);
  const acc = new Float64Array(headDim);
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / group);
    for (let t = 0; t < tokens; t++) {
      const outBase = (t * heads + h) * headDim;
      if (!valid[t]) {
        out.fill(0, outBase, outBase + headDim);
        continue;
      }
      const qBase = (t * heads + h) * headDim;
      for (let s = 0; s <= t; s++) {
        if (!valid[s]) {
          scores[s] = -Infinity;
          continue;
        }
        const kBase = (s * kvHeads + kvh) * headDim;
        let dot = 0;
        for (let i = 0; i < headDim; i++) dot += q[qBase + i] * k[kBase + i];
        scores[s] = dot * scale;
      }
      if (softcapValue !== null) {
        for (let s = 0; s <= t; s++) if (scores[s] !== -Infinity) scores[s] = softcapValue * Math.tanh(scores[s] / softcapValue);
      }
      softmaxInPlace(scores, 0, t + 1);
      acc.fill(0);
      for (let s = 0; s <= t; s++) {
        const p = scores[s];
        if (p === 0) continue;
        const vBase = (s * kvHeads + kvh) * headDim;
        for (let i = 0; i < headDim; i++) acc[i] += p * v[vBase + i];
      }
      for (let i = 0; i < headDim; i++) out[outBase + i] = acc[i];
    }
  }
  return out;
}
