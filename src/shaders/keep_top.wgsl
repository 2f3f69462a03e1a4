// keepTopMagnitude when only some of a chunk's ties fit: x where |x| > threshold; of the elements
// with |x| == threshold ("ties") only the first `remaining` in index order within the chunk; zero
// elsewhere (keep_magnitude in common.wgsl). When every tie is kept or none is, the fused
// elementwise kernel does it instead.
//
// Each thread owns a run of RUN consecutive elements: count_ties counts each run's ties,
// scan_runs (one workgroup) turns the counts into exclusive prefix counts, and apply_counted walks
// each run in order. Only scan_runs has workgroup barriers (a handful), which software adapters
// execute very slowly.

const RUN: u32 = 16u;

struct Params {
  n: u32,
  tbits: u32,
  remaining: u32,
  runs: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> run_ties: array<u32>;
@group(0) @binding(4) var<storage, read> run_prefix: array<u32>;

fn is_tie(i: u32) -> bool {
  return (bitcast<u32>(x[i]) & 0x7fffffffu) == P.tbits;
}

@compute @workgroup_size(256)
fn count_ties(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let t = flat_index(wid, nwg, lid);
  if (t >= P.runs) {
    return;
  }
  var count = 0u;
  for (var i = t * RUN; i < min(P.n, (t + 1u) * RUN); i = i + 1u) {
    count = count + select(0u, 1u, is_tie(i));
  }
  run_ties[t] = count;
}

var<workgroup> sh: array<u32, 256>;

// One workgroup: run_ties becomes its exclusive prefix sum, in place. Thread k sums a stretch of
// consecutive runs, the 256 stretch sums are scanned in workgroup memory, and each thread then
// writes its stretch's prefixes.
@compute @workgroup_size(256)
fn scan_runs(@builtin(local_invocation_index) lid: u32) {
  let per = (P.runs + WG - 1u) / WG;
  let first = min(P.runs, lid * per);
  let last = min(P.runs, first + per);
  var local = 0u;
  for (var j = first; j < last; j = j + 1u) {
    local = local + run_ties[j];
  }
  sh[lid] = local;
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
  var offset = sh[lid] - local;
  for (var j = first; j < last; j = j + 1u) {
    let v = run_ties[j];
    run_ties[j] = offset;
    offset = offset + v;
  }
}

@compute @workgroup_size(256)
fn apply_counted(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = flat_index(wid, nwg, lid);
  if (t >= P.runs) {
    return;
  }
  var seen = run_prefix[t];
  for (var i = t * RUN; i < min(P.n, (t + 1u) * RUN); i = i + 1u) {
    let tie = is_tie(i);
    out[i] = keep_magnitude(x[i], P.tbits, tie && seen < P.remaining);
    seen = seen + select(0u, 1u, tie);
  }
}
