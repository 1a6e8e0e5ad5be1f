// LayerNorm over the last dimension (torch.nn.LayerNorm, elementwise affine), one workgroup per
// row. Rows are short (a transformer's channels, <= a few thousand), so one dispatch reads the
// row three times: mean and variance (run_stats), then the normalized, affine output.
#include "common"

// Threads per row: a template parameter so short rows do not pay for wide reductions.
const WG = {{WG}}u;
struct U { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<st>;
// The affine weights are model weights, stored as wst (common.wgsl).
@group(0) @binding(2) var<storage, read> gamma: array<wst>;
@group(0) @binding(3) var<storage, read> beta: array<wst>;
@group(0) @binding(4) var<storage, read_write> out: array<st>;

#include "run_stats"

@compute @workgroup_size({{WG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, t: Lane) {
  let row = flat_workgroup(wid, nwg);
  // Uniform per workgroup, so the early return keeps the barriers in uniform control flow.
  if (row >= u.rows) { return; }
  let n = u.C;
  let base = row * n;
  let s = run_stats(base, n, t);
  let rstd = inverseSqrt(s.z + u.eps);
  for (var i = t.lid; i < n; i += WG) {
    out[base + i] = st(((f32(x[base + i]) - s.x) - s.y) * rstd * wval(gamma[widx(i)], i) + wval(beta[widx(i)], i));
  }
}
