// AssemblyScript: the SIMD kernels of SimdCpuBackend (src/backend/cpu/simd). Built by
// `npm run build:wasm` (scripts/build-wasm.mjs) with `--enable simd -O3`.
//
// Every kernel reproduces one loop of the reference CpuBackend (src/backend/cpu/cpu-backend.ts)
// bit for bit. The reference computes f32 arithmetic on JS numbers, which (a) quiets a signalling
// NaN whenever a value passes through a number and (b) rounds + − × ÷ √ of f32 operands the same
// as f32 arithmetic; where it accumulates in f64 these kernels use f64 lanes in the same order.
//
// Pointers are byte offsets into this module's memory. The host pads every vector to a multiple
// of 64 bytes, so kernels run whole groups of 4 or 8 lanes past `n` (the extra lanes are never
// read back) and need no scalar tails — except reductions, which stop at `n` exactly.

// ---- helpers -------------------------------------------------------------------------------

// A JS number carrying an f32 NaN makes it quiet (the x86 conversion sets the quiet bit).
@inline function quiet(v: v128): v128 {
  return v128.or(v, v128.and(f32x4.ne(v, v), i32x4.splat(0x00400000)));
}
@inline function ones(mask: v128): v128 {
  return v128.and(mask, f32x4.splat(1.0));
}
@inline function lo64(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}
@inline function hi64(v: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
}
@inline function join32(lo: v128, hi: v128): v128 {
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}
/** f64 lanes rounded to f32 and back: Math.fround inside an f64 expression. */
@inline function round64(v: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(v));
}

/** Four f32 at byte offset `i` of an f32 vector, or decoded from the bf16 vector at `p` (`bf16`). */
@inline function loadTerm(p: usize, i: usize, bf16: bool): v128 {
  return bf16 ? bf16Low(v128.load64_zero(p + (i >> 1))) : v128.load(p + i);
}

/**
 * The f32 of the four bf16 in the low half of `v`: each the upper half of an f32 whose lower half
 * is 0, interleaved with zeros in one unpack (a widening and a shift took two).
 */
@inline function bf16Low(v: v128): v128 {
  return v128.shuffle<i16>(i16x8.splat(0), v, 0, 8, 1, 9, 2, 10, 3, 11);
}
/** The f32 of the four bf16 in the high half of `v`. */
@inline function bf16High(v: v128): v128 {
  return v128.shuffle<i16>(i16x8.splat(0), v, 4, 12, 5, 13, 6, 14, 7, 15);
}

export function heapBase(): usize {
  return __heap_base;
}

// ---- decode / encode ------------------------------------------------------------------------

export function decodeBf16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i += 8) {
    const v = v128.load(src + ((<usize>i) << 1));
    const d = dst + ((<usize>i) << 2);
    v128.store(d, bf16Low(v));
    v128.store(d, bf16High(v), 16);
  }
}

@inline function f16ToF32(h: v128): v128 {
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const exp = v128.and(i32x4.shr_u(h, 10), i32x4.splat(0x1f));
  const mant = v128.and(h, i32x4.splat(0x3ff));
  const normal = v128.or(i32x4.shl(i32x4.add(exp, i32x4.splat(112)), 23), i32x4.shl(mant, 13));
  // Inf stays Inf; NaN keeps its payload and is made quiet (the reference's table).
  const special = v128.or(
    i32x4.splat(0x7f800000),
    v128.and(v128.or(i32x4.splat(0x00400000), i32x4.shl(mant, 13)), i32x4.ne(mant, i32x4.splat(0))),
  );
  // Subnormal (and zero): mant · 2^-24, exact in f32.
  const sub = f32x4.mul(f32x4.convert_i32x4_s(mant), f32x4.splat(5.9604644775390625e-8));
  const bits = v128.bitselect(
    special,
    v128.bitselect(sub, normal, i32x4.eq(exp, i32x4.splat(0))),
    i32x4.eq(exp, i32x4.splat(0x1f)),
  );
  return v128.or(sign, bits);
}

export function decodeF16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i += 8) {
    const v = v128.load(src + ((<usize>i) << 1));
    const d = dst + ((<usize>i) << 2);
    v128.store(d, f16ToF32(i32x4.extend_low_i16x8_u(v)));
    v128.store(d, f16ToF32(i32x4.extend_high_i16x8_u(v)), 16);
  }
}

@inline function f32ToBf16(x: v128): v128 {
  const high = i32x4.shr_u(x, 16);
  // NaN: truncation could clear every mantissa bit, so force the quiet bit (as the reference).
  const nan = i32x4.gt_s(v128.and(x, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(x, i32x4.splat(0x7fff)), v128.and(high, i32x4.splat(1))), 16);
  return v128.bitselect(v128.or(high, i32x4.splat(0x40)), rounded, nan);
}

export function encodeBf16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i += 8) {
    const s = src + ((<usize>i) << 2);
    const a = f32ToBf16(v128.load(s));
    const b = f32ToBf16(v128.load(s, 16));
    v128.store(dst + ((<usize>i) << 1), i16x8.narrow_i32x4_u(a, b));
  }
}

@inline function f32ToF16(x: v128): v128 {
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000));
  const abs = v128.and(x, i32x4.splat(0x7fffffff));
  const nan = i32x4.gt_s(abs, i32x4.splat(0x7f800000));
  const over = v128.bitselect(
    v128.or(i32x4.splat(0x7e00), v128.and(i32x4.shr_u(abs, 13), i32x4.splat(0x3ff))),
    i32x4.splat(0x7c00),
    nan,
  );
  const normal = i32x4.shr_u(
    i32x4.add(i32x4.add(i32x4.sub(abs, i32x4.splat(0x38000000)), i32x4.splat(0xfff)), v128.and(i32x4.shr_u(abs, 13), i32x4.splat(1))),
    13,
  );
  // Below the smallest normal f16: adding 0.5 puts the f16 subnormal step (2^-24) at the f32
  // ulp, so the FPU's round-to-nearest-even does the rounding (to 0 below 2^-25, to 0x400 at the top).
  const small = i32x4.sub(f32x4.add(abs, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  const h = v128.bitselect(
    v128.bitselect(over, normal, i32x4.gt_s(abs, i32x4.splat(0x477fefff))),
    small,
    i32x4.gt_s(abs, i32x4.splat(0x387fffff)),
  );
  return v128.or(sign, h);
}

export function encodeF16(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i += 8) {
    const s = src + ((<usize>i) << 2);
    const a = f32ToF16(v128.load(s));
    const b = f32ToF16(v128.load(s, 16));
    v128.store(dst + ((<usize>i) << 1), i16x8.narrow_i32x4_u(a, b));
  }
}

// ---- elementwise ------------------------------------------------------------------------------

const ADD = 0, SUB = 1, MUL = 2, DIV = 3;

// V8 evaluates the reference's `x + y` and `x * y` with the operands swapped, so of two NaNs the
// second one's payload comes out; − and ÷ keep the order (the first NaN wins). Same here.
@inline function arith(op: i32, a: v128, b: v128): v128 {
  if (op == ADD) return f32x4.add(b, a);
  if (op == SUB) return f32x4.sub(a, b);
  if (op == MUL) return f32x4.mul(b, a);
  return f32x4.div(a, b);
}

// One loop per operation and kind of operands (the tests are hoisted by hand: -O3 does not
// unswitch loops). `aBf16`/`bBf16`: the operand is a raw bf16 input, decoded in the sweep (see loadTerm).
export function binaryVV(op: i32, a: usize, aBf16: bool, b: usize, bBf16: bool, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  if (op == ADD) binaryOperands(ADD, a, aBf16, b, bBf16, o, end);
  else if (op == SUB) binaryOperands(SUB, a, aBf16, b, bBf16, o, end);
  else if (op == MUL) binaryOperands(MUL, a, aBf16, b, bBf16, o, end);
  else binaryOperands(DIV, a, aBf16, b, bBf16, o, end);
}

@inline function binaryOperands(op: i32, a: usize, aBf16: bool, b: usize, bBf16: bool, o: usize, end: usize): void {
  if (aBf16) {
    if (bBf16) binarySweep(op, a, true, b, true, o, end);
    else binarySweep(op, a, true, b, false, o, end);
  } else if (bBf16) binarySweep(op, a, false, b, true, o, end);
  else binarySweep(op, a, false, b, false, o, end);
}

@inline function binarySweep(op: i32, a: usize, aBf16: bool, b: usize, bBf16: bool, o: usize, end: usize): void {
  for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(op, loadTerm(a, i, aBf16), loadTerm(b, i, bBf16)));
}

/** vector (op) scalar */
export function binaryVS(op: i32, a: usize, s: f32, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const b = f32x4.splat(s);
  if (op == ADD) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(ADD, v128.load(a + i), b));
  else if (op == SUB) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(SUB, v128.load(a + i), b));
  else if (op == MUL) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(MUL, v128.load(a + i), b));
  else for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(DIV, v128.load(a + i), b));
}

/** scalar (op) vector */
export function binarySV(op: i32, s: f32, b: usize, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const a = f32x4.splat(s);
  if (op == SUB) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(SUB, a, v128.load(b + i)));
  else for (let i: usize = 0; i < end; i += 16) v128.store(o + i, arith(DIV, a, v128.load(b + i)));
}

const MIN = 0, MAX = 1, GT = 2, GE = 3, EQ = 4;

@inline function compare(op: i32, x: v128, y: v128): v128 {
  // min: x < y || x is NaN ? x : y (a select, not IEEE min: min(±0, ∓0) is the second operand).
  if (op == MIN) return quiet(v128.bitselect(x, y, v128.or(f32x4.lt(x, y), f32x4.ne(x, x))));
  if (op == MAX) return quiet(v128.bitselect(x, y, v128.or(f32x4.gt(x, y), f32x4.ne(x, x))));
  if (op == GT) return ones(f32x4.gt(x, y));
  if (op == GE) return ones(f32x4.ge(x, y));
  return ones(f32x4.eq(x, y));
}

export function compareVV(op: i32, a: usize, b: usize, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  if (op == MIN) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(MIN, v128.load(a + i), v128.load(b + i)));
  else if (op == MAX) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(MAX, v128.load(a + i), v128.load(b + i)));
  else if (op == GT) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(GT, v128.load(a + i), v128.load(b + i)));
  else if (op == GE) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(GE, v128.load(a + i), v128.load(b + i)));
  else for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(EQ, v128.load(a + i), v128.load(b + i)));
}

export function compareVS(op: i32, a: usize, s: f32, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const b = f32x4.splat(s);
  if (op == MIN) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(MIN, v128.load(a + i), b));
  else if (op == MAX) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(MAX, v128.load(a + i), b));
  else if (op == GT) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(GT, v128.load(a + i), b));
  else if (op == GE) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(GE, v128.load(a + i), b));
  else for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(EQ, v128.load(a + i), b));
}

export function compareSV(op: i32, s: f32, b: usize, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const a = f32x4.splat(s);
  if (op == MIN) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(MIN, a, v128.load(b + i)));
  else if (op == MAX) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(MAX, a, v128.load(b + i)));
  else if (op == GT) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(GT, a, v128.load(b + i)));
  else if (op == GE) for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(GE, a, v128.load(b + i)));
  else for (let i: usize = 0; i < end; i += 16) v128.store(o + i, compare(EQ, a, v128.load(b + i)));
}

const NEG = 0, ABS = 1, SIGN = 2, SQRT = 3;

