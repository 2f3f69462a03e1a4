// rowRanks: the rank of |x| within its row (1 = smallest … cols = largest), equal magnitudes
// ordered by index with the earlier element ranking higher (the top-k rule: of equal magnitudes
// the first in index order is kept). Magnitudes compare as f32 bit patterns of |x|.
//
// Two ways to sort each row's (|x| bits, column) keys; both end in the same order:
//
// - bitonic (GPUs): each row is copied to `keys` padded to a power of two P with keys that sort
//   last, and bitonic-sorted in place: all stages up to LOCAL elements in workgroup memory
//   (sort_local), longer stages as global compare-exchange steps (merge_global) down to LOCAL,
//   then the rest of the stage in workgroup memory (merge_local). Every stage sorts ascending (a
//   row is a P-aligned block, so rows never mix); scatter writes position + 1 at each column.
// - serial_rank (software adapters, which execute workgroup barriers very slowly): one thread per
//   row sorts it alone, a bottom-up merge sort between the two halves of `keys`, no barriers.

const LOCAL: u32 = 2048u; // 16 KiB of workgroup memory, WebGPU's guaranteed minimum
const PER_THREAD: u32 = 8u; // LOCAL / WG

struct Params {
  n: u32,       // elements in the chunk (rows * cols)
  cols: u32,
  p: u32,       // padded row length (power of two)
  total: u32,   // rows * p
  k: u32,       // bitonic stage size
  j: u32,       // compare distance
  rows: u32,    // serial_rank
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> keys: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read_write> ranks: array<f32>;

var<workgroup> tile: array<vec2<u32>, 2048>;

// a comes before b: smaller magnitude, or equal magnitude and later column.
fn before(a: vec2<u32>, b: vec2<u32>) -> bool {
  return a.x < b.x || (a.x == b.x && a.y > b.y);
}

// Ascending everywhere within a row: the usual alternating directions, until the stage spans
// the whole row.
fn ascending(i: u32, k: u32) -> bool {
  return k >= P.p || (i & k) == 0u;
}

@compute @workgroup_size(256)
fn load_keys(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.total) {
    return;
  }
  let row = i / P.p;
  let col = i % P.p;
  if (col < P.cols) {
    keys[i] = vec2<u32>(x[row * P.cols + col] & 0x7fffffffu, col);
  } else {
    keys[i] = vec2<u32>(0xffffffffu, col);
  }
}

fn local_compare_exchange(lo: u32, hi: u32, asc: bool) {
  let a = tile[lo];
  let b = tile[hi];
  if (before(b, a) == asc) {
    tile[lo] = b;
    tile[hi] = a;
  }
}

// Runs the steps j = j0, j0/2, …, 1 of stage k on this workgroup's tile (first = its global index).
fn local_steps(lid: u32, first: u32, k: u32, j0: u32) {
  for (var j = j0; j > 0u; j = j >> 1u) {
    for (var t = 0u; t < PER_THREAD / 2u; t = t + 1u) {
      let pair = lid + t * WG; // LOCAL / 2 pairs per step
      let lo = (pair / j) * 2u * j + (pair % j);
      local_compare_exchange(lo, lo + j, ascending(first + lo, k));
    }
    workgroupBarrier();
  }
}

fn load_tile(lid: u32, first: u32) {
  for (var t = 0u; t < PER_THREAD; t = t + 1u) {
    let l = lid + t * WG;
    var key = vec2<u32>(0xffffffffu, 0xffffffffu);
    if (first + l < P.total) {
      key = keys[first + l];
    }
    tile[l] = key;
  }
  workgroupBarrier();
}

fn store_tile(lid: u32, first: u32) {
  for (var t = 0u; t < PER_THREAD; t = t + 1u) {
    let l = lid + t * WG;
    if (first + l < P.total) {
      keys[first + l] = tile[l];
    }
  }
}

// Every stage k = 2 … min(p, LOCAL) on one LOCAL-element tile.
@compute @workgroup_size(256)
fn sort_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let first = group_index(wid, nwg) * LOCAL;
  load_tile(lid, first);
  let last_stage = min(P.p, LOCAL);
  for (var k = 2u; k <= last_stage; k = k << 1u) {
    local_steps(lid, first, k, k >> 1u);
  }
  store_tile(lid, first);
}

// One global step (k, j) with j >= LOCAL: one thread per compared pair.
@compute @workgroup_size(256)
fn merge_global(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let pair = flat_index(wid, nwg, lid);
  if (pair >= P.total / 2u) {
    return;
  }
  let lo = (pair / P.j) * 2u * P.j + (pair % P.j);
  let hi = lo + P.j;
  let a = keys[lo];
  let b = keys[hi];
  if (before(b, a) == ascending(lo, P.k)) {
    keys[lo] = b;
    keys[hi] = a;
  }
}

// The steps j = LOCAL/2 … 1 of stage k (> LOCAL) on one tile.
@compute @workgroup_size(256)
fn merge_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let first = group_index(wid, nwg) * LOCAL;
  load_tile(lid, first);
  local_steps(lid, first, P.k, LOCAL / 2u);
  store_tile(lid, first);
}

// Position q of a sorted row holds the column whose rank is q + 1.
@compute @workgroup_size(256)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= P.total) {
    return;
  }
  let row = i / P.p;
  let q = i % P.p;
  if (q < P.cols) {
    ranks[row * P.cols + keys[i].y] = f32(q + 1u);
  }
}

const RUN: u32 = 8u; // serial_rank: runs sorted by insertion before merging

@compute @workgroup_size(256)
fn serial_rank(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, lid);
  if (row >= P.rows) {
    return;
  }
  let cols = P.cols;
  let base = row * cols;
  // Runs of RUN keys, insertion-sorted, in the first half of `keys`.
  for (var s = 0u; s < cols; s = s + RUN) {
    let e = min(cols, s + RUN);
    for (var i = s; i < e; i = i + 1u) {
      let key = vec2<u32>(x[base + i] & 0x7fffffffu, i);
      var j = i;
      loop {
        if (j == s || !before(key, keys[base + j - 1u])) {
          break;
        }
        keys[base + j] = keys[base + j - 1u];
        j = j - 1u;
      }
      keys[base + j] = key;
    }
  }
  // Bottom-up merges, alternating between the halves.
  var src = 0u;
  var dst = P.n;
  for (var w = RUN; w < cols; w = w * 2u) {
    for (var lo = 0u; lo < cols; lo = lo + 2u * w) {
      let mid = min(lo + w, cols);
      let hi = min(lo + 2u * w, cols);
      var a = lo;
      var b = mid;
      for (var o = lo; o < hi; o = o + 1u) {
        var take_a = a < mid;
        if (take_a && b < hi) {
          take_a = !before(keys[src + base + b], keys[src + base + a]);
        }
        if (take_a) {
          keys[dst + base + o] = keys[src + base + a];
          a = a + 1u;
        } else {
          keys[dst + base + o] = keys[src + base + b];
          b = b + 1u;
        }
      }
    }
    let t = src;
    src = dst;
    dst = t;
  }
  for (var q = 0u; q < cols; q = q + 1u) {
    ranks[base + keys[src + base + q].y] = f32(q + 1u);
  }
}
