// Elementwise operations of ChunkOps. The operation is an override constant (one pipeline per
// operation, no per-element switch); which operands are scalars picks the entry point, so only
// the buffers an entry point reads are bound. Scalars are f32 (the CPU backend rounds them with
// Math.fround the same way).

// unary: 0 neg, 1 abs, 2 sign, 3 sqrt, 4 exp, 5 log
// binary: 0 add, 1 sub, 2 mul, 3 div, 4 min, 5 max, 6 gt, 7 ge, 8 eq
override OP: u32 = 0u;

struct Params {
  n: u32,
  u0: u32,
  u1: u32,
  u2: u32,
  fa: f32,
  fb: f32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> cond: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// WGSL may assume there are no infinities or NaNs, so those cases are decided on the bits.
fn exp_checked(x: f32, bits: u32) -> f32 {
  if (is_nan_bits(bits)) { return x; }
  if (bits == 0xff800000u) { return 0.0; }
  if (bits == 0x7f800000u || (bits < 0x80000000u && x > 89.0)) { return pos_inf(); }
  return exp(x);
}

fn log_checked(x: f32, bits: u32) -> f32 {
  if ((bits & 0x7fffffffu) == 0u) { return neg_inf(); } // log(±0) = -Inf
  if (is_nan_bits(bits) || bits >= 0x80000000u) { return quiet_nan(); }
  if (bits == 0x7f800000u) { return x; }
  return log(x);
}

fn unary_op(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  switch OP {
    case 0u: { return bitcast<f32>(bits ^ 0x80000000u); }
    case 1u: { return bitcast<f32>(bits & 0x7fffffffu); }
    case 2u: {
      if (is_nan_bits(bits)) { return x; }
      if (x > 0.0) { return 1.0; }
      if (x < 0.0) { return -1.0; }
      return 0.0;
    }
    case 3u: { return sqrt(x); }
    case 4u: { return exp_checked(x, bits); }
    case 5u: { return log_checked(x, bits); }
    default: { return x; }
  }
}

fn binary_op(x: f32, y: f32) -> f32 {
  switch OP {
    case 0u: { return x + y; }
    case 1u: { return x - y; }
    case 2u: { return x * y; }
    case 3u: { return x / y; }
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

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = unary_op(a[i]); }
}

@compute @workgroup_size(256)
fn binary_vv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = binary_op(a[i], b[i]); }
}

@compute @workgroup_size(256)
fn binary_vs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = binary_op(a[i], P.fb); }
}

@compute @workgroup_size(256)
fn binary_sv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = binary_op(P.fa, b[i]); }
}

@compute @workgroup_size(256)
fn where_vv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = select(b[i], a[i], is_true(cond[i])); }
}

@compute @workgroup_size(256)
fn where_vs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = select(P.fb, a[i], is_true(cond[i])); }
}

@compute @workgroup_size(256)
fn where_sv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = select(b[i], P.fa, is_true(cond[i])); }
}

@compute @workgroup_size(256)
fn where_ss(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = select(P.fb, P.fa, is_true(cond[i])); }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = P.fa; }
}

// One value per row (a = the chunk's rows' values; u0 = row length).
@compute @workgroup_size(256)
fn per_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < P.n) { out[i] = a[i / P.u0]; }
}

// PCG hash, exactly as pcgHash in src/backend/random.ts (u32 arithmetic wraps the same way).
fn pcg(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform [0,1) numbers of randomUniform(key, start + i): u0 = key, u1/u2 = low/high 32 bits of
// the chunk's first element index (the index is split in two words exactly as on the CPU).
@compute @workgroup_size(256)
fn random(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) { return; }
  let lo = P.u1 + i;
  let hi = P.u2 + select(0u, 1u, lo < P.u1);
  let h = pcg(pcg(P.u0 ^ hi) + lo);
  out[i] = f32(h >> 8u) * (1.0 / 16777216.0);
}
