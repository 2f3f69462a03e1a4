// f32 -> output dtype, bit-exact with src/storage/dtype.ts: outputs are rounded to the output
// dtype (round to nearest, ties to even) on the GPU, so only output-dtype bytes travel back.
// Only integer operations touch the values: no subnormal flushing, NaN stays NaN (made quiet, as
// the CPU codec does). Inputs are decoded where they are read (bf16_at / f16_at in common.wgsl).

// 0 = F32, 1 = F16, 2 = BF16
override DTYPE: u32;

struct Params {
  n: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> values: array<u32>;
@group(0) @binding(2) var<storage, read_write> encoded: array<u32>;

fn f32_to_bf16_bits(x: u32) -> u32 {
  if (is_nan_bits(x)) {
    return (x >> 16u) | 0x40u;
  }
  return (x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u;
}

fn f32_to_f16_bits(x: u32) -> u32 {
  let sign = (x >> 16u) & 0x8000u;
  let a = x & 0x7fffffffu;
  if (a >= 0x38800000u) {
    if (a >= 0x477ff000u) {
      if (a > 0x7f800000u) {
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
      }
      return sign | 0x7c00u;
    }
    return sign | ((a - 0x38000000u + 0xfffu + ((a >> 13u) & 1u)) >> 13u);
  }
  if (a >= 0x33000000u) {
    let e = a >> 23u;
    let mant = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    let half = 1u << (shift - 1u);
    let rest = mant & ((half << 1u) - 1u);
    var h = mant >> shift;
    if (rest > half || (rest == half && (h & 1u) != 0u)) {
      h = h + 1u;
    }
    return sign | h;
  }
  return sign;
}

fn encode_one(x: u32) -> u32 {
  if (DTYPE == 1u) {
    return f32_to_f16_bits(x);
  }
  return f32_to_bf16_bits(x);
}

// One thread per output word: one f32, or two 16-bit values (the last word's upper half is 0).
@compute @workgroup_size(256)
fn encode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let w = flat_index(wid, nwg, lid);
  if (DTYPE == 0u) {
    if (w < P.n) {
      encoded[w] = values[w];
    }
    return;
  }
  let i = 2u * w;
  if (i >= P.n) {
    return;
  }
  var word = encode_one(values[i]);
  if (i + 1u < P.n) {
    word = word | (encode_one(values[i + 1u]) << 16u);
  }
  encoded[w] = word;
}
