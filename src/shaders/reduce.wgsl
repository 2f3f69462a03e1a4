// Sums over segments of a chunk: the whole chunk (sum, chunkSums) or each row (rowSums).
//
// Each workgroup sums one block of up to BLOCK elements of one segment in double-float
// (hi, lo) pairs — per thread, then a tree in workgroup memory — and writes its pair; the host
// adds the pairs in f64. Workgroup g covers segment g / blocks_per_seg, block g % blocks_per_seg.

const BLOCK: u32 = 4096u;

struct Params {
  seg_len: u32,
  blocks_per_seg: u32,
  groups: u32,
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_values: array<f32>;

var<workgroup> scratch: array<vec2<f32>, 256>;

fn store_pair(lid: u32, g: u32, acc: vec2<f32>) {
  scratch[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      scratch[lid] = df_add_df(scratch[lid], scratch[lid + s]);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    partials[g] = scratch[0];
  }
}

@compute @workgroup_size(256)
fn segment_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.groups) {
    return; // uniform: the whole workgroup leaves
  }
  let seg = g / P.blocks_per_seg;
  let begin = (g % P.blocks_per_seg) * BLOCK;
  let end = min(P.seg_len, begin + BLOCK);
  let base = seg * P.seg_len;
  var acc = vec2<f32>(0.0, 0.0);
  for (var j = begin + lid; j < end; j = j + WG) {
    acc = df_add(acc, x[base + j]);
  }
  store_pair(lid, g, acc);
}

// Σ x·y with every product rounded to f32 first (dot = sum(mul(x, y))).
@compute @workgroup_size(256)
fn segment_dots(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.groups) {
    return;
  }
  let begin = (g % P.blocks_per_seg) * BLOCK;
  let end = min(P.seg_len, begin + BLOCK);
  let base = (g / P.blocks_per_seg) * P.seg_len;
  var acc = vec2<f32>(0.0, 0.0);
  for (var j = begin + lid; j < end; j = j + WG) {
    // Through the bits, so that the product is not fused into the addition.
    let product = bitcast<f32>(bitcast<u32>(x[base + j] * y[base + j]));
    acc = df_add(acc, product);
  }
  store_pair(lid, g, acc);
}

var<workgroup> max_scratch: array<f32, 256>;

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

// One workgroup per row (segment): the row's largest element, for rowMaxBroadcast.
@compute @workgroup_size(256)
fn row_max_values(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.groups) {
    return;
  }
  let base = g * P.seg_len;
  var m = neg_inf();
  for (var j = lid; j < P.seg_len; j = j + WG) {
    m = js_max(m, x[base + j]);
  }
  max_scratch[lid] = m;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      max_scratch[lid] = js_max(max_scratch[lid], max_scratch[lid + s]);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    row_values[g] = max_scratch[0];
  }
}

// One workgroup per row: the row's sum in double-float, rounded once to f32, for rowSumBroadcast.
@compute @workgroup_size(256)
fn row_sum_values(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.groups) {
    return;
  }
  let base = g * P.seg_len;
  var acc = vec2<f32>(0.0, 0.0);
  for (var j = lid; j < P.seg_len; j = j + WG) {
    acc = df_add(acc, x[base + j]);
  }
  scratch[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      scratch[lid] = df_add_df(scratch[lid], scratch[lid + s]);
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    row_values[g] = df_value(scratch[0]);
  }
}
