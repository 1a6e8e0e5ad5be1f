// Mean and biased variance of one contiguous run x[base .. base + n), shared by the WG threads of
// a workgroup (group norm's groups, layer norm's rows). Two passes like torch: the mean first,
// then the variance around it (no E[x^2] - E[x]^2 cancellation); sums are taken around the run's
// first value so a large common offset costs no precision either. The includer declares WG and
// the storage array `x` (of st, read as f32), and calls run_stats from uniform control flow (it has
// barriers) with its entry point's Lane (wg_reduce.wgsl).

#include "wg_reduce"

/** (shift, mean - shift, variance) */
fn run_stats(base: u32, n: u32, t: Lane) -> vec3<f32> {
  return run_stats_around(base, n, f32(x[base]), t);
}

/** (shift, mean - shift, variance) of x[base .. base + n) around a given shift (a part of a longer run shares the run's). */
fn run_stats_around(base: u32, n: u32, shift: f32, t: Lane) -> vec3<f32> {
  var s = 0.0;
  for (var i = t.lid; i < n; i += WG) { s += f32(x[base + i]) - shift; }
  let dmean = wg_sum(s, t) / f32(n);
  var q = 0.0;
  for (var i = t.lid; i < n; i += WG) {
    let d = (f32(x[base + i]) - shift) - dmean;
    q += d * d;
  }
  return vec3<f32>(shift, dmean, wg_sum(q, t) / f32(n));
}
