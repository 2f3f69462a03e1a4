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

fn two_product(a: f32, b: f32) -> vec2<f32> {
  let p = a * b;
  let sa = split(a);
  let sb = split(b);
  let err = ((sa.x * sb.x - p) + sa.x * sb.y + sa.y * sb.x) + sa.y * sb.y;
  return vec2<f32>(p, err);
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

// (wh + wl)·x + c rounded once to f32, where wh + wl is an f64 weight split into two f32s: what
// the CPU backend's `acc += w * x` gives (f64 product, one rounding to the f32 accumulator), up
// to a double rounding in the last step that is astronomically rare.
fn mul_add_split(wh: f32, wl: f32, x: f32, c: f32) -> f32 {
  let p = exact_product(wh, x);
  if (near_overflow(p.x) || near_overflow(c)) {
    return wh * x + c; // near overflow, Inf or NaN: the error terms are meaningless
  }
  let s = two_sum(c, p.x);
  return s.x + (s.y + (p.y + wl * x));
}

// a·b + c rounded once.
fn mul_add(a: f32, b: f32, c: f32) -> f32 {
  return mul_add_split(a, 0.0, b, c);
}