export function unary(op: i32, a: usize, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  if (op == NEG) {
    for (let i: usize = 0; i < end; i += 16) v128.store(o + i, v128.xor(quiet(v128.load(a + i)), i32x4.splat(0x80000000)));
  } else if (op == ABS) {
    for (let i: usize = 0; i < end; i += 16) v128.store(o + i, v128.and(quiet(v128.load(a + i)), i32x4.splat(0x7fffffff)));
  } else if (op == SIGN) {
    const zero = f32x4.splat(0);
    for (let i: usize = 0; i < end; i += 16) {
      const v = v128.load(a + i);
      // +(v > 0) - +(v < 0): ±0 → +0; NaN passes through (quiet).
      const s = v128.or(v128.and(f32x4.gt(v, zero), f32x4.splat(1)), v128.and(f32x4.lt(v, zero), f32x4.splat(-1)));
      v128.store(o + i, v128.bitselect(quiet(v), s, f32x4.ne(v, v)));
    }
  } else {
    for (let i: usize = 0; i < end; i += 16) v128.store(o + i, f32x4.sqrt(v128.load(a + i)));
  }
}

/**
 * cond ≠ 0 ? a : b; `aPtr`/`bPtr` 0 means the scalar `as`/`bs`. Not quieted: V8's optimised code
 * for the reference's select moves the f32 bits unchanged (only its interpreter quiets a
 * signalling NaN), and the optimised code is what runs on real tensors.
 */
export function where(c: usize, aPtr: usize, as: f32, bPtr: usize, bs: f32, o: usize, n: i32): void {
  const end = (<usize>n) << 2;
  const zero = f32x4.splat(0);
  const av = f32x4.splat(as);
  const bv = f32x4.splat(bs);
  for (let i: usize = 0; i < end; i += 16) {
    const x = aPtr ? v128.load(aPtr + i) : av;
    const y = bPtr ? v128.load(bPtr + i) : bv;
    v128.store(o + i, v128.bitselect(x, y, f32x4.ne(v128.load(c + i), zero)));
  }
}

export function fill(o: usize, n: i32, value: f32): void {
  const end = (<usize>n) << 2;
  const v = f32x4.splat(value);
  for (let i: usize = 0; i < end; i += 16) v128.store(o + i, v);
}

// ---- weightedSum: f64 lanes, as the reference's `o[i] += w * x[i]` ------------------------------

/**
 * Four f32 of a term at byte offset `i`: the vector at `p` (decoded from bf16 when `pBf16`, a
 * bf16 being the top half of an f32), minus the vector at `m` when `diff` (the f32 subtraction
 * `sub` makes, for a difference a sweep takes before it is written anywhere). The sweeps are
 * called with constant flags for the usual terms, so that the tests leave their loops (-O3 does
 * not unswitch loops).
 */
@inline function loadDiff(p: usize, pBf16: bool, m: usize, mBf16: bool, diff: bool, i: usize): v128 {
  const x = loadTerm(p, i, pBf16);
  return diff ? f32x4.sub(x, loadTerm(m, i, mBf16)) : x;
}

/**
 * o = fround(o + w·x) (o = +0 when `first`); the weight is a scalar (f64) when `wPtr` is 0, and the
 * term x is as loadDiff reads it (a difference when `xm` is not 0).
 */
export function accumulate1(o: usize, first: bool, x: usize, xBf16: bool, xm: usize, xmBf16: bool, wPtr: usize, w: f64, n: i32): void {
  // Raw bf16 inputs, or task vectors of them, with a scalar weight: linear and task arithmetic.
  if (wPtr == 0 && xBf16 && (xm == 0 || xmBf16)) {
    if (xm == 0) {
      if (first) accumulate1Sweep(o, true, x, true, 0, false, false, 0, w, n);
      else accumulate1Sweep(o, false, x, true, 0, false, false, 0, w, n);
    } else if (first) accumulate1Sweep(o, true, x, true, xm, true, true, 0, w, n);
    else accumulate1Sweep(o, false, x, true, xm, true, true, 0, w, n);
  } else accumulate1Sweep(o, first, x, xBf16, xm, xmBf16, xm != 0, wPtr, w, n);
}

@inline function accumulate1Sweep(o: usize, first: bool, x: usize, xBf16: bool, xm: usize, xmBf16: bool, xDiff: bool, wPtr: usize, w: f64, n: i32): void {
  const end = (<usize>n) << 2;
  const ws = f64x2.splat(w);
  const zero = f64x2.splat(0);
  for (let i: usize = 0; i < end; i += 16) {
    const xv = loadDiff(x, xBf16, xm, xmBf16, xDiff, i);
    let wl = ws, wh = ws;
    if (wPtr) {
      const wv = v128.load(wPtr + i);
      wl = lo64(wv);
      wh = hi64(wv);
    }
    let ol = zero, oh = zero;
    if (!first) {
      const ov = v128.load(o + i);
      ol = lo64(ov);
      oh = hi64(ov);
    }
    v128.store(o + i, join32(f64x2.add(f64x2.mul(lo64(xv), wl), ol), f64x2.add(f64x2.mul(hi64(xv), wh), oh)));
  }
}

/** o = fround(fround(o + wx·x) + wy·y), two terms per sweep (each as loadDiff reads it). */
export function accumulate2(
  o: usize, first: bool,
  x: usize, xBf16: bool, xm: usize, xmBf16: bool, wxPtr: usize, wx: f64,
  y: usize, yBf16: bool, ym: usize, ymBf16: bool, wyPtr: usize, wy: f64,
  n: i32,
): void {
  // Two raw bf16 inputs, or two task vectors of them, with scalar weights: linear and task arithmetic.
  if (wxPtr == 0 && wyPtr == 0 && xBf16 && yBf16 && ((xm == 0 && ym == 0) || (xm != 0 && ym != 0 && xmBf16 && ymBf16))) {
    if (xm == 0) {
      if (first) accumulate2Sweep(o, true, x, true, 0, false, false, 0, wx, y, true, 0, false, false, 0, wy, n);
      else accumulate2Sweep(o, false, x, true, 0, false, false, 0, wx, y, true, 0, false, false, 0, wy, n);
    } else if (first) accumulate2Sweep(o, true, x, true, xm, true, true, 0, wx, y, true, ym, true, true, 0, wy, n);
    else accumulate2Sweep(o, false, x, true, xm, true, true, 0, wx, y, true, ym, true, true, 0, wy, n);
  } else accumulate2Sweep(o, first, x, xBf16, xm, xmBf16, xm != 0, wxPtr, wx, y, yBf16, ym, ymBf16, ym != 0, wyPtr, wy, n);
}

@inline function accumulate2Sweep(
  o: usize, first: bool,
  x: usize, xBf16: bool, xm: usize, xmBf16: bool, xDiff: bool, wxPtr: usize, wx: f64,
  y: usize, yBf16: bool, ym: usize, ymBf16: bool, yDiff: bool, wyPtr: usize, wy: f64,
  n: i32,
): void {
  const end = (<usize>n) << 2;
  const wxs = f64x2.splat(wx);
  const wys = f64x2.splat(wy);
  const zero = f64x2.splat(0);
  for (let i: usize = 0; i < end; i += 16) {
    const xv = loadDiff(x, xBf16, xm, xmBf16, xDiff, i);
    const yv = loadDiff(y, yBf16, ym, ymBf16, yDiff, i);
    let wxl = wxs, wxh = wxs, wyl = wys, wyh = wys;
    if (wxPtr) {
      const wv = v128.load(wxPtr + i);
      wxl = lo64(wv);
      wxh = hi64(wv);
    }
    if (wyPtr) {
      const wv = v128.load(wyPtr + i);
      wyl = lo64(wv);
      wyh = hi64(wv);
    }
    let ol = zero, oh = zero;
    if (!first) {
      const ov = v128.load(o + i);
      ol = lo64(ov);
      oh = hi64(ov);
    }
    const tl = round64(f64x2.add(f64x2.mul(lo64(xv), wxl), ol));
    const th = round64(f64x2.add(f64x2.mul(hi64(xv), wxh), oh));
    v128.store(o + i, join32(f64x2.add(f64x2.mul(lo64(yv), wyl), tl), f64x2.add(f64x2.mul(hi64(yv), wyh), th)));
  }
}

// ---- reductions (f64, strictly in index order like the reference) -------------------------------

/**
 * The f64 sum of `n` f32 in index order, each first ANDed with `mask`: 0xffffffff, or 0x7fffffff
 * for the sum of magnitudes (the bytes of unary ABS then sum: its quieting of NaN is the
 * promotion's own).
 */
export function sum(x: usize, n: i32, mask: u32): f64 {
  let s: f64 = 0;
  const end = x + ((<usize>n) << 2);
  for (let p = x; p < end; p += 4) s = <f64>reinterpret<f32>(load<u32>(p) & mask) + s;
  return s;
}

export function dot(x: usize, y: usize, n: i32): f64 {
  let s: f64 = 0;
  for (let i: usize = 0, end = (<usize>n) << 2; i < end; i += 4) s = <f64>(load<f32>(y + i) * load<f32>(x + i)) + s;
  return s;
}

// Several dot products and sums in one sweep. Each is the chain of `dot` or `sum` above,
// unchanged: its values (a dot's products y·x rounded to f32) promoted and added to its own f64
// sum strictly in index order. Two chains of one kind share an f64x2 (lane 0 the first, lane 1 the
// second); the independent pairs of a sweep overlap in the CPU where `dot` and `sum` wait on each
// add before the next.

/** A pair of dot chains (type argument of the sweeps below). */
type Dots = i32;
/** A pair of sum chains: their `y` slots hold the mask each value is ANDed with (see `sum`). */
type Sums = f32;

/** The sums `s` of a pair plus the first `k` (1-4) of their values `pa` (lane 0) and `pb` (lane 1). */
@inline function addValues(s: v128, pa: v128, pb: v128, k: i32): v128 {
  const lo = v128.shuffle<f32>(pa, pb, 0, 4, 1, 5); // a0 b0 a1 b1
  s = f64x2.add(f64x2.promote_low_f32x4(lo), s);
  if (k > 1) s = f64x2.add(f64x2.promote_low_f32x4(v128.shuffle<f32>(lo, lo, 2, 3, 2, 3)), s);
  if (k > 2) {
    const hi = v128.shuffle<f32>(pa, pb, 2, 6, 3, 7); // a2 b2 a3 b3
    s = f64x2.add(f64x2.promote_low_f32x4(hi), s);
    if (k > 3) s = f64x2.add(f64x2.promote_low_f32x4(v128.shuffle<f32>(hi, hi, 2, 3, 2, 3)), s);
  }
  return s;
}

/** The chains of pair `j` of the table `t` over the 4 elements at byte `i`, the first `k` of them added. */
@inline function pairStep<T>(s: v128, t: usize, j: i32, i: usize, k: i32): v128 {
  const xa = ptr(t, 4 * j), xb = ptr(t, 4 * j + 2);
  if (isFloat<T>()) {
    const ma = i32x4.splat(<i32>ptr(t, 4 * j + 1)), mb = i32x4.splat(<i32>ptr(t, 4 * j + 3));
    return addValues(s, v128.and(v128.load(xa + i), ma), v128.and(v128.load(xb + i), mb), k);
  }
  const ya = ptr(t, 4 * j + 1), yb = ptr(t, 4 * j + 3);
  return addValues(s, f32x4.mul(v128.load(ya + i), v128.load(xa + i)), f32x4.mul(v128.load(yb + i), v128.load(xb + i)), k);
}

