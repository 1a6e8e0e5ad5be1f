// Sum and max of one f32 per thread over a workgroup of WG threads (the includer declares WG),
// every thread getting the result. Call from workgroup-uniform control flow: both forms have
// barriers. Entry points take a `t: Lane` parameter and pass it on.
//
// SUBGROUPS: each subgroup reduces its own values (subgroupAdd/Max), one lane per subgroup writes
// the partial at its subgroup_id, and after one barrier every subgroup reduces the WG / size
// partials itself: two barriers in all, where the tree below takes log2(WG) + 1. Every subgroup
// reads the partials in the same lane order, so all threads get the same bits.
// Without: a tree over workgroup memory.

struct Lane {
  @builtin(local_invocation_index) lid: u32,
#if SUBGROUPS
  @builtin(subgroup_id) sg: u32,
  @builtin(num_subgroups) sgs: u32,
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) size: u32,
#endif
}

#if SUBGROUPS
// One slot per subgroup; WebGPU's subgroups have at least 4 invocations.
var<workgroup> wg_part: array<f32, max(WG / 4u, 1u)>;

fn wg_reduce(v: f32, t: Lane, take_max: bool) -> f32 {
  var s: f32;
  if (take_max) { s = subgroupMax(v); } else { s = subgroupAdd(v); }
  if (t.lane == 0u) { wg_part[t.sg] = s; }
  workgroupBarrier();
  // Lane l folds partials l, l + size, ... (the identity where it has none), then the subgroup
  // combines its lanes: the trip count is the same on every lane.
  var r = select(0.0, -3.0e38, take_max);
  for (var b = 0u; b < t.sgs; b += t.size) {
    let i = b + t.lane;
    if (i < t.sgs) { r = select(r + wg_part[i], max(r, wg_part[i]), take_max); }
  }
  if (take_max) { s = subgroupMax(r); } else { s = subgroupAdd(r); }
  // Everyone has read the partials before wg_part is reused.
  workgroupBarrier();
  return s;
}
#else
var<workgroup> wg_part: array<f32, WG>;

fn wg_reduce(v: f32, t: Lane, take_max: bool) -> f32 {
  wg_part[t.lid] = v;
  workgroupBarrier();
  for (var step = WG / 2u; step > 0u; step /= 2u) {
    if (t.lid < step) {
      let o = wg_part[t.lid + step];
      wg_part[t.lid] = select(wg_part[t.lid] + o, max(wg_part[t.lid], o), take_max);
    }
    workgroupBarrier();
  }
  let r = wg_part[0];
  // Everyone has read the result before wg_part is reused.
  workgroupBarrier();
  return r;
}
#endif

fn wg_sum(v: f32, t: Lane) -> f32 { return wg_reduce(v, t, false); }
fn wg_max(v: f32, t: Lane) -> f32 { return wg_reduce(v, t, true); }
