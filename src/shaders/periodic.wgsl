// Periodic reductions and broadcasts: flat index i of the tensor belongs to residue i mod period
// (period = cols: columns of a matrix; period = numel / shape[0]: positions along dim 0).

struct Params {
  n: u32,
  period: u32,
  start_mod: u32, // (chunk start) mod period
  groups_per_row: u32,
  rows_per_group: u32,
  groups: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// periodicSums: thread (s, r) sums, in double-float, the elements of residue r among the chunk's
// "period rows" s·rows_per_group … (s+1)·rows_per_group − 1; chunk-local index of residue r in
// period row m is first(r) + m·period. Partials are laid out [s][r]; the host adds over s.
@compute @workgroup_size(256)
fn periodic_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.groups) {
    return;
  }
  let s = g / P.groups_per_row;
  let r = (g % P.groups_per_row) * WG + lid;
  if (r >= P.period) {
    return;
  }
  let first = (r + P.period - P.start_mod) % P.period;
  var acc = vec2<f32>(0.0, 0.0);
  for (var m = s * P.rows_per_group; m < (s + 1u) * P.rows_per_group; m = m + 1u) {
    let i = first + m * P.period;
    if (i >= P.n) {
      break;
    }
    acc = df_add(acc, x[i]);
  }
  partials[s * P.period + r] = acc;
}

// periodic: out[i] = values[(start + i) mod period].
@compute @workgroup_size(256)
fn periodic(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  out[i] = values[(P.start_mod + i % P.period) % P.period];
}
