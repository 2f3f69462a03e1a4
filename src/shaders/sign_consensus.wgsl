// signConsensus with more terms than one fused kernel can bind (the fused kernel in
// elementwise.wgsl handles the usual few): `total_pass` over groups of terms accumulates Σ W_j per
// element in `total` (double-float), then `mix_pass` over groups accumulates the agreeing sums in
// `agreed`; the last mix pass writes out. W_j = s_j · t_j; see agree / consensus_result in
// common.wgsl. Term bindings and per-term lines are generated (src/gpu/kernels.ts) at the comment
// markers `//@NAME`:
//   @DECLS  `@group(0) @binding(k) var<storage, read> t0: array<f32>;`
//   @LOAD   `let W0 = scale(0u) * t0[i];`
//   @TOTAL  `tot = df_add(tot, W0);`
//   @MIX    `agree(&m, &d, W0, sgn, weight(0u));`

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
    out[i] = consensus_result(m, d, P.normalize != 0u);
  } else {
    agreed[i] = vec4<f32>(m, d);
  }
}