@inline function ptr(t: usize, j: i32): usize {
  return <usize>load<u32>(t + ((<usize>j) << 2));
}

// The sweeps read their pointers from the table once per step: V8 keeps what fits in registers
// and reloads the rest from the stack either way, and the table stays in L1.

function sweep1<A>(t: usize, n: i32, out: usize): void {
  const end = (<usize>n) << 2;
  const body = end & ~(<usize>15);
  let s0 = f64x2.splat(0);
  let i: usize = 0;
  for (; i < body; i += 16) s0 = pairStep<A>(s0, t, 0, i, 4);
  const k = <i32>((end - body) >> 2);
  if (k > 0) s0 = pairStep<A>(s0, t, 0, i, k);
  v128.store(out, s0);
}

function sweep2<A, B>(t: usize, n: i32, out: usize): void {
  const end = (<usize>n) << 2;
  const body = end & ~(<usize>15);
  let s0 = f64x2.splat(0), s1 = s0;
  let i: usize = 0;
  for (; i < body; i += 16) {
    s0 = pairStep<A>(s0, t, 0, i, 4);
    s1 = pairStep<B>(s1, t, 1, i, 4);
  }
  const k = <i32>((end - body) >> 2);
  if (k > 0) {
    s0 = pairStep<A>(s0, t, 0, i, k);
    s1 = pairStep<B>(s1, t, 1, i, k);
  }
  v128.store(out, s0);
  v128.store(out, s1, 16);
}

function sweep3<A, B, C>(t: usize, n: i32, out: usize): void {
  const end = (<usize>n) << 2;
  const body = end & ~(<usize>15);
  let s0 = f64x2.splat(0), s1 = s0, s2 = s0;
  let i: usize = 0;
  for (; i < body; i += 16) {
    s0 = pairStep<A>(s0, t, 0, i, 4);
    s1 = pairStep<B>(s1, t, 1, i, 4);
    s2 = pairStep<C>(s2, t, 2, i, 4);
  }
  const k = <i32>((end - body) >> 2);
  if (k > 0) {
    s0 = pairStep<A>(s0, t, 0, i, k);
    s1 = pairStep<B>(s1, t, 1, i, k);
    s2 = pairStep<C>(s2, t, 2, i, k);
  }
  v128.store(out, s0);
  v128.store(out, s1, 16);
  v128.store(out, s2, 32);
}

/**
 * `dotPairs` pairs of dot products followed by `sumPairs` pairs of sums (1-3 pairs in all) of `n`
 * elements in one sweep: the table at `t` holds each pair's pointers xa, ya, xb, yb (u32; a sum's
 * y is the mask of `sum`); the results go to `out` as f64, two per pair (a, then b). The last partial group of
 * 4 elements is loaded whole (vectors are padded) but only its first n mod 4 values are added.
 * More than 3 pairs in one loop measured slower than two sweeps (the pointers no longer fit in
 * registers): the host splits larger sets.
 */
export function chains(t: usize, dotPairs: i32, sumPairs: i32, n: i32, out: usize): void {
  const pairs = dotPairs + sumPairs;
  if (pairs == 1) {
    if (dotPairs == 1) sweep1<Dots>(t, n, out);
    else sweep1<Sums>(t, n, out);
  } else if (pairs == 2) {
    if (dotPairs == 2) sweep2<Dots, Dots>(t, n, out);
    else if (dotPairs == 1) sweep2<Dots, Sums>(t, n, out);
    else sweep2<Sums, Sums>(t, n, out);
  } else {
    if (dotPairs == 3) sweep3<Dots, Dots, Dots>(t, n, out);
    else if (dotPairs == 2) sweep3<Dots, Dots, Sums>(t, n, out);
    else if (dotPairs == 1) sweep3<Dots, Sums, Sums>(t, n, out);
    else sweep3<Sums, Sums, Sums>(t, n, out);
  }
}

/** Term `j` (0-3) of a gram table: its address, and whether it is raw bf16. */
@inline function gramTerm(t: usize, j: i32, i: usize): v128 {
  return loadTerm(<usize>load<u32>(t + ((<usize>j) << 3)), i, load<u32>(t + ((<usize>j) << 3), 4) != 0);
}

/**
 * The Gram matrix of `count` (2 or 3) differences with one subtrahend, x = a − s, y = b − s,
 * z = c − s, without writing them: the table at `t` holds s, a, b (, c), each as an address and
 * a raw-bf16 flag (u32 pairs), read as loadTerm reads them and subtracted as `sub` does. The dots
 * go to `out` as f64 in the order x·x, x·y (, x·z), y·y (, y·z, z·z), each exactly what `chains`
 * gives for the dot of the written vectors (the same products, added in index order; the last
 * partial group of 4 is loaded whole and only its first n mod 4 products added).
 */
export function gram(t: usize, count: i32, n: i32, out: usize): void {
  const end = (<usize>n) << 2;
  const body = end & ~(<usize>15);
  let s0 = f64x2.splat(0), s1 = s0, s2 = s0;
  for (let i: usize = 0; i < end; i += 16) {
    const k = i < body ? 4 : <i32>((end - body) >> 2);
    const base = gramTerm(t, 0, i);
    const x = f32x4.sub(gramTerm(t, 1, i), base), y = f32x4.sub(gramTerm(t, 2, i), base);
    s0 = addValues(s0, f32x4.mul(x, x), f32x4.mul(y, x), k);
    if (count == 2) {
      const yy = f32x4.mul(y, y);
      s1 = addValues(s1, yy, yy, k);
    } else {
      const z = f32x4.sub(gramTerm(t, 3, i), base);
      s1 = addValues(s1, f32x4.mul(z, x), f32x4.mul(y, y), k);
      s2 = addValues(s2, f32x4.mul(z, y), f32x4.mul(z, z), k);
    }
  }
  v128.store(out, s0);
  if (count == 2) {
    store<f64>(out, f64x2.extract_lane(s1, 0), 16);
  } else {
    v128.store(out, s1, 16);
    v128.store(out, s2, 32);
  }
}

export function rowSums(x: usize, rows: i32, cols: i32, out: usize): void {
  for (let r = 0; r < rows; r++) {
    store<f64>(out + ((<usize>r) << 3), sum(x + (<usize>r) * (<usize>cols) * 4, cols, 0xffffffff));
  }
}

export function rowSumBroadcast(x: usize, rows: i32, cols: i32, o: usize): void {
  for (let r = 0; r < rows; r++) {
    const at = (<usize>r) * (<usize>cols) * 4;
    const s = <f32>sum(x + at, cols, 0xffffffff);
    for (let i: usize = 0, end = (<usize>cols) << 2; i < end; i += 4) store<f32>(o + at + i, s);
  }
}

/** Column-residue sums: sums[j] += x[i] for flat index ≡ j (mod period), starting at residue j0. */
export function periodicSums(x: usize, n: i32, j0: i32, period: i32, sums: usize): void {
  memory.fill(sums, 0, (<usize>period) << 3);
  let j = j0;
  for (let i = 0; i < n; ) {
    const run = min(period - j, n - i);
    const src = x + ((<usize>i) << 2);
    const dst = sums + ((<usize>j) << 3);
    for (let k: usize = 0; k < <usize>run; k++) store<f64>(dst + (k << 3), <f64>load<f32>(src + (k << 2)) + load<f64>(dst + (k << 3)));
    i += run;
    j = 0;
  }
}

export function periodic(values: usize, period: i32, j0: i32, o: usize, n: i32): void {
  let j = j0;
  for (let i = 0; i < n; ) {
    const run = min(period - j, n - i);
    const dst = o + ((<usize>i) << 2);
    const src = values + ((<usize>j) << 3);
    for (let k: usize = 0; k < <usize>run; k++) store<f32>(dst + (k << 2), <f32>load<f64>(src + (k << 3)));
    i += run;
    j = 0;
  }
}

/** Row r of the chunk gets fround(values[r]). */
export function perRow(values: usize, rows: i32, cols: i32, o: usize): void {
  for (let r = 0; r < rows; r++) {
    const v = f32x4.splat(<f32>load<f64>(values + ((<usize>r) << 3)));
    const at = o + (<usize>r) * (<usize>cols) * 4;
    const end = (<usize>cols) << 2;
    let i: usize = 0;
    for (; i + 16 <= end; i += 16) v128.store(at + i, v);
    for (; i < end; i += 4) store<f32>(at + i, f32x4.extract_lane(v, 0));
  }
}

/**
 * The histogram of the upper 16 bits of |x| (high < 0), or of the lower 16 of the elements whose
 * upper 16 are `high`, into 65536 u32 bins at `hist`; x as loadDiff reads it (a task vector not
 * written yet).
 */
export function magnitudeHistogram(x: usize, xBf16: bool, xm: usize, xmBf16: bool, n: i32, high: i32, hist: usize): void {
  memory.fill(hist, 0, 65536 << 2);
  if (xm == 0) {
    if (xBf16) histogramSweep(x, true, 0, false, false, n, high, hist);
    else histogramSweep(x, false, 0, false, false, n, high, hist);
  } else if (xBf16 && xmBf16) histogramSweep(x, true, xm, true, true, n, high, hist);
  else if (!xBf16 && !xmBf16) histogramSweep(x, false, xm, false, true, n, high, hist);
  else histogramSweep(x, xBf16, xm, xmBf16, true, n, high, hist);
}

/** Four elements at a time; the last partial group is loaded whole (vectors are padded), its first n mod 4 counted. */
@inline function histogramSweep(x: usize, xBf16: bool, xm: usize, xmBf16: bool, diff: bool, n: i32, high: i32, hist: usize): void {
  const end = (<usize>n) << 2;
  const want = i32x4.splat(high);
  for (let i: usize = 0; i < end; i += 16) {
    const lanes = i + 16 <= end ? 4 : <i32>((end - i) >> 2);
    const m = v128.and(loadDiff(x, xBf16, xm, xmBf16, diff, i), i32x4.splat(0x7fffffff));
    if (high < 0) {
      const upper = i32x4.shr_u(m, 16);
      countBin(hist, <u32>i32x4.extract_lane(upper, 0));
      if (lanes > 1) countBin(hist, <u32>i32x4.extract_lane(upper, 1));
      if (lanes > 2) countBin(hist, <u32>i32x4.extract_lane(upper, 2));
      if (lanes > 3) countBin(hist, <u32>i32x4.extract_lane(upper, 3));
    } else if (v128.any_true(i32x4.eq(i32x4.shr_u(m, 16), want))) {
      // Few elements have the upper digit `high`: four are tested at once, and counted one by one
      // only where one of them has it.
      lowerBin(hist, <u32>i32x4.extract_lane(m, 0), high);
      if (lanes > 1) lowerBin(hist, <u32>i32x4.extract_lane(m, 1), high);
      if (lanes > 2) lowerBin(hist, <u32>i32x4.extract_lane(m, 2), high);
      if (lanes > 3) lowerBin(hist, <u32>i32x4.extract_lane(m, 3), high);
    }
  }
}

/** One more in u32 counter `index` of the array at `counts`. */
@inline function countBin(counts: usize, index: u32): void {
  const at = counts + ((<usize>index) << 2);
  store<u32>(at, load<u32>(at) + 1);
}

