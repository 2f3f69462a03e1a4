// The dense matrix operations of the forward pass and of LoRA's product (docs/model.md §7), the
// WebGPU side of src/backend/matrix-ops.ts. Arithmetic is f32 throughout; each kernel's comment
// says in which order it accumulates, which is what the tolerances of docs/model.md §7 rest on.
//
// Parameters: words 0–7 are u32s (u0…u7), words 8–11 f32s (f0…f3); each entry point names its own.

struct MatrixParams {
  u0: u32, u1: u32, u2: u32, u3: u32, u4: u32, u5: u32, u6: u32, u7: u32,
  f0: f32, f1: f32, f2: f32, f3: f32,
}

@group(0) @binding(0) var<uniform> mp: MatrixParams;

// ---------------------------------------------------------------------------------------------
// matmul: out[M×N] = a[M×K] · B (+ bias[N]), B either [K×N] (u3 = 1) or the nn.Linear layout
// [N×K] (u3 = 0, out = a·Bᵀ). u0 = M, u1 = K, u2 = N, u4 = has bias, u5 = tiles along N.
// One 16×16 workgroup per 16×16 output tile; K is walked in tiles of 16 staged in workgroup
// memory (2 KiB). Each output is one f32 sum in k order 0…K−1 (products rounded to f32, then
// added), the bias added last. Cells outside the matrices load as 0, so padding adds 0·0.

const TILE: u32 = 16u;
var<workgroup> tile_a: array<array<f32, 16>, 16>; // [row][k]
var<workgroup> tile_b: array<array<f32, 16>, 16>; // [k][col]

@group(0) @binding(1) var<storage, read> mm_a: array<f32>;
@group(0) @binding(2) var<storage, read> mm_b: array<f32>;
@group(0) @binding(3) var<storage, read> mm_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mm_out: array<f32>;

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = mp.u0;
  let K = mp.u1;
  let N = mp.u2;
  let tile = group_index(wid, nwg);
  let row0 = (tile / mp.u5) * TILE;
  let col0 = (tile % mp.u5) * TILE;
  let row = row0 + lid.y;
  let col = col0 + lid.x;
  var acc = 0.0;
  let k_tiles = (K + TILE - 1u) / TILE;
  for (var t = 0u; t < k_tiles; t++) {
    let k0 = t * TILE;
    var av = 0.0;
    if (row < M && k0 + lid.x < K) {
      av = mm_a[row * K + k0 + lid.x];
    }
    tile_a[lid.y][lid.x] = av;
    var bv = 0.0;
    if (mp.u3 == 1u) {
      // B [K×N]: consecutive threads read consecutive columns of row k0 + y.
      if (k0 + lid.y < K && col < N) {
        bv = mm_b[(k0 + lid.y) * N + col];
      }
      tile_b[lid.y][lid.x] = bv;
    } else {
      // B [N×K]: consecutive threads read consecutive k of weight row col0 + y.
      if (col0 + lid.y < N && k0 + lid.x < K) {
        bv = mm_b[(col0 + lid.y) * K + k0 + lid.x];
      }
      tile_b[lid.x][lid.y] = bv;
    }
    workgroupBarrier();
    for (var i = 0u; i < TILE; i++) {
      acc = acc + tile_a[lid.y][i] * tile_b[i][lid.x];
    }
    workgroupBarrier();
  }
  if (row < M && col < N) {
    var r = acc;
    if (mp.u4 == 1u) {
      r = r + mm_bias[col];
    }
    mm_out[row * N + col] = r;
  }
}

// ---------------------------------------------------------------------------------------------
// rmsnorm: one 256-wide workgroup per row. u0 = rows, u1 = dim, f0 = eps, f1 = offset.
// Σx² is summed per thread (strided, in f32), then by a tree in workgroup memory.

var<workgroup> partial: array<f32, 256>;

@group(0) @binding(1) var<storage, read> rn_x: array<f32>;
@group(0) @binding(2) var<storage, read> rn_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> rn_out: array<f32>;

