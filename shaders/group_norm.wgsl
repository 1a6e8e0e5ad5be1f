// GroupNorm over NCHW in two dispatches (three where the statistics run in parts). In NCHW the C/G channels of a group are contiguous, so
// a (batch, group) is one run of group_size = (C/G)*spatial values.
//  STATS: one workgroup per (batch, group): mean and variance of its run (run_stats), written
//    as (shift, mean - shift, rstd, 0) per group; with PARTS, one per part of a group, and
//    COMBINE merges the parts into the same (shift, mean - shift, rstd, 0).
//  FUSED (with STATS; CPU adapters): both in one dispatch, one workgroup per (batch, group) taking
//    its statistics and then writing its run: on lavapipe a third faster than the two passes
//    (whose apply pass has parallelism a CPU adapter cannot use), on SwiftShader the same.
//  APPLY: fully parallel normalize + per-channel affine + optional activation (ACT_SILU, ACT_MISH,
//    ACT_GELU or ACT_RELU; act in common.wgsl), fused so the activation after a norm (every ResNet
//    block's first step) costs no extra pass over memory.
//    SCALE_SHIFT: ResnetBlock2D's time_embedding_norm "scale_shift", y * (1 + scale) + shift
//    before the activation, with (scale, shift) per (batch, channel) read from the [B, 2C] projection
//    (scale = first C, shift = last C, torch.chunk order), so it costs no pass of its own.
//    SPATIAL: SpatialNorm (MoVQ), y * my + mb with my, mb = conv_y(zq), conv_b(zq) at the latent
//    size [B, C, zh, zw], read at the nearest source pixel: a 1x1 conv commutes with nearest
//    upsampling, so the upsampled maps are never materialised. The source index is torch's
//    float32 rule for F.interpolate(size=..., mode='nearest'): min(floor(f32(o) * sy), zh - 1)
//    with sy = f32(zh / H) rounded on the host (exact for equal sizes and for 2x; for other
//    ratios it reproduces torch's rounding, which floor(o·zh/H) in integers does not).
#include "common"

#if STATS
// Threads per group: a template parameter because reductions with many threads and barriers
// cost far more than the arithmetic on small groups (and on CPU adapters, where barriers are
// emulated), while large groups (Stable Diffusion's VAE) need the parallel sum.
const WG = {{WG}}u;
@group(0) @binding(1) var<storage, read> x: array<st>;
#include "run_stats"

#if PARTS
// PARTS: a GPU would wait on a few workgroups walking a million values each (an SD VAE decoder's
// 32 groups at 512²), so each group is cut into `parts` runs of `chunk` values (the last one
// shorter), one workgroup each, written as (unused, mean - shift, sum of squared deviations,
// shift) with the group's first value as the shift of every part; COMBINE merges them.
struct U { group_size: u32, groups_total: u32, parts: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size({{WG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, t: Lane) {
  let flat = flat_workgroup(wid, nwg);
  if (flat >= u.groups_total * u.parts) { return; }
  let base = (flat / u.parts) * u.group_size;
  let start = (flat % u.parts) * u.chunk;
  let n = min(u.chunk, u.group_size - start);
  let shift = f32(x[base]);
  let st = run_stats_around(base + start, n, shift, t);
  if (t.lid == 0u) {
    partial[flat * 4u] = 0.0;
    partial[flat * 4u + 1u] = st.y;
    partial[flat * 4u + 2u] = st.z * f32(n);
    partial[flat * 4u + 3u] = shift;
  }
}
#elif FUSED
#include "group_norm_apply"

@compute @workgroup_size({{WG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, t: Lane) {
  let grp = flat_workgroup(wid, nwg);
  if (grp >= u.groups_total) { return; }
  let base = grp * u.group_size;
  let r = run_stats(base, u.group_size, t);
  let rstd = inverseSqrt(r.z + u.eps);
  for (var j = t.lid; j < u.group_size; j += WG) {
    out[base + j] = st(normalized(base + j, r.x, r.y, rstd));
  }
}
#else
struct U { group_size: u32, groups_total: u32, eps: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size({{WG}}, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, t: Lane) {
  let grp = flat_workgroup(wid, nwg);
  if (grp >= u.groups_total) { return; }
  let st = run_stats(grp * u.group_size, u.group_size, t);
  if (t.lid == 0u) {
    stats[grp * 4u] = st.x;
    stats[grp * 4u + 1u] = st.y;
    stats[grp * 4u + 2u] = inverseSqrt(st.z + u.eps);
    stats[grp * 4u + 3u] = 0.0;
  }
}
#endif
#endif

#if COMBINE
// One thread per group: Chan et al.'s pairwise merge of the parts' (count, mean, M2), in part
// order. The means are relative to the group's shared shift, so their differences keep their
// digits when the data sit on a large offset.
struct U { groups_total: u32, parts: u32, eps: f32, group_size: u32, chunk: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let grp = flat_workgroup(wid, nwg) * 64u + lid.x;
  if (grp >= u.groups_total) { return; }
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var p = 0u; p < u.parts; p++) {
    let i = (grp * u.parts + p) * 4u;
    // Each part's count, as PARTS cut them (exact in f32 up to 2^24 values per part).
    let nb = f32(min(u.chunk, u.group_size - p * u.chunk));
    let total = n + nb;
    let delta = partial[i + 1u] - mean;
    mean += delta * (nb / total);
    m2 += partial[i + 2u] + delta * delta * (n * nb / total);
    n = total;
  }
  stats[grp * 4u] = partial[grp * u.parts * 4u + 3u];
  stats[grp * 4u + 1u] = mean;
  stats[grp * 4u + 2u] = inverseSqrt(m2 / n + u.eps);
  stats[grp * 4u + 3u] = 0.0;
}
#endif

#if APPLY
const WG = 256u;
@group(0) @binding(1) var<storage, read> x: array<st>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
#include "group_norm_apply"

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  let g = (i / u.group_size) * 4u;
  out[i] = st(normalized(i, stats[g], stats[g + 1u], stats[g + 2u]));
}
#endif