/** Counts the lower digit of magnitude bits `b` where its upper digit is `high`. */
@inline function lowerBin(hist: usize, b: u32, high: i32): void {
  if (<i32>(b >>> 16) == high) countBin(hist, b & 0xffff);
}

/**
 * The non-empty bins of a dense histogram of `n` u32 bins (n a multiple of 16), ascending: their
 * indices as u16 into `bins`, their counts into `counts`; returns how many. Skips empty runs of
 * 16 bins with one vector test each (a chunk's magnitudes fill a few thousand of 65536 bins).
 */
export function sparseBins(hist: usize, n: i32, bins: usize, counts: usize): i32 {
  let k: usize = 0;
  const end = hist + ((<usize>n) << 2);
  for (let p = hist; p < end; p += 64) {
    const any = v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48)));
    if (!v128.any_true(any)) continue;
    for (let q = p; q < p + 64; q += 4) {
      const c = load<u32>(q);
      if (c == 0) continue;
      store<u16>(bins + (k << 1), <u16>((q - hist) >>> 2));
      store<u32>(counts + (k << 2), c);
      k++;
    }
  }
  return <i32>k;
}

// ---- selection -----------------------------------------------------------------------------------

/** keepTopMagnitude of x as loadDiff reads it (a task vector not written yet); returns the tie count after this chunk. */
export function keepTop(x: usize, xBf16: bool, xm: usize, xmBf16: bool, o: usize, n: i32, t: f32, tiesBefore: f64, tiesAllowed: f64): f64 {
  if (xm == 0) {
    if (xBf16) return keepTopSweep(x, true, 0, false, false, o, n, t, tiesBefore, tiesAllowed);
    return keepTopSweep(x, false, 0, false, false, o, n, t, tiesBefore, tiesAllowed);
  }
  if (xBf16 && xmBf16) return keepTopSweep(x, true, xm, true, true, o, n, t, tiesBefore, tiesAllowed);
  if (!xBf16 && !xmBf16) return keepTopSweep(x, false, xm, false, true, o, n, t, tiesBefore, tiesAllowed);
  return keepTopSweep(x, xBf16, xm, xmBf16, true, o, n, t, tiesBefore, tiesAllowed);
}

@inline function keepTopSweep(x: usize, xBf16: bool, xm: usize, xmBf16: bool, diff: bool, o: usize, n: i32, t: f32, tiesBefore: f64, tiesAllowed: f64): f64 {
  const tv = f32x4.splat(t);
  let ties = tiesBefore;
  const end = (<usize>n) << 2;
  for (let i: usize = 0; i < end; i += 16) {
    const v = loadDiff(x, xBf16, xm, xmBf16, diff, i);
    const m = v128.and(v, i32x4.splat(0x7fffffff));
    // v · +(m > t): keeps -0 for negative v and NaN for ±Inf·0, as the reference.
    v128.store(o + i, f32x4.mul(v, ones(f32x4.gt(m, tv))));
    if (v128.any_true(f32x4.eq(m, tv))) {
      ties = keepTie(o + i, f32x4.extract_lane(v, 0), t, ties, tiesAllowed);
      if (i + 4 < end) ties = keepTie(o + i + 4, f32x4.extract_lane(v, 1), t, ties, tiesAllowed);
      if (i + 8 < end) ties = keepTie(o + i + 8, f32x4.extract_lane(v, 2), t, ties, tiesAllowed);
      if (i + 12 < end) ties = keepTie(o + i + 12, f32x4.extract_lane(v, 3), t, ties, tiesAllowed);
    }
  }
  return ties;
}

/** An element e at `at` whose magnitude is the threshold: kept while fewer than `allowed` ties were; the new tie count. */
@inline function keepTie(at: usize, e: f32, t: f32, ties: f64, allowed: f64): f64 {
  if (abs<f32>(e) != t) return ties;
  store<f32>(at, ties < allowed ? e : 0);
  return ties + 1;
}

/**
 * 1 where a term agrees with the elected sign, else 0: x > 0 where the sum is positive, x < 0
 * where not, as x with its sign flipped where not (`flip`, the sign bit there) > 0: NaN and ±0
 * never agree.
 */
@inline function agrees(x: v128, flip: v128): v128 {
  return ones(f32x4.gt(v128.xor(x, flip), f32x4.splat(0)));
}

/** The sign bit where `positive` is not set: the `flip` of agrees. */
@inline function flipOf(positive: v128): v128 {
  return v128.andnot(i32x4.splat(0x80000000), positive);
}

/** TIES consensus, two terms (the reference's unrolled path). */
export function signConsensus2(x0: usize, x1: usize, o: usize, n: i32, s0: f32, s1: f32, w0: f32, w1: f32, normalize: bool): void {
  if (normalize) signConsensus2Sweep(x0, 0, 0, x1, 0, 0, false, false, o, n, s0, s1, w0, w1, true);
  else signConsensus2Sweep(x0, 0, 0, x1, 0, 0, false, false, o, n, s0, s1, w0, w1, false);
}

@inline function signConsensus2Sweep(x0: usize, m0: usize, b0: usize, x1: usize, m1: usize, b1: usize, bf16: bool, kept: bool, o: usize, n: i32, s0: f32, s1: f32, w0: f32, w1: f32, normalize: bool): void {
  const end = (<usize>n) << 2;
  const zero = f32x4.splat(0);
  const w0v = f32x4.splat(w0);
  const w1v = f32x4.splat(w1);
  for (let i: usize = 0; i < end; i += 16) {
    const a = f32x4.mul(consensusTerm(x0, m0, b0, bf16, kept, i), f32x4.splat(s0));
    const b = f32x4.mul(consensusTerm(x1, m1, b1, bf16, kept, i), f32x4.splat(s1));
    const flip = flipOf(f32x4.ge(f32x4.add(b, a), zero));
    const ka = agrees(a, flip);
    const kb = agrees(b, flip);
    const ma = f32x4.mul(a, ka);
    const mb = f32x4.mul(b, kb);
    if (!normalize) {
      v128.store(o + i, f32x4.add(mb, ma));
      continue;
    }
    const da = f32x4.mul(w0v, ka);
    const db = f32x4.mul(w1v, kb);
    const dl = f64x2.add(lo64(db), lo64(da));
    const dh = f64x2.add(hi64(db), hi64(da));
    const d1l = f64x2.add(dl, v128.and(f64x2.eq(dl, f64x2.splat(0)), f64x2.splat(1)));
    const d1h = f64x2.add(dh, v128.and(f64x2.eq(dh, f64x2.splat(0)), f64x2.splat(1)));
    v128.store(o + i, join32(f64x2.div(f64x2.add(lo64(mb), lo64(ma)), d1l), f64x2.div(f64x2.add(hi64(mb), hi64(ma)), d1h)));
  }
}

/**
 * TIES consensus, three terms: signConsensusN's arithmetic in its order (f64 sums from +0, term by
 * term, the term first in each add), with the three scaled terms loaded and kept in registers.
 * Where only a sum's sign (≥ 0) or its being 0 counts, the first add of +0 is left out: it changes
 * nothing but a −0 into +0.
 */
export function signConsensus3(x0: usize, x1: usize, x2: usize, o: usize, n: i32, s0: f32, s1: f32, s2: f32, w0: f32, w1: f32, w2: f32, normalize: bool): void {
  if (normalize) signConsensus3Sweep(x0, 0, 0, x1, 0, 0, x2, 0, 0, false, false, o, n, s0, s1, s2, w0, w1, w2, true);
  else signConsensus3Sweep(x0, 0, 0, x1, 0, 0, x2, 0, 0, false, false, o, n, s0, s1, s2, w0, w1, w2, false);
}

/**
 * signConsensus2 or 3 (`count`) of terms kept by packed masks (DARE's and DELLA's output pass):
 * term j is x − xm, both bf16 (`bf16`) or both f32, times the 0/1 mask packed at `bits`, read as
 * keepBits writes it — without writing it. The table at `t` holds x, xm and bits of each term (u32).
 */
export function signConsensusKept(t: usize, count: i32, bf16: bool, o: usize, n: i32, s0: f32, s1: f32, s2: f32, w0: f32, w1: f32, w2: f32, normalize: bool): void {
  const x0 = <usize>load<u32>(t), m0 = <usize>load<u32>(t, 4), b0 = <usize>load<u32>(t, 8);
  const x1 = <usize>load<u32>(t, 12), m1 = <usize>load<u32>(t, 16), b1 = <usize>load<u32>(t, 20);
  const x2 = <usize>load<u32>(t, 24), m2 = <usize>load<u32>(t, 28), b2 = <usize>load<u32>(t, 32);
  if (count == 2) {
    if (bf16) {
      if (normalize) signConsensus2Sweep(x0, m0, b0, x1, m1, b1, true, true, o, n, s0, s1, w0, w1, true);
      else signConsensus2Sweep(x0, m0, b0, x1, m1, b1, true, true, o, n, s0, s1, w0, w1, false);
    } else signConsensus2Sweep(x0, m0, b0, x1, m1, b1, false, true, o, n, s0, s1, w0, w1, normalize);
  } else if (bf16) {
    if (normalize) signConsensus3Sweep(x0, m0, b0, x1, m1, b1, x2, m2, b2, true, true, o, n, s0, s1, s2, w0, w1, w2, true);
    else signConsensus3Sweep(x0, m0, b0, x1, m1, b1, x2, m2, b2, true, true, o, n, s0, s1, s2, w0, w1, w2, false);
  } else signConsensus3Sweep(x0, m0, b0, x1, m1, b1, x2, m2, b2, false, true, o, n, s0, s1, s2, w0, w1, w2, normalize);
}

/**
 * Four values of a consensus term at byte `i`: the f32 vector at `x`, or where `kept`, x − xm (both
 * bf16 where `bf16`) times the 0/1 mask packed at `bits`, with the bytes of keepBits.
 */
@inline function consensusTerm(x: usize, xm: usize, bits: usize, bf16: bool, kept: bool, i: usize): v128 {
  if (!kept) return v128.load(x + i);
  const e = i >> 2;
  return arith(MUL, loadDiff(x, bf16, xm, bf16, true, i), unpacked4(<i32>load<u8>(bits + (e >> 3)), <i32>(e & 4)));
}

