// Magnitude histograms for radix select (MSD, two 16-bit digits of the f32 bit pattern of |x|).
//
// Bins are global u32 atomics in an accumulator that the backend keeps across the chunks of a
// pass (cleared at the first chunk, read back after the last), so selection streams over
// tensors of any size. The vector is bound as u32: only bit patterns are compared.

// 0: all elements, binned by the upper 16 bits; 1: only elements whose upper 16 bits equal
// P.high, binned by their lower 16 bits.
override MODE: u32 = 0u;

struct Params {
  n: u32,
  high: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> bits: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<atomic<u32>, 65536>;

@compute @workgroup_size(256)
fn magnitude_histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  let m = bits[i] & 0x7fffffffu;
  if (MODE == 0u) {
    atomicAdd(&hist[m >> 16u], 1u);
  } else if ((m >> 16u) == P.high) {
    atomicAdd(&hist[m & 0xffffu], 1u);
  }
}
