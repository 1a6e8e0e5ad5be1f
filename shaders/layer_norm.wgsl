// LayerNorm over the last dimension (torch.nn.LayerNorm, elementwise affine), one workgroup per
// row. Rows are short (a transformer's channels, <= a few thousand), so one dispatch reads the
// row three times: mean, then the biased variance around it (two-pass like torch, no
// E[x^2] - E[x]^2 cancellation), then the normalized, affine output. Sums are taken around the
// row's first value (`shift`), so a large common offset costs no precision either.
#include "common"

// Threads per row: a template parameter so short rows do not pay for wide reductions.
const WG = {{WG}}u;
struct U { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> part: array<f32, WG>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
  part[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { part[lid] += part[lid + s]; }
    workgroupBarrier();
  }
  let total = part[0];
  workgroupBarrier(); // everyone has read part[0] before it is reused
  return total;
}

@compute @workgroup_size({{WG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = flat_workgroup(wid, nwg);
  // Uniform per workgroup, so the early return keeps the barriers in uniform control flow.
  if (row >= u.rows) { return; }
  let n = u.C;
  let base = row * n;
  let shift = x[base];
  var s = 0.0;
  for (var i = lid.x; i < n; i += WG) { s += x[base + i] - shift; }
  let dmean = workgroup_sum(s, lid.x) / f32(n);
  var q = 0.0;
  for (var i = lid.x; i < n; i += WG) {
    let d = (x[base + i] - shift) - dmean;
    q += d * d;
  }
  let rstd = inverseSqrt(workgroup_sum(q, lid.x) / f32(n) + u.eps);
  for (var i = lid.x; i < n; i += WG) {
    out[base + i] = ((x[base + i] - shift) - dmean) * rstd * gamma[i] + beta[i];
  }
}
