// Forward diffusion q(x_t | x_0): x_t = a * x0 + b * noise, both scalings and the sum in one pass
// (what DDPMScheduler.add_noise does in three torch ops, a = sqrt(alpha_bar), b = sqrt(1 -
// alpha_bar); Euler's add_noise is a = 1, b = sigma), for img2img starts, inpainting's re-noised
// known region and training-style noising. With COEF, a and b come from a storage buffer row so
// one planned graph serves every step of a loop.
#include "common"

const WG = 256u;

#if COEF
struct U { n: u32, coef_index: u32 }
@group(0) @binding(4) var<storage, read> coef: array<f32>;
#else
struct U { n: u32, a: f32, b: f32 }
#endif
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x0: array<f32>;
@group(0) @binding(2) var<storage, read> noise: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
#if COEF
  let a = coef[u.coef_index];
  let b = coef[u.coef_index + 1u];
#else
  let a = u.a;
  let b = u.b;
#endif
  out[i] = a * x0[i] + b * noise[i];
}