@inline function signConsensus3Sweep(x0: usize, m0: usize, b0: usize, x1: usize, m1: usize, b1: usize, x2: usize, m2: usize, b2: usize, bf16: bool, kept: bool, o: usize, n: i32, s0: f32, s1: f32, s2: f32, w0: f32, w1: f32, w2: f32, normalize: bool): void {
  const end = (<usize>n) << 2;
  const zero = f32x4.splat(0);
  const zero64 = f64x2.splat(0);
  for (let i: usize = 0; i < end; i += 16) {
    const a = f32x4.mul(consensusTerm(x0, m0, b0, bf16, kept, i), f32x4.splat(s0));
    const b = f32x4.mul(consensusTerm(x1, m1, b1, bf16, kept, i), f32x4.splat(s1));
    const c = f32x4.mul(consensusTerm(x2, m2, b2, bf16, kept, i), f32x4.splat(s2));
    const tl = f64x2.add(lo64(c), f64x2.add(lo64(b), lo64(a)));
    const th = f64x2.add(hi64(c), f64x2.add(hi64(b), hi64(a)));
    const flip = flipOf(f32x4.ge(join32(tl, th), zero));
    const ka = agrees(a, flip);
    const kb = agrees(b, flip);
    const kc = agrees(c, flip);
    const ma = f32x4.mul(a, ka);
    const mb = f32x4.mul(b, kb);
    const mc = f32x4.mul(c, kc);
    let ml = f64x2.add(lo64(mc), f64x2.add(lo64(mb), f64x2.add(lo64(ma), zero64)));
    let mh = f64x2.add(hi64(mc), f64x2.add(hi64(mb), f64x2.add(hi64(ma), zero64)));
    if (normalize) {
      const da = f32x4.mul(f32x4.splat(w0), ka);
      const db = f32x4.mul(f32x4.splat(w1), kb);
      const dc = f32x4.mul(f32x4.splat(w2), kc);
      let dl = f64x2.add(lo64(dc), f64x2.add(lo64(db), lo64(da)));
      let dh = f64x2.add(hi64(dc), f64x2.add(hi64(db), hi64(da)));
      dl = f64x2.add(dl, v128.and(f64x2.eq(dl, zero64), f64x2.splat(1)));
      dh = f64x2.add(dh, v128.and(f64x2.eq(dh, zero64), f64x2.splat(1)));
      ml = f64x2.div(ml, dl);
      mh = f64x2.div(mh, dh);
    }
    v128.store(o + i, join32(ml, mh));
  }
}

/** TIES consensus, any other number of terms: `terms` holds `count` vector pointers (u32),
 * `scales` and `weights` `count` f32 each. Sums run in f64 from +0 in term order. */
export function signConsensusN(terms: usize, scales: usize, weights: usize, count: i32, o: usize, n: i32, normalize: bool): void {
  const end = (<usize>n) << 2;
  const zero = f32x4.splat(0);
  const zero64 = f64x2.splat(0);
  for (let i: usize = 0; i < end; i += 16) {
    let tl = zero64, th = zero64;
    for (let j = 0; j < count; j++) {
      const jj = (<usize>j) << 2;
      const w = f32x4.mul(v128.load(load<u32>(terms + jj) + i), f32x4.splat(load<f32>(scales + jj)));
      tl = f64x2.add(lo64(w), tl);
      th = f64x2.add(hi64(w), th);
    }
    const flip = flipOf(f32x4.ge(join32(tl, th), zero));
    let ml = zero64, mh = zero64, dl = zero64, dh = zero64;
    for (let j = 0; j < count; j++) {
      const jj = (<usize>j) << 2;
      const w = f32x4.mul(v128.load(load<u32>(terms + jj) + i), f32x4.splat(load<f32>(scales + jj)));
      const k = agrees(w, flip);
      const kw = f32x4.mul(w, k);
      ml = f64x2.add(lo64(kw), ml);
      mh = f64x2.add(hi64(kw), mh);
      if (normalize) {
        const kd = f32x4.mul(f32x4.splat(load<f32>(weights + jj)), k);
        dl = f64x2.add(lo64(kd), dl);
        dh = f64x2.add(hi64(kd), dh);
      }
    }
    if (normalize) {
      dl = f64x2.add(dl, v128.and(f64x2.eq(dl, zero64), f64x2.splat(1)));
      dh = f64x2.add(dh, v128.and(f64x2.eq(dh, zero64), f64x2.splat(1)));
      ml = f64x2.div(ml, dl);
      mh = f64x2.div(mh, dh);
    }
    v128.store(o + i, join32(ml, mh));
  }
}

// ---- masks -----------------------------------------------------------------------------------------

/** packMask: bit j of u16 word w = element 16·w + j of the 0/1 vector at `x` is not 0 (whole words: vectors are padded). */
export function packMask(x: usize, o: usize, n: i32): void {
  const zero = f32x4.splat(0);
  for (let i = 0; i < n; i += 16) {
    const p = x + ((<usize>i) << 2);
    const word = maskWord(f32x4.ne(v128.load(p), zero), f32x4.ne(v128.load(p, 16), zero), f32x4.ne(v128.load(p, 32), zero), f32x4.ne(v128.load(p, 48), zero));
    store<u16>(o + ((<usize>i) >> 3), <u16>word);
  }
}

/** The packed word of 16 elements from the lane masks of their four groups of 4. */
@inline function maskWord(m0: v128, m1: v128, m2: v128, m3: v128): i32 {
  return i32x4.bitmask(m0) | (i32x4.bitmask(m1) << 4) | (i32x4.bitmask(m2) << 8) | (i32x4.bitmask(m3) << 12);
}

/** unpackMask: the f32 1 or 0 of each bit packMask wrote. */
export function unpackMask(x: usize, o: usize, n: i32): void {
  for (let i = 0; i < n; i += 16) {
    const word = <i32>load<u16>(x + ((<usize>i) >> 3));
    const p = o + ((<usize>i) << 2);
    v128.store(p, unpacked4(word, 0));
    v128.store(p, unpacked4(word, 4), 16);
    v128.store(p, unpacked4(word, 8), 32);
    v128.store(p, unpacked4(word, 12), 48);
  }
}

/**
 * The 0/1 f32 of the four bits of a packed word from bit `shift`: looked up, one load in place of
 * four vector instructions: signConsensusKept, DARE's output sweep, took 15 % less time.
 */
@inline function unpacked4(word: i32, shift: i32): v128 {
  return v128.load(NIBBLE_ONES + ((<usize>(word >> shift) & 15) << 4));
}

/** Lane j of entry k (16 bytes each) is bit j of k as f32 0 or 1. */
const NIBBLE_ONES: usize = memory.data<f32>([
  0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0,
  0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1,
], 16);

// ---- random ----------------------------------------------------------------------------------------

/**
 * PCG hash of base + j for j < n, upper 24 bits as [0, 1) (src/backend/random.ts), four lanes at a
 * time, in whole words of 16 (written up to the next multiple of 16 past n). The hash shifts each lane by its own amount (4 to 19 bits), which SIMD has no instruction
 * for: `state >>> s` is taken as the high word of the 64-bit product state · 2^(32−s), with
 * 2^(32−s) made exactly from its f32 bit pattern.
 */
export function random(o: usize, n: i32, base: u32): void {
  // state = index · 747796405 + 2891336453 (mod 2^32), stepped by 4 indices with one add;
  // 16 a round (vectors are padded), which V8 runs faster than 4.
  let state = firstState(base);
  const step = i32x4.splat(STATE_STEP);
  for (let j = 0; j < n; j += 16) {
    const at = o + ((<usize>j) << 2);
    const s1 = i32x4.add(state, step);
    const s2 = i32x4.add(s1, step);
    const s3 = i32x4.add(s2, step);
    v128.store(at, uniform4(state));
    v128.store(at, uniform4(s1), 16);
    v128.store(at, uniform4(s2), 32);
    v128.store(at, uniform4(s3), 48);
    state = i32x4.add(s3, step);
  }
}

const STATE_STEP: i32 = <i32>(<u32>747796405 * 4);

@inline function firstState(base: u32): v128 {
  return i32x4.add(i32x4.mul(i32x4.add(i32x4.splat(base), i32x4(0, 1, 2, 3)), i32x4.splat(747796405)), i32x4.splat(<i32>2891336453));
}

/** The uniforms of the four PCG states `state`. */
@inline function uniform4(state: v128): v128 {
  return f32x4.mul(f32x4.convert_i32x4_s(hash4(state)), f32x4.splat(5.9604644775390625e-8));
}

/**
 * The upper 24 bits of the PCG hash of the four states `state` (as i32, below 2^24; the signed
 * conversion in uniform4 then gives the unsigned one's values in one instruction, where x86 has no
 * unsigned SIMD conversion).
 */
@inline function hash4(state: v128): v128 {
  const word = i32x4.mul(v128.xor(shiftedState(state), state), i32x4.splat(277803737));
  return i32x4.shr_u(v128.xor(i32x4.shr_u(word, 22), word), 8);
}

/**
 * state >>> ((state >>> 28) + 4) per lane. SIMD shifts all lanes by one amount, so the shift is
 * taken as the high word of the 64-bit product state · 2^(28 − s), s = state >>> 28: that power's
 * four bytes are looked up in one swizzle, its one nonzero byte being 1 << (4 − s) in byte 3 for
 * s ≤ 4, 1 << (12 − s) in byte 2 for 5 ≤ s ≤ 12, 1 << (20 − s) in byte 1 above. Each byte's index is
 * s plus its byte's offset in POWER_INDEX; indices past 15 (or below 0, wrapping) give 0.
 */
@inline function shiftedState(state: v128): v128 {
  const s = i32x4.shr_u(state, 28);
  const index = i8x16.add(v128.shuffle<u8>(s, s, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12), POWER_INDEX);
  const power = i8x16.swizzle(POWER_BYTES, index);
  return v128.shuffle<i32>(i64x2.extmul_low_i32x4_u(state, power), i64x2.extmul_high_i32x4_u(state, power), 1, 3, 5, 7);
}

const POWER_BYTES = i8x16(-128, 64, 32, 16, 8, 4, 2, 1, 0, 0, 0, 16, 8, 4, 2, 1);
const POWER_INDEX = i8x16(-128, -13, -5, 11, -128, -13, -5, 11, -128, -13, -5, 11, -128, -13, -5, 11);

/**
 * keepBelow: o = x · (t > u), u the uniforms of `random(base)` — the bytes of random, then
 * compareSV(GT, t, u), then binaryVV(MUL, x, mask), in one sweep (DARE's Bernoulli keep), with x
 * as loadDiff reads it (a task vector not written yet). The mask also goes to `bits` as packMask
 * packs it, for a later pass to keep by (keepBits) instead of drawing it again. Where `d` is not 0
 * (x a difference), the task vector x goes there too, the bytes of binaryVV(SUB): DARE's rescale
 * sums its magnitudes, and so needs no sweep of its own to write it. t > u is taken as h < `below`
 * for the 24-bit hashes h = u·2^24, `below` being ⌈t·2^24⌉ clamped to [0, 2^24] (0 for NaN).
 */
export function keepBelow(x: usize, xBf16: bool, xm: usize, xmBf16: bool, o: usize, bits: usize, n: i32, below: i32, base: u32, d: usize): void {
  if (xm == 0) {
    if (xBf16) keepBelowSweep(x, true, 0, false, false, o, bits, n, below, base, 0, false);
    else keepBelowSweep(x, false, 0, false, false, o, bits, n, below, base, 0, false);
  } else if (d != 0) {
    if (xBf16 && xmBf16) keepBelowSweep(x, true, xm, true, true, o, bits, n, below, base, d, true);
    else keepBelowSweep(x, xBf16, xm, xmBf16, true, o, bits, n, below, base, d, true);
  } else if (xBf16 && xmBf16) keepBelowSweep(x, true, xm, true, true, o, bits, n, below, base, 0, false);
  else if (!xBf16 && !xmBf16) keepBelowSweep(x, false, xm, false, true, o, bits, n, below, base, 0, false);
  else keepBelowSweep(x, xBf16, xm, xmBf16, true, o, bits, n, below, base, 0, false);
}

