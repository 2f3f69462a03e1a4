// signConsensus (TIES, MERGEKIT_SPEC.md §1.3/§1.5): with W_j = s_j · t_j, the elected sign is +
// where Σ_j W_j ≥ 0, else −; the result is Σ of the W_j that agree with it, divided (when
// P.normalize) by Σ of the agreeing weights w_j (a zero sum divides by 1). The sums are kept in
// double-float, like the CPU backend's f64, so the elected sign is the same on both.
//
// `fused` does it in one pass when every term fits in the bindings. Otherwise the backend runs
// `total_pass` over groups of terms (accumulating Σ W_j per element in `total`), then
// `mix_pass` over groups (accumulating the agreeing sums in `agreed`); the last mix pass writes out.
// Term bindings and per-term lines are generated (src/gpu/kernels.ts) at the comment markers `//@NAME`:
//   @DECLS  `@group(0) @binding(k) var<storage, read> t0: array<f32>;`
//   @LOAD   `let W0 = scale(0u) * t0[i];`
//   @TOTAL  `tot = df_add(tot, W0);`
//   @MIX    `agree(&m, &d, W0, sgn, 0u);`

struct Params {
  n: u32,
  normalize: u32,
  first: u32,
  last: u32,
  s: array<vec4<f32>, 7>,
  w: array<vec4<f32>, 7>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> total: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> agreed: array<vec4<f32>>;
//@DECLS

fn scale(j: u32) -> f32 {
  return P.s[j / 4u][j % 4u];
}

fn weight(j: u32) -> f32 {
  return P.w[j / 4u][j % 4u];
}

fn agree(m: ptr<function, vec2<f32>>, d: ptr<function, vec2<f32>>, wv: f32, sgn: f32, j: u32) {
  if (wv * sgn > 0.0) {
    *m = df_add(*m, wv);
    *d = df_add(*d, weight(j));
  }
}

fn elected_sign(tot: vec2<f32>) -> f32 {
  return select(-1.0, 1.0, df_value(tot) >= 0.0);
}

fn finish(m: vec2<f32>, d: vec2<f32>) -> f32 {
  let mixed = df_value(m);
  if (P.normalize == 0u) {
    return mixed;
  }
  let divisor = df_value(d);
  return mixed / select(divisor, 1.0, divisor == 0.0);
}

@compute @workgroup_size(256)
fn fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  //@LOAD
  var tot = vec2<f32>(0.0, 0.0);
  //@TOTAL
  let sgn = elected_sign(tot);
  var m = vec2<f32>(0.0, 0.0);
  var d = vec2<f32>(0.0, 0.0);
  //@MIX
  out[i] = finish(m, d);
}

@compute @workgroup_size(256)
fn total_pass(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  //@LOAD
  var tot = vec2<f32>(0.0, 0.0);
  if (P.first == 0u) {
    tot = total[i];
  }
  //@TOTAL
  total[i] = tot;
}

@compute @workgroup_size(256)
fn mix_pass(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  //@LOAD
  let sgn = elected_sign(total[i]);
  var m = vec2<f32>(0.0, 0.0);
  var d = vec2<f32>(0.0, 0.0);
  if (P.first == 0u) {
    let state = agreed[i];
    m = state.xy;
    d = state.zw;
  }
  //@MIX
  if (P.last != 0u) {
    out[i] = finish(m, d);
  } else {
    agreed[i] = vec4<f32>(m, d);
  }
}
