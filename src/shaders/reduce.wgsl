// Row maxima (rowMaxBroadcast) and the combining step of the row broadcasts. The sums themselves
// are computed by fused_sums (elementwise.wgsl) on the expression, without writing it out.
//
// No workgroup barriers (which software adapters execute very slowly): each of a row's T threads
// reduces the elements j ≡ k (mod T) of the row — adjacent threads read adjacent elements — into
// its own partial; a second kernel with one thread per row combines a row's T partials.

struct Params {
  seg_len: u32,
  threads_per_seg: u32,
  total_threads: u32,
  segments: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_values: array<f32>;
@group(0) @binding(5) var<storage, read_write> max_partials: array<f32>;
@group(0) @binding(6) var<storage, read> pair_partials: array<vec2<f32>>;
@group(0) @binding(7) var<storage, read> max_inputs: array<f32>;

// Math.max semantics: NaN wins, and +0 is larger than -0.
fn js_max(a: f32, b: f32) -> f32 {
  let ab = bitcast<u32>(a);
  let bb = bitcast<u32>(b);
  if (is_nan_bits(ab)) { return a; }
  if (is_nan_bits(bb)) { return b; }
  if (a > b) { return a; }
  if (b > a) { return b; }
  return bitcast<f32>(ab & bb);
}

@compute @workgroup_size(256)
fn segment_maxes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = flat_index(wid, nwg, lid);
  if (t >= P.total_threads) {
    return;
  }
  let base = (t / P.threads_per_seg) * P.seg_len;
  var m = neg_inf();
  for (var j = t % P.threads_per_seg; j < P.seg_len; j = j + P.threads_per_seg) {
    m = js_max(m, x[base + j]);
  }
  max_partials[t] = m;
}

// One thread per row: the row's sum (its partial pairs added in double-float, rounded once to f32).
@compute @workgroup_size(256)
fn combine_row_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, lid);
  if (row >= P.segments) {
    return;
  }
  var acc = vec2<f32>(0.0, 0.0);
  for (var k = 0u; k < P.threads_per_seg; k = k + 1u) {
    acc = df_add_df(acc, pair_partials[row * P.threads_per_seg + k]);
  }
  row_values[row] = df_value(acc);
}

// One thread per row: the row's largest element.
@compute @workgroup_size(256)
fn combine_row_maxes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, lid);
  if (row >= P.segments) {
    return;
  }
  var m = neg_inf();
  for (var k = 0u; k < P.threads_per_seg; k = k + 1u) {
    m = js_max(m, max_inputs[row * P.threads_per_seg + k]);
  }
  row_values[row] = m;
}
