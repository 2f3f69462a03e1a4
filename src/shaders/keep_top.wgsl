// keepTopMagnitude: x where |x| > threshold; of the elements with |x| == threshold ("ties") only
// the first `remaining` in index order within the chunk; a signed zero elsewhere. NaN is kept
// (the CPU backend gives NaN · 0 = NaN there too). Magnitudes are compared as bit patterns.
//
// When every tie of the chunk is kept or none is, one pass does it (keep_simple). Otherwise the
// chunk is cut into blocks of BLOCK elements: count_ties counts each block's ties, scan_blocks
// turns the counts into exclusive prefix counts (one workgroup), and apply_counted walks each
// block in ROUNDS coalesced rounds of 256 elements with a workgroup scan of the tie flags.

const ROUNDS: u32 = 16u;
const BLOCK: u32 = 4096u; // ROUNDS * WG

// keep_simple: 0 drops every tie, 1 keeps every tie.
override KEEP_TIES: u32 = 0u;

struct Params {
  n: u32,
  tbits: u32,
  remaining: u32,
  blocks: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> block_ties: array<u32>;
@group(0) @binding(4) var<storage, read> block_prefix: array<u32>;

var<workgroup> sh: array<u32, 256>;

fn signed_zero(v: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(v) & 0x80000000u);
}

fn inclusive_scan(lid: u32, v: u32) -> u32 {
  sh[lid] = v;
  workgroupBarrier();
  for (var off = 1u; off < WG; off = off << 1u) {
    var t = 0u;
    if (lid >= off) {
      t = sh[lid - off];
    }
    workgroupBarrier();
    sh[lid] = sh[lid] + t;
    workgroupBarrier();
  }
  return sh[lid];
}

@compute @workgroup_size(256)
fn keep_simple(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.n) {
    return;
  }
  let v = x[i];
  let m = bitcast<u32>(v) & 0x7fffffffu;
  let keep = m > P.tbits || (KEEP_TIES == 1u && m == P.tbits);
  out[i] = select(signed_zero(v), v, keep);
}

@compute @workgroup_size(256)
fn count_ties(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.blocks) {
    return;
  }
  var count = 0u;
  for (var r = 0u; r < ROUNDS; r = r + 1u) {
    let i = g * BLOCK + r * WG + lid;
    if (i < P.n && (bitcast<u32>(x[i]) & 0x7fffffffu) == P.tbits) {
      count = count + 1u;
    }
  }
  let total = inclusive_scan(lid, count);
  if (lid == WG - 1u) {
    block_ties[g] = total;
  }
}

var<workgroup> carry: u32;

// One workgroup: block_ties becomes its exclusive prefix sum, in place.
@compute @workgroup_size(256)
fn scan_blocks(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) {
    carry = 0u;
  }
  workgroupBarrier();
  for (var first = 0u; first < P.blocks; first = first + WG) {
    let i = first + lid;
    var v = 0u;
    if (i < P.blocks) {
      v = block_ties[i];
    }
    let incl = inclusive_scan(lid, v);
    let before = carry;
    if (i < P.blocks) {
      block_ties[i] = before + incl - v;
    }
    workgroupBarrier();
    if (lid == WG - 1u) {
      carry = before + incl;
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn apply_counted(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let g = group_index(wid, nwg);
  if (g >= P.blocks) {
    return;
  }
  var seen = block_prefix[g];
  for (var r = 0u; r < ROUNDS; r = r + 1u) {
    let i = g * BLOCK + r * WG + lid;
    var v = 0.0;
    var m = 0u;
    if (i < P.n) {
      v = x[i];
      m = bitcast<u32>(v) & 0x7fffffffu;
    }
    let tie = i < P.n && m == P.tbits;
    let incl = inclusive_scan(lid, select(0u, 1u, tie));
    let total = sh[WG - 1u];
    if (i < P.n) {
      let before = seen + incl - select(0u, 1u, tie);
      let keep = m > P.tbits || (tie && before < P.remaining);
      out[i] = select(signed_zero(v), v, keep);
    }
    seen = seen + total;
    workgroupBarrier();
  }
}
