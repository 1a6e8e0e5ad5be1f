// Forward diffusion q(x_t | x_0): x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise, both
// scalings and the sum in one pass (what DDPMScheduler.add_noise does in three torch ops), for
// img2img starts and training-style noising.
#include "common"

const WG = 256u;

struct U { n: u32, a: f32, b: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read> noise: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  out[i] = u.a * x0[i] + u.b * noise[i];
}
