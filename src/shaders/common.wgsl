// Helpers shared by every Alloy kernel (prepended to each module by src/gpu/kernels.ts).
//
// Dispatches are 2-D grids of 256-wide workgroups, so a chunk may have more than
// 65,535 × 256 elements: the workgroup's linear index is y * (grid width) + x.

const WG: u32 = 256u;

fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y * nwg.x + wid.x;
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return group_index(wid, nwg) * WG + lid;
}

// WGSL lets implementations assume that no NaN is ever present, so NaN tests look at the bits.
fn is_nan_bits(b: u32) -> bool {
  return (b & 0x7fffffffu) > 0x7f800000u;
}

fn is_nan(x: f32) -> bool {
  return is_nan_bits(bitcast<u32>(x));
}

// Double-float ("f32 pair") accumulation: hi + lo holds a sum far more exactly than one f32, so
// reductions and sign elections agree with the CPU backend, which accumulates in f64.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  let e = (a - (s - bb)) + (b - bb);
  return vec2<f32>(s, e);
}

fn df_add(acc: vec2<f32>, x: f32) -> vec2<f32> {
  let t = two_sum(acc.x, x);
  return vec2<f32>(t.x, acc.y + t.y);
}

fn df_add_df(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let t = two_sum(a.x, b.x);
  return vec2<f32>(t.x, t.y + (a.y + b.y));
}

// hi + lo rounded once to f32 (what `Math.fround` of the f64 sum gives, up to double rounding).
fn df_value(a: vec2<f32>) -> f32 {
  if ((bitcast<u32>(a.x) & 0x7f800000u) == 0x7f800000u) {
    return a.x; // ±Inf or NaN: the error term is meaningless
  }
  return two_sum(a.x, a.y).x;
}

// ±Inf and NaN cannot be WGSL constants; private variables make them runtime values.
var<private> BITS_POS_INF: u32 = 0x7f800000u;
var<private> BITS_NEG_INF: u32 = 0xff800000u;
var<private> BITS_QUIET_NAN: u32 = 0x7fc00000u;

fn pos_inf() -> f32 {
  return bitcast<f32>(BITS_POS_INF);
}

fn neg_inf() -> f32 {
  return bitcast<f32>(BITS_NEG_INF);
}

fn quiet_nan() -> f32 {
  return bitcast<f32>(BITS_QUIET_NAN);
}

// Whether this device's fma() rounds once (a probe decides at start-up: SwiftShader's does not).
override FMA_FUSED: bool = true;

// Dekker's exact product: a·b = hi + lo exactly (barring overflow), without fma.
fn split(a: f32) -> vec2<f32> {
  let c = 4097.0 * a;
  let hi = c - (c - a);
  return vec2<f32>(hi, a - hi);
}

fn two_product_in_range(a: f32, b: f32) -> vec2<f32> {
  let p = a * b;
  let sa = split(a);
  let sb = split(b);
  let err = ((sa.x * sb.x - p) + sa.x * sb.y + sa.y * sb.x) + sa.y * sb.y;
  return vec2<f32>(p, err);
}

// Whether 4097·x overflows in `split` (|x| ≥ 2^115).
fn beyond_split(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) >= 0x79000000u;
}

// Dekker's product. Past 2^115 the split overflows (NaN error terms where the CPU has a finite or
// infinite result), so the larger operand is scaled down by 2^32 and the result back: both exact.
fn two_product(a: f32, b: f32) -> vec2<f32> {
  if (beyond_split(a) || beyond_split(b)) {
    let scale_a = abs(a) >= abs(b);
    let r = two_product_in_range(select(a, a * 2.3283064365386963e-10, scale_a), select(b * 2.3283064365386963e-10, b, scale_a));
    return r * 4294967296.0;
  }
  return two_product_in_range(a, b);
}

// The exact product a·b as (p, e) with p = fl(a·b): with a fused fma, or Dekker's method.
fn exact_product(a: f32, b: f32) -> vec2<f32> {
  if (FMA_FUSED) {
    let p = a * b;
    return vec2<f32>(p, fma(a, b, -p));
  }
  return two_product(a, b);
}

fn near_overflow(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) >= 0x7e800000u;
}

// (wh + wl)·x + c rounded to f32, where wh + wl is an f64 weight split into two f32s: what the
// CPU backend's `acc += w * x` gives. That is an f64 product and sum rounded to f32 (a double
// rounding, which lands exactly on an f32 tie surprisingly often), so the tail is summed the way
// f64 would see it rather than rounded to odd: measured, this matches the CPU in all but about
// 2 of 10,000 operations (1 ulp then), where a correctly rounded sum differs in 1.5%.
fn mul_add_split(wh: f32, wl: f32, x: f32, c: f32) -> f32 {
  let p = exact_product(wh, x);
  if (near_overflow(p.x) || near_overflow(c)) {
    return wh * x + c; // near overflow, Inf or NaN: the error terms are meaningless
  }
  let s = two_sum(c, p.x);
  return s.x + (s.y + (p.y + wl * x));
}