/** Whole words of 16 elements (vectors are padded): four groups of 4, one u16 of bits. */
@inline function keepBelowSweep(x: usize, xBf16: bool, xm: usize, xmBf16: bool, diff: bool, o: usize, bits: usize, n: i32, below: i32, base: u32, d: usize, write: bool): void {
  let state = firstState(base);
  const threshold = i32x4.splat(below);
  const step = i32x4.splat(STATE_STEP);
  for (let j = 0; j < n; j += 16) {
    const at = (<usize>j) << 2;
    const k0 = i32x4.lt_s(hash4(state), threshold);
    state = i32x4.add(state, step);
    const k1 = i32x4.lt_s(hash4(state), threshold);
    state = i32x4.add(state, step);
    const k2 = i32x4.lt_s(hash4(state), threshold);
    state = i32x4.add(state, step);
    const k3 = i32x4.lt_s(hash4(state), threshold);
    state = i32x4.add(state, step);
    const x0 = loadDiff(x, xBf16, xm, xmBf16, diff, at);
    const x1 = loadDiff(x, xBf16, xm, xmBf16, diff, at + 16);
    const x2 = loadDiff(x, xBf16, xm, xmBf16, diff, at + 32);
    const x3 = loadDiff(x, xBf16, xm, xmBf16, diff, at + 48);
    if (write) {
      v128.store(d + at, x0);
      v128.store(d + at, x1, 16);
      v128.store(d + at, x2, 32);
      v128.store(d + at, x3, 48);
    }
    v128.store(o + at, arith(MUL, x0, ones(k0)));
    v128.store(o + at, arith(MUL, x1, ones(k1)), 16);
    v128.store(o + at, arith(MUL, x2, ones(k2)), 32);
    v128.store(o + at, arith(MUL, x3, ones(k3)), 48);
    store<u16>(bits + ((<usize>j) >> 3), <u16>maskWord(k0, k1, k2, k3));
  }
}

/**
 * keepBelowSums: DARE's rescale sums of `count` (1-3) task vectors d = x − xm (all raw bf16 where
 * `bf16`, else all f32), kept below draws not made yet, in one sweep that writes neither d nor its
 * kept values: per term, the mask as keepBelow draws and packs it (to its `bits`), and the pair of
 * sums Σ|d| and Σ|d · mask|, each the chain of `sum` over `n` elements (f64, index order; the
 * product is keepBelow's). Three terms' chains overlap where one keepBelow and the sum sweep after
 * it waited on each add. The table at `t` holds x, xm, bits, below and base of each term (u32);
 * the sums go to `out` as f64, Σ|d| then Σ|kept| per term.
 */
export function keepBelowSums(t: usize, count: i32, bf16: bool, n: i32, out: usize): void {
  if (count == 3) {
    if (bf16) keptSums3(t, true, n, out);
    else keptSums3(t, false, n, out);
  } else if (bf16) {
    keptSums1(t, true, n, out);
    if (count == 2) keptSums1(t + 20, true, n, out + 16);
  } else {
    keptSums1(t, false, n, out);
    if (count == 2) keptSums1(t + 20, false, n, out + 16);
  }
}

/** Term `j` of a keepBelowSums table: its field `f` (0 x, 1 xm, 2 bits, 3 below, 4 base). */
@inline function keptField(t: usize, j: i32, f: i32): u32 {
  return load<u32>(t + <usize>(20 * j + 4 * f));
}

@inline function keptSums1(t: usize, bf16: bool, n: i32, out: usize): void {
  const x = <usize>keptField(t, 0, 0), xm = <usize>keptField(t, 0, 1), bits = <usize>keptField(t, 0, 2);
  const threshold = i32x4.splat(<i32>keptField(t, 0, 3));
  let state = firstState(keptField(t, 0, 4));
  let s = f64x2.splat(0);
  const step = i32x4.splat(STATE_STEP * 4);
  const body = n & ~15;
  let j = 0;
  for (; j < body; j += 16) {
    s = keptWord(s, x, xm, bits, bf16, state, threshold, j, 16);
    state = i32x4.add(state, step);
  }
  if (j < n) s = keptWord(s, x, xm, bits, bf16, state, threshold, j, n - j);
  v128.store(out, s);
}

@inline function keptSums3(t: usize, bf16: bool, n: i32, out: usize): void {
  const x0 = <usize>keptField(t, 0, 0), m0 = <usize>keptField(t, 0, 1), b0 = <usize>keptField(t, 0, 2);
  const x1 = <usize>keptField(t, 1, 0), m1 = <usize>keptField(t, 1, 1), b1 = <usize>keptField(t, 1, 2);
  const x2 = <usize>keptField(t, 2, 0), m2 = <usize>keptField(t, 2, 1), b2 = <usize>keptField(t, 2, 2);
  const t0 = i32x4.splat(<i32>keptField(t, 0, 3)), t1 = i32x4.splat(<i32>keptField(t, 1, 3)), t2 = i32x4.splat(<i32>keptField(t, 2, 3));
  let q0 = firstState(keptField(t, 0, 4)), q1 = firstState(keptField(t, 1, 4)), q2 = firstState(keptField(t, 2, 4));
  let s0 = f64x2.splat(0), s1 = s0, s2 = s0;
  const step = i32x4.splat(STATE_STEP * 4);
  const body = n & ~15;
  let j = 0;
  for (; j < body; j += 16) {
    s0 = keptWord(s0, x0, m0, b0, bf16, q0, t0, j, 16);
    s1 = keptWord(s1, x1, m1, b1, bf16, q1, t1, j, 16);
    s2 = keptWord(s2, x2, m2, b2, bf16, q2, t2, j, 16);
    q0 = i32x4.add(q0, step);
    q1 = i32x4.add(q1, step);
    q2 = i32x4.add(q2, step);
  }
  if (j < n) {
    s0 = keptWord(s0, x0, m0, b0, bf16, q0, t0, j, n - j);
    s1 = keptWord(s1, x1, m1, b1, bf16, q1, t1, j, n - j);
    s2 = keptWord(s2, x2, m2, b2, bf16, q2, t2, j, n - j);
  }
  v128.store(out, s0);
  v128.store(out, s1, 16);
  v128.store(out, s2, 32);
}

/**
 * One 16-element word of a keepBelowSums term from element `j`, `state` the PCG states of its
 * first four: the mask's bits packed, and the first `k` (1-16) magnitudes of d (lane 0 of `s`) and
 * of the kept values (lane 1) added.
 */
@inline function keptWord(s: v128, x: usize, xm: usize, bits: usize, bf16: bool, state: v128, threshold: v128, j: i32, k: i32): v128 {
  const at = (<usize>j) << 2;
  const step = i32x4.splat(STATE_STEP);
  const q1 = i32x4.add(state, step);
  const q2 = i32x4.add(q1, step);
  const q3 = i32x4.add(q2, step);
  const k0 = i32x4.lt_s(hash4(state), threshold);
  const k1 = i32x4.lt_s(hash4(q1), threshold);
  const k2 = i32x4.lt_s(hash4(q2), threshold);
  const k3 = i32x4.lt_s(hash4(q3), threshold);
  store<u16>(bits + ((<usize>j) >> 3), <u16>maskWord(k0, k1, k2, k3));
  s = keptGroup(s, loadDiff(x, bf16, xm, bf16, true, at), k0, k);
  if (k > 4) s = keptGroup(s, loadDiff(x, bf16, xm, bf16, true, at + 16), k1, k - 4);
  if (k > 8) s = keptGroup(s, loadDiff(x, bf16, xm, bf16, true, at + 32), k2, k - 8);
  if (k > 12) s = keptGroup(s, loadDiff(x, bf16, xm, bf16, true, at + 48), k3, k - 12);
  return s;
}

/** The first `k` (all for k ≥ 4) of four magnitudes of d and of d kept by `mask` added to the pair of sums `s`. */
@inline function keptGroup(s: v128, d: v128, mask: v128, k: i32): v128 {
  const magnitude = i32x4.splat(0x7fffffff);
  return addValues(s, v128.and(d, magnitude), v128.and(arith(MUL, d, ones(mask)), magnitude), k < 4 ? k : 4);
}

/** keepBits: o = x · mask, the mask packed at `bits` (packMask): the bytes of unpackMask, then binaryVV(MUL, x, mask), x as loadDiff reads it. */
export function keepBits(x: usize, xBf16: bool, xm: usize, xmBf16: bool, bits: usize, o: usize, n: i32): void {
  if (xm == 0) {
    if (xBf16) keepBitsSweep(x, true, 0, false, false, bits, o, n);
    else keepBitsSweep(x, false, 0, false, false, bits, o, n);
  } else if (xBf16 && xmBf16) keepBitsSweep(x, true, xm, true, true, bits, o, n);
  else if (!xBf16 && !xmBf16) keepBitsSweep(x, false, xm, false, true, bits, o, n);
  else keepBitsSweep(x, xBf16, xm, xmBf16, true, bits, o, n);
}

@inline function keepBitsSweep(x: usize, xBf16: bool, xm: usize, xmBf16: bool, diff: bool, bits: usize, o: usize, n: i32): void {
  for (let j = 0; j < n; j += 16) {
    const at = (<usize>j) << 2;
    const word = <i32>load<u16>(bits + ((<usize>j) >> 3));
    v128.store(o + at, arith(MUL, loadDiff(x, xBf16, xm, xmBf16, diff, at), unpacked4(word, 0)));
    v128.store(o + at, arith(MUL, loadDiff(x, xBf16, xm, xmBf16, diff, at + 16), unpacked4(word, 4)), 16);
    v128.store(o + at, arith(MUL, loadDiff(x, xBf16, xm, xmBf16, diff, at + 32), unpacked4(word, 8)), 32);
    v128.store(o + at, arith(MUL, loadDiff(x, xBf16, xm, xmBf16, diff, at + 48), unpacked4(word, 12)), 48);
  }
}

// ---- ranks -----------------------------------------------------------------------------------------

/**
 * rowRanks: per row, 1 + the position of each element's magnitude bits (|x| as u32, so NaN above
 * Inf) in ascending order, equal magnitudes ordered by descending index — the ranks the
 * reference's stable radix sort (rankRow in cpu-backend.ts) gives. Any stable sort gives them, so
 * this one is a bucket sort fitted to the row: zeros in the first bucket, Inf/NaN in the last, the
 * finite magnitudes spread by value over up to 2048 buckets between their minimum and maximum
 * (more when a long row's bucket bits and index bits would not fit in one u32; one counting pass,
 * one stable scatter), then each bucket sorted on its own — by insertion for the few elements a
 * bucket usually holds, by 8-bit LSD radix on the remaining bits for a crowded one. An element
 * moves as one u32, its key's bits below its bucket over its order bits. `scratch` holds 5·cols
 * plus 2050 u32.
 */
export function rowRanks(x: usize, o: usize, rows: i32, cols: i32, scratch: usize): void {
  const n = <usize>cols;
  for (let r = 0; r < rows; r++) rankRow(x + ((<usize>r * n) << 2), o + ((<usize>r * n) << 2), n, scratch);
}

/** Finite buckets of a row of `cols`: about two per element for short rows, 2048 for longer ones. */
@inline function bucketBitsFor(cols: usize): u32 {
  return cols >= 1024 ? 11 : 32 - <u32>clz(<u32>cols);
}

/** The smallest and largest finite nonzero key of a row (|x| bits; rangeMin > rangeMax when there is none). */
let rangeMin: u32 = 0;
let rangeMax: u32 = 0;