@compute @workgroup_size(256)
fn rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = group_index(wid, nwg);
  let dim = mp.u1;
  let base = row * dim;
  let live = row < mp.u0;
  var s = 0.0;
  if (live) {
    for (var i = lid; i < dim; i += WG) {
      let v = rn_x[base + i];
      s = s + v * v;
    }
  }
  partial[lid] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w = w / 2u) {
    if (lid < w) {
      partial[lid] = partial[lid] + partial[lid + w];
    }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(partial[0] / f32(dim) + mp.f0);
  if (live) {
    for (var i = lid; i < dim; i += WG) {
      rn_out[base + i] = (rn_x[base + i] * scale) * (mp.f1 + rn_w[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// rope: one thread per element of x [tokens, heads, headDim]. u0 = tokens, u1 = heads,
// u2 = headDim, u3 = half (rotary dimensions / 2). table [tokens, half] of (cos, sin) pairs,
// made on the host exactly as the CPU reference makes them (WGSL's cos/sin are too coarse for
// angles of thousands of radians).

@group(0) @binding(1) var<storage, read> rp_x: array<f32>;
@group(0) @binding(2) var<storage, read> rp_table: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> rp_out: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  let hd = mp.u2;
  let half = mp.u3;
  if (i >= mp.u0 * mp.u1 * hd) {
    return;
  }
  let j = i % hd;
  let base = i - j;
  let t = i / (mp.u1 * hd);
  if (j >= 2u * half) {
    rp_out[i] = rp_x[i];
    return;
  }
  let k = j % half;
  let cs = rp_table[t * half + k];
  let a = rp_x[base + k];
  let b = rp_x[base + k + half];
  if (j < half) {
    rp_out[i] = a * cs.x - b * cs.y;
  } else {
    rp_out[i] = b * cs.x + a * cs.y;
  }
}

// ---------------------------------------------------------------------------------------------
// gated: out[i] = act(gate[i]) · up[i]. u0 = n, u1 = activation (0 SiLU, 1 GELU tanh, 2 GELU).

@group(0) @binding(1) var<storage, read> gt_gate: array<f32>;
@group(0) @binding(2) var<storage, read> gt_up: array<f32>;
@group(0) @binding(3) var<storage, read_write> gt_out: array<f32>;

// tanh from one exp of a non-positive argument: no overflow (WGSL's tanh may give NaN for large |z|).
fn tanh_stable(z: f32) -> f32 {
  let e = exp(-2.0 * abs(z));
  let r = (1.0 - e) / (1.0 + e);
  return select(r, -r, z < 0.0);
}

// erf by the Numerical Recipes erfc fit, as the CPU reference computes it.
fn erf_nr(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 +
    t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

@compute @workgroup_size(256)
fn gated(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i >= mp.u0) {
    return;
  }
  let x = gt_gate[i];
  var a: f32;
  if (mp.u1 == 0u) {
    a = x / (1.0 + exp(-x));
  } else if (mp.u1 == 1u) {
    a = 0.5 * x * (1.0 + tanh_stable(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  } else {
    a = 0.5 * x * (1.0 + erf_nr(x * 0.7071067811865476));
  }
  gt_out[i] = a * gt_up[i];
}

// ---------------------------------------------------------------------------------------------
// attention: one thread per (sequence, query position, head). u0 = batch, u1 = tokens,
// u2 = heads, u3 = kvHeads, u4 = headDim, u5 = soft cap on; f0 = scale, f1 = cap.
// Pass 1 finds the largest score of keys s ≤ t that are valid; pass 2 adds exp(score − max)·v
// into the output row in s order and their sum, which then divides the row. Scores are f32 dot
// products in dimension order, times the scale.

@group(0) @binding(1) var<storage, read> at_q: array<f32>;
@group(0) @binding(2) var<storage, read> at_k: array<f32>;
@group(0) @binding(3) var<storage, read> at_v: array<f32>;
@group(0) @binding(4) var<storage, read> at_valid: array<u32>;
@group(0) @binding(5) var<storage, read_write> at_out: array<f32>;

fn attention_score(q_base: u32, k_base: u32) -> f32 {
  var dot = 0.0;
  for (var d = 0u; d < mp.u4; d++) {
    dot = dot + at_q[q_base + d] * at_k[k_base + d];
  }
  var s = dot * mp.f0;
  if (mp.u5 == 1u) {
    s = mp.f1 * tanh_stable(s / mp.f1);
  }
  return s;
}

@compute @workgroup_size(256)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  let T = mp.u1;
  let heads = mp.u2;
  let kv_heads = mp.u3;
  let hd = mp.u4;
  if (i >= mp.u0 * T * heads) {
    return;
  }
  let h = i % heads;
  let cell = i / heads;
  let t = cell % T;
  let first = cell - t;
  let kvh = h / (heads / kv_heads);
  let out_base = i * hd;
  for (var d = 0u; d < hd; d++) {
    at_out[out_base + d] = 0.0;
  }
  if (at_valid[cell] == 0u) {
    return;
  }
  var m = neg_inf();
  for (var s = 0u; s <= t; s++) {
    if (at_valid[first + s] != 0u) {
      let sc = attention_score(out_base, ((first + s) * kv_heads + kvh) * hd);
      if (sc > m) {
        m = sc;
      }
    }
  }
  if (m == neg_inf()) {
    return; // nothing to attend to: zeros, as the reference
  }
  var sum = 0.0;
  for (var s = 0u; s <= t; s++) {
    if (at_valid[first + s] != 0u) {
      let kv_base = ((first + s) * kv_heads + kvh) * hd;
      let p = exp(attention_score(out_base, kv_base) - m);
      sum = sum + p;
      if (p != 0.0) {
        for (var d = 0u; d < hd; d++) {
          at_out[out_base + d] = at_out[out_base + d] + p * at_v[kv_base + d];
        }
      }
    }
  }
  let inv = 1.0 / sum;
  for (var d = 0u; d < hd; d++) {
    at_out[out_base + d] = at_out[out_base + d] * inv;
  }
}
