// GroupNorm over NCHW in two dispatches. In NCHW the C/G channels of a group are contiguous, so
// a (batch, group) is one run of group_size = (C/G)*spatial values.
//  STATS: one workgroup per (batch, group): mean and variance of its run (run_stats), written
//    as (shift, mean - shift, rstd, 0) per group.
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

#include "run_stats"

@compute @workgroup_size({{WG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let grp = flat_workgroup(wid, nwg);
  if (grp >= u.groups_total) { return; }
  let st = run_stats(grp * u.group_size, u.group_size, lid.x);
  if (lid.x == 0u) {
    stats[grp * 4u] = st.x;
    stats[grp * 4u + 1u] = st.y;
    stats[grp * 4u + 2u] = inverseSqrt(st.z + u.eps);
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
