// In-place softmax over the rows of attention's f32 score scratch (src/kernels/attention.ts, the
// GEMM path): s[row, j] <- exp(s[row, j] - max) / sum over the row's visible keys. The scores
// already carry the softmax scale (the Q·Kᵀ GEMM's epilogue). One workgroup per row: a row is a
// few thousand keys, and the row's max and sum each take one workgroup reduction.
//
// The scratch holds rows_per_z query rows, from query r0 on, of each (batch, head): row
// = z·rows_per_z + m is query r0 + m. CAUSAL: query i sees keys j <= i, the rest become 0.
#include "common"

struct U {
  rows: u32, cols: u32,
  rows_per_z: u32, r0: u32,
}

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;

const WG = 64u;
#include "wg_reduce"

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, t: Lane) {
  let lid = t.lid;
  let row = flat_workgroup(wid, nwg);
  // The whole workgroup leaves together: the barriers below stay uniform.
  if (row >= u.rows) { return; }
  let base = row * u.cols;
#if CAUSAL
  // Key 0 is always visible, so the sum below is at least 1.
  let n = min(u.cols, u.r0 + row % u.rows_per_z + 1u);
#else
  let n = u.cols;
#endif
  var m = -3.0e38;
  for (var j = lid; j < n; j += WG) { m = max(m, s[base + j]); }
  m = wg_max(m, t);
  // exp once per score: kept in place, then scaled by the row's 1 / sum.
  var l = 0.0;
  for (var j = lid; j < n; j += WG) {
    let e = exp(s[base + j] - m);
    s[base + j] = e;
    l += e;
  }
  let inv = 1.0 / wg_sum(l, t);
  for (var j = lid; j < u.cols; j += WG) { s[base + j] = select(0.0, s[base + j] * inv, j < n); }
}