function finiteKeyRange(row: usize, n: usize): void {
  let vmin = i32x4.splat(0x7f800000);
  let vmax = i32x4.splat(0);
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) {
    const k = v128.and(v128.load(row + (i << 2)), i32x4.splat(0x7fffffff));
    const finite = i32x4.le_u(i32x4.sub(k, i32x4.splat(1)), i32x4.splat(0x7f7ffffe));
    vmin = i32x4.min_u(vmin, v128.bitselect(k, i32x4.splat(0x7f800000), finite));
    vmax = i32x4.max_u(vmax, v128.and(k, finite));
  }
  vmin = i32x4.min_u(vmin, v128.shuffle<u32>(vmin, vmin, 2, 3, 0, 1));
  vmin = i32x4.min_u(vmin, v128.shuffle<u32>(vmin, vmin, 1, 0, 3, 2));
  vmax = i32x4.max_u(vmax, v128.shuffle<u32>(vmax, vmax, 2, 3, 0, 1));
  vmax = i32x4.max_u(vmax, v128.shuffle<u32>(vmax, vmax, 1, 0, 3, 2));
  let min = <u32>i32x4.extract_lane(vmin, 0);
  let max = <u32>i32x4.extract_lane(vmax, 0);
  for (; i < n; i++) {
    const k = load<u32>(row + (i << 2)) & 0x7fffffff;
    if (k - 1 < 0x7f7fffff) {
      if (k < min) min = k;
      if (k > max) max = k;
    }
  }
  rangeMin = min;
  rangeMax = max;
}

/** The shift that spreads the keys finiteKeyRange found over 2^bucketBits buckets. */
@inline function bucketShift(bucketBits: u32): u32 {
  const rangeBits: u32 = 32 - <u32>clz(rangeMax >= rangeMin ? rangeMax - rangeMin : 0);
  return rangeBits > bucketBits ? rangeBits - bucketBits : 0;
}

/** The last bucket (Inf and NaN; zeros are bucket 0) for the keys finiteKeyRange found, at `shift`. */
@inline function lastBucket(shift: u32): u32 {
  return (rangeMax >= rangeMin ? (rangeMax - rangeMin) >>> shift : 0) + 2;
}

/** The ranks (as f32) of one row of `n` at `row` into `out`; `scratch` holds 5·n plus 2050 u32. */
function rankRow(row: usize, out: usize, n: usize, scratch: usize): void {
  if (n == 0) return;
  // Each element travels as one u32: its key's bits below its bucket, then n − 1 − index (so
  // that ascending order puts equal keys in descending index order, as the reference does).
  const idxBits: u32 = n > 1 ? 32 - <u32>clz(<u32>(n - 1)) : 0;
  const idxMask: u32 = idxBits >= 32 ? 0xffffffff : ((<u32>1) << idxBits) - 1;
  const sorted = scratch;
  const spare = sorted + (n << 2);
  const keys = spare + (n << 2);
  const keysSpare = keys + (n << 2);
  const buckets = keysSpare + (n << 2);
  // More buckets than bucketBitsFor gives when a bucket's bits and the index would not fit in 32 bits.
  const bucketBits = bucketBitsFor(n);
  finiteKeyRange(row, n);
  const min = rangeMin;
  let shift = bucketShift(bucketBits);
  if (shift + idxBits > 32) shift = 32 - idxBits;
  const low: u32 = shift >= 32 ? 0xffffffff : ((<u32>1) << shift) - 1;
  const last = lastBucket(shift);
  const span = (<usize>(last + 1)) << 2;
  memory.fill(buckets, 0, span);
  for (let i: usize = 0; i < n; i++) {
    const at = buckets + (<usize>bucketOf(load<u32>(row + (i << 2)) & 0x7fffffff, min, shift, last) << 2);
    store<u32>(at, load<u32>(at) + 1);
  }
  let sum: u32 = 0;
  for (let d: usize = 0; d < span; d += 4) {
    const c = load<u32>(buckets + d);
    store<u32>(buckets + d, sum);
    sum += c;
  }
  // Descending index order, so each bucket starts out ordered by n − 1 − index.
  for (let j: usize = 0; j < n; j++) {
    const index = n - 1 - j;
    const k = load<u32>(row + (index << 2)) & 0x7fffffff;
    const b = bucketOf(k, min, shift, last);
    const slot = buckets + (<usize>b << 2);
    const at = <usize>load<u32>(slot);
    store<u32>(slot, <u32>at + 1);
    const bits: u32 = b == 0 || b == last ? 0 : (k - min) & low;
    store<u32>(sorted + (at << 2), (bits << idxBits) | <u32>j);
  }
  // Each slot now holds its bucket's end. Zeros are all equal; finite keys of a bucket differ in
  // their low `shift` bits (now above the index bits); Inf and NaN in any of their 23 low bits.
  let start: usize = <usize>load<u32>(buckets);
  for (let b: u32 = 1; b <= last; b++) {
    const end = <usize>load<u32>(buckets + (<usize>b << 2));
    const count = end - start;
    if (count > 1) {
      if (b == last) sortSpecial(row, n, sorted, spare, keys, keysSpare, start, end);
      else if (shift > 0) {
        if (count > 48) radixPacked(sorted, spare, start, end, idxBits, shift);
        else insertionPacked(sorted, start, end);
      }
    }
    start = end;
  }
  for (let p: usize = 0; p < n; p++) {
    const index = n - 1 - <usize>(load<u32>(sorted + (p << 2)) & idxMask);
    store<f32>(out + (index << 2), <f32>(p + 1));
  }
}

/**
 * f32 steps applied to a rank, as binaryVS/binarySV apply them to a vector of ranks: at `steps`,
 * 12 bytes a step — the op (ADD, SUB, MUL, DIV), 1 when the scalar comes first (SUB only), the
 * scalar. Every step is monotone in its operand, so the result is monotone in the rank.
 */
function applySteps(v: f32, steps: usize, count: i32): f32 {
  for (let s = 0; s < count; s++) {
    const at = steps + <usize>s * 12;
    const op = load<i32>(at);
    const c = load<f32>(at, 8);
    if (op == ADD) v = v + c;
    else if (op == MUL) v = v * c;
    else if (op == SUB) v = load<i32>(at, 4) ? c - v : v - c;
    else v = v / c;
  }
  return v;
}

/** Undecided elements a row resolves by counting (each one a pass over the row) before it ranks the whole row. */
const COUNTED_RANKS: u32 = 16;

/**
 * rowRanksGreater: o = 1 where steps(rank) > y, else 0, with the ranks rowRanks gives and the
 * steps of applySteps — the bytes of rowRanks, the steps' binaryVS/binarySV and compareVV(GT) —
 * mostly without sorting. Buckets as rankRow makes them (about one per element, at most 2048) give each element
 * the range of ranks [first, last] its bucket spans; as the steps are monotone, every rank in it
 * maps between steps(first) and steps(last) (from a table of steps(r) for every rank). An element
 * whose y lies below both is 1, one whose y is at or above both is 0 — told for most elements by
 * the table's ends alone, four at a time, the others one by one from their bucket's span, and those
 * listed without branches first (for DELLA whether a y falls inside is a coin toss); for the rest (y in between,
 * or a bound NaN) its exact rank is counted: the keys below its own plus its equals at higher
 * indices, plus 1 — or, past COUNTED_RANKS of them in a row, the whole row is ranked. A NaN inside
 * the span with neither bound NaN needs a step that meets 0 or ±Inf inside it, which leaves the
 * bounds at −Inf and +Inf (or NaN), and so never a decided 1; nor a decided 0 but for y = +Inf,
 * which no value exceeds anyway. `scratch` holds 8·cols plus 4104 u32.
 */
export function rowRanksGreater(x: usize, y: usize, o: usize, rows: i32, cols: i32, steps: usize, count: i32, scratch: usize): void {
  const n = <usize>cols;
  if (n == 0) return;
  const table = scratch; // steps(r) at table + 4·r, r = 1…n
  const starts = table + ((n + 1) << 2); // up to 2051 bucket starts and the end
  const undecided = starts + (2052 << 2);
  const ranks = undecided + (n << 2);
  const rankScratch = ranks + (n << 2);
  for (let r: usize = 1; r <= n; r++) store<f32>(table + (r << 2), applySteps(<f32>r, steps, count));
  const up = nonDecreasing(table, n);
  // Every bucket's bounds lie between the table's ends: a y below both ends is a 1 and one at or
  // above both a 0 whatever the element's bucket, four at a time. (Steps that make a NaN inside
  // the table leave NaN or −Inf and +Inf at its ends: nothing is decided here then but a y of
  // +Inf, which no rank exceeds.)
  const lowAll = f32x4.splat(select<f32>(load<f32>(table, 4), load<f32>(table + (n << 2)), up));
  const highAll = f32x4.splat(select<f32>(load<f32>(table + (n << 2)), load<f32>(table, 4), up));
  const bucketBits: u32 = n > 1 ? min<u32>(11, 32 - <u32>clz(<u32>(n - 1))) : 1;
  const body = n & ~(<usize>3);
  for (let r = 0; r < rows; r++) {
    const row = x + ((<usize>r * n) << 2);
    const yr = y + ((<usize>r * n) << 2);
    const out = o + ((<usize>r * n) << 2);
    finiteKeyRange(row, n);
    const lowest = rangeMin;
    const shift = bucketShift(bucketBits);
    const last = lastBucket(shift);
    // Bucket b's elements take the ranks starts[b] + 1 … starts[b + 1].
    memory.fill(starts, 0, (<usize>(last + 2)) << 2);
    // Four buckets at a time (bucketOf's), counted one by one.
    for (let i: usize = 0; i < body; i += 4) {
      const b = bucketsOf4(v128.and(v128.load(row + (i << 2)), i32x4.splat(0x7fffffff)), lowest, shift, last);
      countBucket(starts, <u32>i32x4.extract_lane(b, 0));
      countBucket(starts, <u32>i32x4.extract_lane(b, 1));
      countBucket(starts, <u32>i32x4.extract_lane(b, 2));
      countBucket(starts, <u32>i32x4.extract_lane(b, 3));
    }
    for (let i = body; i < n; i++) countBucket(starts, bucketOf(load<u32>(row + (i << 2)) & 0x7fffffff, lowest, shift, last));
    // The running sum stays in a register: each bucket read back from memory would wait on its store.
    let total: u32 = 0;
    for (let b: usize = 1; b <= <usize>last + 1; b++) {
      total += load<u32>(starts + (b << 2));
      store<u32>(starts + (b << 2), total);
    }
    // The rest (a fifth for DELLA's usual ±epsilon) listed without branches (whether an element
    // is decided is a coin toss), at `ranks` until rankRow needs it, then decided by their buckets.
    const pending = ranks;
    let listed: usize = 0;
    let index = i32x4(0, 1, 2, 3);
    for (let i: usize = 0; i < body; i += 4) {
      const v = v128.load(yr + (i << 2));
      const one = f32x4.lt(v, lowAll);
      v128.store(out + (i << 2), ones(one));
      const lanes = <usize>i32x4.bitmask(v128.not(v128.or(one, f32x4.ge(v, highAll))));
      v128.store(pending + (listed << 2), i8x16.swizzle(index, v128.load(COMPACT + (lanes << 4))));
      listed += <usize>popcnt(lanes);
      index = i32x4.add(index, i32x4.splat(4));
    }
    for (let i = body; i < n; i++) store<u32>(pending + (listed++ << 2), <u32>i);
    let open: usize = 0;
    for (let j: usize = 0; j < listed; j++) {
      open = decideByBucket(row, yr, out, <usize>load<u32>(pending + (j << 2)), table, starts, lowest, shift, last, up, undecided, open);
    }
    if (open == 0) continue;
    if (open > <usize>COUNTED_RANKS) rankRow(row, ranks, n, rankScratch);
    for (let j: usize = 0; j < open; j++) {
      const i = <usize>load<u32>(undecided + (j << 2));
      const rank = open > <usize>COUNTED_RANKS ? <usize>load<f32>(ranks + (i << 2)) : <usize>countRank(row, n, i);
      store<f32>(out + (i << 2), load<f32>(table + (rank << 2)) > load<f32>(yr + (i << 2)) ? 1 : 0);
    }
  }
}

