// weightedSum: out = Σ_j w_j · t_j, accumulated in f32 in term order with one rounding per term,
// like the CPU backend's `out[i] += w·x` (an f64 product rounded once into the f32 sum): scalar
// weights arrive as f64 values split into (hi, lo) f32 pairs, and mul_add_split rounds once.
//
// A pass binds as many terms as the device's storage-buffer limit allows; with more terms the
// backend runs several passes, each adding to `out` (P.accumulate = 1). The term bindings and
// the per-term lines are generated (src/gpu/kernels.ts) at the comment markers `//@NAME`:
//   @DECLS  `@group(0) @binding(k) var<storage, read> t0: array<f32>;` (and w0 for vector weights)
//   @BODY   `acc = mul_add_split(weight_hi(0u), weight_lo(0u), t0[i], acc);` or `acc = mul_add(w0[i], t0[i], acc);`

struct Params {
  n: u32,
  accumulate: u32,
  _pad0: u32,
  _pad1: u32,
  w: array<vec4<f32>, 14>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
//@DECLS

// Scalar weight j is the pair (w[2j], w[2j+1]).
fn weight_hi(j: u32) -> f32 {
  return P.w[j / 2u][(j % 2u) * 2u];
}

fn weight_lo(j: u32) -> f32 {
  return P.w[j / 2u][(j % 2u) * 2u + 1u];
}

@compute @workgroup_size(256)
fn weighted_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  var acc = 0.0;
  if (P.accumulate != 0u) {
    acc = out[i];
  }
  //@BODY
  out[i] = acc;
}
