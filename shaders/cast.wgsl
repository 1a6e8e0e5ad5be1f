// Element type conversion at model boundaries: latents, timesteps' neighbours, the scheduler and
// images stay f32 while a model built in f16 keeps its activations in f16. TO_F16 rounds to
// nearest even (WGSL's f16(x)); TO_F32 is exact. Needs shader-f16 either way.
#include "common"

const WG = 256u;

struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
#if TO_F16
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f16>;
#else
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
#endif

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
#if TO_F16
  out[i] = f16(a[i]);
#else
  out[i] = f32(a[i]);
#endif
}