// a·b + c with the product exact (as the CPU's f64 product of two f32s is).
fn mul_add(a: f32, b: f32, c: f32) -> f32 {
  return mul_add_split(a, 0.0, b, c);
}

// (m.x + m.y) / (d.x + d.y) rounded once (what the CPU's f64 division rounded to f32 gives):
// an f32 quotient corrected by the exactly computed remainder.
fn df_div(m: vec2<f32>, d: vec2<f32>) -> f32 {
  let q0 = m.x / d.x;
  if (near_overflow(q0) || near_overflow(m.x) || near_overflow(d.x) || d.x == 0.0) {
    return df_value(m) / df_value(d);
  }
  let p = exact_product(q0, d.x);
  let remainder = ((m.x - p.x) - p.y) + m.y - q0 * d.y;
  return q0 + remainder / d.x;
}


// More double-float arithmetic (about 2^-44 relative), for the correctly rounded elementwise
// functions.
fn fast_two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  return vec2<f32>(s, b - (s - a)); // |a| >= |b|
}

fn df_sum(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let s = two_sum(a.x, b.x);
  let t = two_sum(a.y, b.y);
  let u = fast_two_sum(s.x, s.y + t.x);
  return fast_two_sum(u.x, u.y + t.y);
}

fn df_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let p = exact_product(a.x, b.x);
  return fast_two_sum(p.x, p.y + (a.x * b.y + a.y * b.x));
}

fn df_mul_f(a: vec2<f32>, b: f32) -> vec2<f32> {
  let p = exact_product(a.x, b);
  return fast_two_sum(p.x, p.y + a.y * b);
}

// ---- stored dtypes ---------------------------------------------------------------------------

// f16 bit pattern -> f32 bit pattern, exactly as src/storage/dtype.ts (NaN made quiet, payload kept).
fn f16_to_f32_bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let mant = h & 0x3ffu;
  if (e == 0x1fu) {
    if (mant == 0u) {
      return sign | 0x7f800000u;
    }
    return sign | 0x7fc00000u | (mant << 13u);
  }
  if (e != 0u) {
    return sign | ((e + 112u) << 23u) | (mant << 13u);
  }
  if (mant == 0u) {
    return sign;
  }
  // Subnormal f16: normalise the mantissa so its leading 1 becomes the implicit bit.
  let shift = 10u - firstLeadingBit(mant);
  return sign | ((113u - shift) << 23u) | (((mant << shift) & 0x3ffu) << 13u);
}

// Element i of a tensor stored as 16-bit values, two per u32 word (`word` holds element i).
fn half_at(word: u32, i: u32) -> u32 {
  return (word >> ((i & 1u) * 16u)) & 0xffffu;
}

fn bf16_at(word: u32, i: u32) -> f32 {
  return bitcast<f32>(half_at(word, i) << 16u);
}

fn f16_at(word: u32, i: u32) -> f32 {
  return bitcast<f32>(f16_to_f32_bits(half_at(word, i)));
}

// ---- TIES sign consensus (signConsensus) -------------------------------------------------------

// + where Σ W_j (a double-float) is >= 0 once rounded to f32, else -.
fn elected_sign(tot: vec2<f32>) -> f32 {
  return select(-1.0, 1.0, df_value(tot) >= 0.0);
}

// Adds W_j and its weight to the agreeing sums when W_j has the elected sign (exact zeros never do).
fn agree(m: ptr<function, vec2<f32>>, d: ptr<function, vec2<f32>>, wv: f32, sgn: f32, weight: f32) {
  if (wv * sgn > 0.0) {
    *m = df_add(*m, wv);
    *d = df_add(*d, weight);
  }
}

// Σ agreeing W_j, divided (normalize) by Σ agreeing weights unless that is 0.
fn consensus_result(m: vec2<f32>, d: vec2<f32>, normalize: bool) -> f32 {
  if (!normalize || df_value(d) == 0.0) {
    return df_value(m);
  }
  return df_div(m, d);
}

// ---- keepTopMagnitude ----------------------------------------------------------------------

fn signed_zero(v: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(v) & 0x80000000u);
}

// Like the CPU backend: v where |v| > t (bits `tbits`) or where a tie is kept; +0 for a dropped
// tie; v · 0 (a signed zero) elsewhere. NaN counts as larger than any threshold.
fn keep_magnitude(v: f32, tbits: u32, keep_tie: bool) -> f32 {
  let m = bitcast<u32>(v) & 0x7fffffffu;
  if (m > tbits || (keep_tie && m == tbits)) {
    return v;
  }
  if (m == tbits) {
    return 0.0;
  }
  return signed_zero(v);
}
