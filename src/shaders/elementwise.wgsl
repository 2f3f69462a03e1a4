// Every elementwise operation of ChunkOps, fused: the backend records operations as an
// expression graph and, when a result is needed (a reduction, an operation that is not
// elementwise, the output), generates one kernel that computes it from the chunk's buffers —
// each graph node once per element, as a `let` — so that intermediate vectors never exist in GPU
// memory. The generated parts (src/gpu/fused.ts) go at the comment markers `//@NAME`:
//   @DECLS  the leaf buffers, `@group(0) @binding(k) var<storage, read> bk: array<f32|u32>;`
//   @BODY   the statements for element i, ending with `let result = vN;`
// Scalars (operands, weights, keys) are uniform words, so one kernel serves every chunk and
// tensor of the same shape of computation.

struct Params {
  n: u32,
  cols: u32,     // row length (per-row broadcasts)
  start_lo: u32, // first element index of the chunk, low and high 32 bits (random numbers)
  start_hi: u32,
  // Always 1.0. Constants that enter error-free transformations are multiplied by it: optimizers
  // fold (2 + f) − 2 to f when 2 is a literal (SwiftShader does), which would erase the error term.
  one: f32,
  // fused_sums: elements per segment, threads per segment, threads in all;
  // fused_histogram: mode (0 upper bits, 1 lower bits where the upper bits equal `high`), high
  seg_len: u32,
  threads_per_seg: u32,
  total_threads: u32,
  words: array<vec4<u32>, 14>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> sums_out: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> hist_out: array<atomic<u32>, 65536>;
//@DECLS

fn word(k: u32) -> u32 {
  return P.words[k / 4u][k % 4u];
}

fn sc(k: u32) -> f32 {
  return bitcast<f32>(word(k));
}

// Correctly rounded f32 results (up to ties closer than about 2^-40), like the CPU backend's
// f64 Math functions rounded to f32 — WGSL's own exp, log, sqrt and division may be off by a few
// ulps, enough to move an element across a selection threshold (arcee_fusion's softmaxes). WGSL
// may also assume there are no infinities or NaNs, so those cases are decided on the bits.

const LN2_HI: f32 = 6.931457520e-01; // 15 significant bits: k·LN2_HI is exact for |k| <= 256
const LN2_LO: f32 = 1.428606765e-06;
const LN2_LO2: f32 = 5.497923148e-14;
const LOG2E: f32 = 1.442695022e+00;

// 1/n! for n = 2…8 as (hi, lo) pairs.
const INV_FACT = array<vec2<f32>, 7>(
  vec2<f32>(5.000000000e-01, 0.0),
  vec2<f32>(1.666666716e-01, -4.967053879e-09),
  vec2<f32>(4.166666791e-02, -1.241763470e-09),
  vec2<f32>(8.333333768e-03, -4.346172033e-10),
  vec2<f32>(1.388888923e-03, -3.363109444e-11),
  vec2<f32>(1.984127011e-04, -2.725596875e-12),
  vec2<f32>(2.480158764e-05, -3.406996094e-13),
);

// 1/(2n+1) for n = 1…9 as (hi, lo) pairs.
const INV_ODD = array<vec2<f32>, 9>(
  vec2<f32>(3.333333433e-01, -9.934107759e-09),
  vec2<f32>(2.000000030e-01, -2.980232283e-09),
  vec2<f32>(1.428571492e-01, -6.386212004e-09),
  vec2<f32>(1.111111119e-01, -8.278422947e-10),
  vec2<f32>(9.090909362e-02, -2.709302116e-09),
  vec2<f32>(7.692307979e-02, -2.865607973e-09),
  vec2<f32>(6.666667014e-02, -3.476937627e-09),
  vec2<f32>(5.882352963e-02, -2.191347243e-10),
  vec2<f32>(5.263157934e-02, -3.921358238e-10),
);

// e^x: x = k·ln2 + r (Cody–Waite, |r| <= ln2/2), e^r = (e^(r/4))^4 with a degree-8 Taylor
// polynomial, all in double-float; one rounding, then the exact scaling by 2^k.
fn exp_rn(x: f32, bits: u32, one: f32) -> f32 {
  if (is_nan_bits(bits)) { return x; }
  if (bits == 0xff800000u || (bits >= 0x80000000u && x < -104.0)) { return 0.0; }
  if (bits == 0x7f800000u || (bits < 0x80000000u && x > 89.0)) { return pos_inf(); }
  let k = round(x * LOG2E);
  var r = vec2<f32>(x - k * LN2_HI, 0.0); // exact (Sterbenz)
  r = df_sum(r, -exact_product(k, LN2_LO * one));
  r = df_sum(r, vec2<f32>(-k * LN2_LO2, 0.0));
  let q = r * 0.25;
  var p = INV_FACT[6] * one;
  for (var n = 5; n >= 0; n = n - 1) {
    p = df_sum(df_mul(p, q), INV_FACT[n] * one);
  }
  p = df_sum(df_mul(p, q), vec2<f32>(one, 0.0));
  p = df_sum(df_mul(p, q), vec2<f32>(one, 0.0));
  p = df_mul(p, p);
  p = df_mul(p, p);
  var v = two_sum(p.x, p.y).x;
  var scale = i32(k);
  if (scale > 127) {
    // 2^128 itself is not a float: overflow decided here, not by ldexp
    if (v >= 1.0) { return pos_inf(); }
    v = v * 2.0;
    scale = scale - 1;
  }
  return ldexp(v, scale);
}

// log x: x = m·2^e with m in [√½, √2), log m = 2·atanh(s) with s = (m − 1)/(m + 1), the odd
// series in s² to 2^-48, all in double-float; one rounding.
fn log_rn(x: f32, bits: u32, one: f32) -> f32 {
  if ((bits & 0x7fffffffu) == 0u) { return neg_inf(); } // log(±0) = -Inf
  if (is_nan_bits(bits) || bits >= 0x80000000u) { return quiet_nan(); }
  if (bits == 0x7f800000u) { return x; }
  var e: i32;
  var mbits: u32;
  if ((bits >> 23u) == 0u) {
    // subnormal: normalise with integer operations (no float math, which may flush it)
    let shift = 23u - firstLeadingBit(bits);
    mbits = ((bits << shift) & 0x7fffffu) | 0x3f800000u;
    e = -126 - i32(shift);
  } else {
    mbits = (bits & 0x7fffffu) | 0x3f800000u;
    e = i32(bits >> 23u) - 127;
  }
  var m = bitcast<f32>(mbits);
  if (m > 1.414213538) {
    m = m * 0.5;
    e = e + 1;
  }
  let f = m - 1.0; // exact
  let d = two_sum(2.0 * one, f);
  let q1 = f / d.x;
  let pr = exact_product(q1, d.x);
  let q2 = (((f - pr.x) - pr.y) - q1 * d.y) / d.x;
  let s = fast_two_sum(q1, q2);
  let t = df_mul(s, s);
  var p = INV_ODD[8] * one;
  for (var n = 7; n >= 0; n = n - 1) {
    p = df_sum(df_mul(p, t), INV_ODD[n] * one);
  }
  // log m = 2s · (1 + t·P(t)) = 2s + 2s·t·P(t)
  let s2 = s * 2.0;
  let lm = df_sum(s2, df_mul(df_mul(p, t), s2));
  let fe = f32(e);
  let le = df_sum(exact_product(fe, 6.931471825e-01 * one), vec2<f32>(fe * -1.904654212e-09, fe * -8.783183739e-17));
  let total = df_sum(le, lm);
  return two_sum(total.x, total.y).x;
}

// √x corrected by its exact remainder (square roots of f32s are never exactly halfway).
fn sqrt_rn(x: f32, bits: u32) -> f32 {
  let s = sqrt(x);
  if (bits >= 0x80000000u || !moderate(bits)) {
    if ((bits & 0x7fffffffu) == 0u) { return x; } // sqrt(±0) = ±0
    if (bits > 0x80000000u || is_nan_bits(bits)) { return quiet_nan(); }
    return s;
  }
  let p = exact_product(s, s);
  return s + ((x - p.x) - p.y) / (2.0 * s);
}

fn moderate(magnitude_bits: u32) -> bool {
  return magnitude_bits >= 0x17800000u && magnitude_bits < 0x67800000u;
}

// x / y corrected by the exact remainder (quotients of f32s are never exactly halfway).
fn div_rn(x: f32, y: f32) -> f32 {
  let q = x / y;
  let qb = bitcast<u32>(q) & 0x7fffffffu;
  let xb = bitcast<u32>(x) & 0x7fffffffu;
  let yb = bitcast<u32>(y) & 0x7fffffffu;
  // Zeros, infinities, NaN and magnitudes outside [2^-80, 2^80] keep the plain quotient (the
  // error terms of the exact product would underflow or overflow).
  if (!moderate(qb) || !moderate(xb) || !moderate(yb)) {
    return q;
  }
  let p = exact_product(q, y);
  return q + ((x - p.x) - p.y) / y;
}

// unary: 0 neg, 1 abs, 2 sign, 3 sqrt, 4 exp, 5 log
fn unary_fn(op: u32, x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  switch op {
    case 0u: { return bitcast<f32>(bits ^ 0x80000000u); }
    case 1u: { return bitcast<f32>(bits & 0x7fffffffu); }
    case 2u: {
      if (is_nan_bits(bits)) { return x; }
      if (x > 0.0) { return 1.0; }
      if (x < 0.0) { return -1.0; }
      return 0.0;
    }
    case 3u: { return sqrt_rn(x, bits); }
    case 4u: { return exp_rn(x, bits, P.one); }
    case 5u: { return log_rn(x, bits, P.one); }
    default: { return x; }
  }
}

// binary: 0 add, 1 sub, 2 mul, 3 div, 4 min, 5 max, 6 gt, 7 ge, 8 eq
fn binary_fn(op: u32, x: f32, y: f32) -> f32 {
  switch op {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return div_rn(x, y); }
    // min / max propagate NaN from either side, like the CPU backend.
    case 4u: { return select(y, x, x < y || is_nan(x)); }
    case 5u: { return select(y, x, x > y || is_nan(x)); }
    case 6u: { return select(0.0, 1.0, x > y); }
    case 7u: { return select(0.0, 1.0, x >= y); }
    case 8u: { return select(0.0, 1.0, x == y); }
    default: { return x; }
  }
}

