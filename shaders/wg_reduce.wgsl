// Sum and max of one f32 per thread over a workgroup of WG threads (the includer declares WG, a
// power of two), every thread getting the result. Call from workgroup-uniform control flow: both
// forms have barriers. Entry points take a `t: Lane` parameter and pass it on.
//
// SUBGROUPS: each subgroup reduces its own values (subgroupAdd/Max), one of its lanes writes
// the partial at its subgroup_id, and after one barrier every thread folds all partials in
// subgroup order: two barriers in all, where the tree below takes log2(WG) + 2. Folding every
// partial on every lane (at most WG / 4 reads) makes no assumption about how full the subgroups
// are, and gives every thread the same bits.
// Without: a tree over workgroup memory.

struct Lane {
  @builtin(local_invocation_index) lid: u32,
#if SUBGROUPS
  @builtin(subgroup_id) sg: u32,
  @builtin(num_subgroups) sgs: u32,
#endif
}

// The subgroup form's one slot per subgroup (num_subgroups <= WG), the tree's one per thread.
var<workgroup> wg_part: array<f32, WG>;

#if SUBGROUPS
fn wg_reduce(v: f32, t: Lane, take_max: bool) -> f32 {
  var s: f32;
  if (take_max) { s = subgroupMax(v); } else { s = subgroupAdd(v); }
  // One active lane per subgroup, whichever lanes the subgroup has.
  if (subgroupElect()) { wg_part[t.sg] = s; }
  workgroupBarrier();
  var r = wg_part[0];
  for (var i = 1u; i < t.sgs; i++) { r = select(r + wg_part[i], max(r, wg_part[i]), take_max); }
  // Everyone has read the partials before wg_part is reused.
  workgroupBarrier();
  return r;
}
#else
// The halving below reaches every value only for a power of two.
const_assert (WG & (WG - 1u)) == 0u;

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
