// diffusers' rescale_noise_cfg (guidance_rescale φ, "Common Diffusion Noise Schedules and Sample
// Steps are Flawed", §3.4) on a guidance batch eps = [cond (B images); uncond (B images)], in
// place: the guided g = u + s·(c − u) is scaled by φ·std(c)/std(g) + (1 − φ), std over all of an
// image's values with torch's unbiased (n − 1) divisor, and written over the cond half. The
// scheduler step then runs with guidance 1, where u + 1·(g' − u) gives g' back.
// One workgroup per image; the statistics are two-pass (mean, then deviations) in f32.
#include "common"

const WG = 256u;

struct U { n: u32, batch: u32, guidance: f32, rescale: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

#include "run_stats"

fn guided(c: u32, i: u32) -> f32 {
  let cv = x[c + i];
  let uv = x[c + u.batch * u.n + i];
  return uv + u.guidance * (cv - uv);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, t: Lane) {
  let lid = t.lid;
  let c = wid.x * u.n;
  let sc = run_stats(c, u.n, t);
  var s = 0.0;
  for (var i = lid; i < u.n; i += WG) { s += guided(c, i); }
  let mean = wg_sum(s, t) / f32(u.n);
  var q = 0.0;
  for (var i = lid; i < u.n; i += WG) {
    let d = guided(c, i) - mean;
    q += d * d;
  }
  let varg = wg_sum(q, t);
  let unbias = 1.0 / f32(max(u.n, 2u) - 1u);
  let std_c = sqrt(sc.z * f32(u.n) * unbias);
  let std_g = sqrt(varg * unbias);
  let f = u.rescale * std_c / std_g + (1.0 - u.rescale);
  // Each element is rewritten by the thread that reads it here; the reductions above, which read
  // every element, ended in barriers.
  for (var i = lid; i < u.n; i += WG) { x[c + i] = guided(c, i) * f; }
}