fn is_true(c: f32) -> bool {
  return (bitcast<u32>(c) & 0x7fffffffu) != 0u; // c ≠ 0 (NaN counts as true)
}

// PCG hash, exactly as pcgHash in src/backend/random.ts (u32 arithmetic wraps the same way).
fn pcg(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let mixed = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (mixed >> 22u) ^ mixed;
}

// randomUniform(key, start + i): the element index is split into two words exactly as on the CPU.
fn random_at(key: u32, i: u32) -> f32 {
  let lo = P.start_lo + i;
  let hi = P.start_hi + select(0u, 1u, lo < P.start_lo);
  let h = pcg(pcg(key ^ hi) + lo);
  return f32(h >> 8u) * (1.0 / 16777216.0);
}

@compute @workgroup_size(256)
fn fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  //@BODY
  out[i] = result;
}

// Reductions of an expression without writing it out: per-thread double-float partial sums over
// segments (the whole chunk or each row), as reduce.wgsl does for a buffer — thread t of segment s
// sums the elements j ≡ t (mod threads_per_seg) — with each value computed in place. The host
// adds a segment's partials in f64.
@compute @workgroup_size(256)
fn fused_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let t = flat_index(wid, nwg, lid);
  if (t >= P.total_threads) {
    return;
  }
  let base = (t / P.threads_per_seg) * P.seg_len;
  var acc = vec2<f32>(0.0, 0.0);
  for (var j = t % P.threads_per_seg; j < P.seg_len; j = j + P.threads_per_seg) {
    let i = base + j;
    //@BODY
    acc = df_add(acc, result);
  }
  sums_out[t] = acc;
}

// magnitudeHistogram of an expression (the `magnitudeHistogram` op of src/backend/types.ts), each value computed in place.
@compute @workgroup_size(256)
fn fused_histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  //@BODY
  let m = bitcast<u32>(result) & 0x7fffffffu;
  if (P.seg_len == 0u) {
    atomicAdd(&hist_out[m >> 16u], 1u);
  } else if ((m >> 16u) == P.threads_per_seg) {
    atomicAdd(&hist_out[m & 0xffffu], 1u);
  }
}
