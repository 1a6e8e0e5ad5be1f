// GroupNorm over NCHW in two dispatches. In NCHW the C/G channels of a group are contiguous, so
// a (batch, group) is one run of group_size = (C/G)*spatial values.
//  STATS: one workgroup per (batch, group) reads its run twice, as torch does: the mean first,
//    then the biased variance around it (no E[x^2] - E[x]^2 cancellation). Sums are taken around
//    the run's first value (`shift`), so a large common offset costs no precision either.
//    Writes (shift, mean - shift, rstd, 0) per group.
//  APPLY: fully parallel normalize + per-channel affine + optional SiLU, fused so the activation
//    after a norm (every ResNet block's first step) costs no extra pass over memory.
#include "common"

#if STATS
// Threads per group: a template parameter because reductions with many threads and barriers
// cost far more than the arithmetic on small groups (and on CPU adapters, where barriers are
// emulated), while large groups (Stable Diffusion's VAE) need the parallel sum.
const WG = {{WG}}u;
struct U { group_size: u32, groups_total: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

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
  let grp = flat_workgroup(wid, nwg);
  if (grp >= u.groups_total) { return; }
  let n = u.group_size;
  let base = grp * n;
  let shift = x[base];
  var s = 0.0;
  for (var i = lid.x; i < n; i += WG) { s += x[base + i] - shift; }
  let dmean = workgroup_sum(s, lid.x) / f32(n);
  var q = 0.0;
  for (var i = lid.x; i < n; i += WG) {
    let d = (x[base + i] - shift) - dmean;
    q += d * d;
  }
  let variance = workgroup_sum(q, lid.x) / f32(n);
  if (lid.x == 0u) {
    stats[grp * 4u] = shift;
    stats[grp * 4u + 1u] = dmean;
    stats[grp * 4u + 2u] = inverseSqrt(variance + u.eps);
    stats[grp * 4u + 3u] = 0.0;
  }
}
#endif

#if APPLY
const WG = 256u;
struct U { n: u32, spatial: u32, C: u32, group_size: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  let c = (i / u.spatial) % u.C;
  let g = (i / u.group_size) * 4u;
  var y = ((x[i] - stats[g]) - stats[g + 1u]) * stats[g + 2u] * gamma[c] + beta[c];
#if SILU
  y = silu(y);
#endif
  out[i] = y;
}
#endif
