// diffusers' DiagonalGaussianDistribution.sample() over the encoder's moments: mean + std·ε with
// std = exp(0.5·clamp(logvar, -30, 20)). The moments [B, 2C, h, w] are read as they come out of
// quant_conv (mean = channels [0, C), logvar = [C, 2C), torch.chunk order) so the split, the exp
// and the sample are one pass; ε [B, C, h, w] is the Philox noise (shaders/rng.wgsl).
#include "common"

const WG = 256u;
// n: values in the sample (B·C·h·w); chw: C·h·w, one batch element of the sample.
struct U { n: u32, chw: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> moments: array<f32>;
@group(0) @binding(2) var<storage, read> noise: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
  let b = i / u.chw;
  let j = i - b * u.chw;
  let mean = moments[2u * b * u.chw + j];
  let logvar = clamp(moments[(2u * b + 1u) * u.chw + j], -30.0, 20.0);
  out[i] = mean + exp(0.5 * logvar) * noise[i];
}