/** One more element in bucket b (counted at starts[b + 1]). */
@inline function countBucket(starts: usize, b: u32): void {
  countBin(starts, b + 1);
}

/** For each 4-bit lane mask, the swizzle that moves the u32 lanes it has to the front. */
const COMPACT = memory.data<u8>([
  0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0,
  8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0,
  12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0,
  4, 5, 6, 7, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 0, 0, 0, 0,
  8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0,
  4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0,
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
]);

/**
 * Element i of a row by the bounds of its bucket: 1 or 0 into `out`, or, where y lies between
 * them (or a bound is NaN), its index appended to the `open` undecided ones. The new count.
 */
@inline function decideByBucket(
  row: usize, yr: usize, out: usize, i: usize, table: usize, starts: usize,
  lowest: u32, shift: u32, last: u32, up: bool, undecided: usize, open: usize,
): usize {
  const at = starts + (<usize>bucketOf(load<u32>(row + (i << 2)) & 0x7fffffff, lowest, shift, last) << 2);
  const first = load<f32>(table + ((<usize>load<u32>(at) + 1) << 2));
  const final = load<f32>(table + (<usize>load<u32>(at, 4) << 2));
  const low = select<f32>(first, final, up);
  const high = select<f32>(final, first, up);
  const v = load<f32>(yr + (i << 2));
  // In integers: V8 compiles an f32 select to a branch. A NaN bound fails both tests: undecided.
  const one = <u32>(low > v);
  store<u32>(undecided + (open << 2), <u32>i);
  store<u32>(out + (i << 2), one * 0x3f800000);
  return open + <usize>((one | <u32>(high <= v)) ^ 1);
}

/**
 * Whether the steps' table (ranks 1…n at table + 4·r) is non-decreasing: told by its first two
 * different values that are not NaN (a constant or all-NaN table reads either way alike).
 */
function nonDecreasing(table: usize, n: usize): bool {
  let first: f32 = NaN;
  for (let r: usize = 1; r <= n; r++) {
    const v = load<f32>(table + (r << 2));
    if (v != v) continue;
    if (first != first) first = v;
    else if (v != first) return v > first;
  }
  return true;
}

/** The rank of element i of a row: 1 + the keys below its own + its equals at higher indices. */
function countRank(row: usize, n: usize, i: usize): u32 {
  const k = load<u32>(row + (i << 2)) & 0x7fffffff;
  const key = i32x4.splat(k);
  const index = i32x4.splat(<i32>i);
  let lanes = i32x4(0, 1, 2, 3);
  let ahead = i32x4.splat(0);
  let j: usize = 0;
  for (; j + 4 <= n; j += 4) {
    const keys = v128.and(v128.load(row + (j << 2)), i32x4.splat(0x7fffffff));
    const counted = v128.or(i32x4.lt_u(keys, key), v128.and(i32x4.eq(keys, key), i32x4.gt_s(lanes, index)));
    ahead = i32x4.sub(ahead, counted);
    lanes = i32x4.add(lanes, i32x4.splat(4));
  }
  let rank: u32 = 1 + <u32>(i32x4.extract_lane(ahead, 0) + i32x4.extract_lane(ahead, 1) + i32x4.extract_lane(ahead, 2) + i32x4.extract_lane(ahead, 3));
  for (; j < n; j++) {
    const kj = load<u32>(row + (j << 2)) & 0x7fffffff;
    if (kj < k || (kj == k && j > i)) rank++;
  }
  return rank;
}

/** Stable insertion sort of the u32 at [start, end) (packed key bits and order, all distinct). */
function insertionPacked(v: usize, start: usize, end: usize): void {
  for (let i = start + 1; i < end; i++) {
    const k = load<u32>(v + (i << 2));
    let j = i;
    while (j > start && load<u32>(v + ((j - 1) << 2)) > k) {
      store<u32>(v + (j << 2), load<u32>(v + ((j - 1) << 2)));
      j--;
    }
    store<u32>(v + (j << 2), k);
  }
}

/**
 * Stable LSD radix sort of the packed u32 at [start, end) by their key bits (`bits` of them above
 * the `idxBits` order bits, which are already ascending within equal keys), 8 bits a pass.
 */
function radixPacked(v: usize, spare: usize, start: usize, end: usize, idxBits: u32, bits: u32): void {
  const counts = memory.data(256 << 2);
  let from = v, to = spare;
  for (let shift: u32 = 0; shift < bits; shift += 8) {
    const width: u32 = bits - shift < 8 ? bits - shift : 8;
    const mask: u32 = (1 << width) - 1;
    const at0 = idxBits + shift;
    memory.fill(counts, 0, 256 << 2);
    for (let i = start; i < end; i++) {
      const at = counts + (((load<u32>(from + (i << 2)) >>> at0) & mask) << 2);
      store<u32>(at, load<u32>(at) + 1);
    }
    prefixSums(counts, <usize>mask, <u32>start);
    for (let i = start; i < end; i++) {
      const e = load<u32>(from + (i << 2));
      const slot = counts + (((e >>> at0) & mask) << 2);
      const at = <usize>load<u32>(slot);
      store<u32>(slot, <u32>at + 1);
      store<u32>(to + (at << 2), e);
    }
    const t = from; from = to; to = t;
  }
  if (from != v) memory.copy(v + (start << 2), from + (start << 2), (end - start) << 2);
}

/** The Inf/NaN bucket: their keys do not fit beside the order bits, so sort (key, order) pairs. */
function sortSpecial(row: usize, n: usize, sorted: usize, spare: usize, keys: usize, keysSpare: usize, start: usize, end: usize): void {
  for (let i = start; i < end; i++) {
    const index = n - 1 - <usize>load<u32>(sorted + (i << 2));
    store<u32>(keys + (i << 2), load<u32>(row + (index << 2)) & 0x7fffffff);
  }
  radixRange(keys, sorted, keysSpare, spare, start, end, 0x7f800000, 23);
}

/** The counts of digits 0..mask at `counts` become their exclusive prefix sums, from `start`. */
@inline function prefixSums(counts: usize, mask: usize, start: u32): void {
  let sum = start;
  for (let d: usize = 0; d <= mask; d++) {
    const c = load<u32>(counts + (d << 2));
    store<u32>(counts + (d << 2), sum);
    sum += c;
  }
}

/** Zeros → 0, finite → 1 + (k − min) >> shift, Inf and NaN → `last`. */
@inline function bucketOf(k: u32, min: u32, shift: u32, last: u32): u32 {
  return k == 0 ? 0 : k >= 0x7f800000 ? last : 1 + ((k - min) >>> shift);
}

/** bucketOf of four keys. */
@inline function bucketsOf4(k: v128, min: u32, shift: u32, last: u32): v128 {
  const finite = i32x4.add(i32x4.shr_u(i32x4.sub(k, i32x4.splat(<i32>min)), shift), i32x4.splat(1));
  return v128.and(v128.bitselect(i32x4.splat(<i32>last), finite, i32x4.ge_u(k, i32x4.splat(0x7f800000))), i32x4.ne(k, i32x4.splat(0)));
}

/**
 * Stable LSD radix sort of keys[start, end) on bits [0, high) of key − bias (keys of one bucket
 * share the bits above), 8 bits a pass, through the spare arrays; the result ends in `keys`/`order`.
 */
function radixRange(keys: usize, order: usize, spareKeys: usize, spareOrder: usize, start: usize, end: usize, bias: u32, high: u32): void {
  const counts = memory.data(256 << 2);
  let fromK = keys, fromO = order, toK = spareKeys, toO = spareOrder;
  for (let shift: u32 = 0; shift < high; shift += 8) {
    const bits: u32 = high - shift < 8 ? high - shift : 8;
    const mask: u32 = (1 << bits) - 1;
    memory.fill(counts, 0, 256 << 2);
    for (let i = start; i < end; i++) {
      const at = counts + ((((load<u32>(fromK + (i << 2)) - bias) >>> shift) & mask) << 2);
      store<u32>(at, load<u32>(at) + 1);
    }
    prefixSums(counts, <usize>mask, <u32>start);
    for (let i = start; i < end; i++) {
      const k = load<u32>(fromK + (i << 2));
      const slot = counts + ((((k - bias) >>> shift) & mask) << 2);
      const at = <usize>load<u32>(slot);
      store<u32>(slot, <u32>at + 1);
      store<u32>(toK + (at << 2), k);
      store<u32>(toO + (at << 2), load<u32>(fromO + (i << 2)));
    }
    const tk = fromK; fromK = toK; toK = tk;
    const to = fromO; fromO = toO; toO = to;
  }
  if (fromK != keys) {
    memory.copy(keys + (start << 2), fromK + (start << 2), (end - start) << 2);
    memory.copy(order + (start << 2), fromO + (start << 2), (end - start) << 2);
  }
}

// ---- non-finite counts -----------------------------------------------------------------------------

/**
 * Counts NaN, +Inf and −Inf among `n` floats of `size` bytes (2: bf16/f16, 4: f32) at `p`, whose
 * exponent field is `exp` and mantissa `mant` (src/storage/non-finite.ts): three u32 at `out`.
 * Exactly `n` elements are read (the bytes past them are another vector's padding). The common
 * case, none at all, is one AND and compare per 16 bytes; only then are elements classified.
 */
export function countNonFinite(p: usize, n: i32, size: i32, exp: u32, mant: u32, out: usize): void {
  const bytes = <usize>n * <usize>size;
  const whole = bytes & ~(<usize>15);
  let hits = i32x4.splat(0);
  if (size == 2) {
    const e = i16x8.splat(<i16>exp);
    for (let i: usize = 0; i < whole; i += 16) hits = v128.or(hits, i16x8.eq(v128.and(v128.load(p + i), e), e));
  } else {
    const e = i32x4.splat(exp);
    for (let i: usize = 0; i < whole; i += 16) hits = v128.or(hits, i32x4.eq(v128.and(v128.load(p + i), e), e));
  }
  let any = v128.any_true(hits);
  for (let i = whole; i < bytes && !any; i += <usize>size) {
    const w: u32 = size == 2 ? <u32>load<u16>(p + i) : load<u32>(p + i);
    any = (w & exp) == exp;
  }
  let nan: u32 = 0, pos: u32 = 0, neg: u32 = 0;
  if (any) {
    const sign: u32 = size == 2 ? 0x8000 : 0x80000000;
    for (let i: usize = 0; i < bytes; i += <usize>size) {
      const w: u32 = size == 2 ? <u32>load<u16>(p + i) : load<u32>(p + i);
      if ((w & exp) != exp) continue;
      if ((w & mant) != 0) nan++;
      else if ((w & sign) != 0) neg++;
      else pos++;
    }
  }
  store<u32>(out, nan);
  store<u32>(out, pos, 4);
  store<u32>(out, neg, 8);
}
