// w += scale · delta, in place, for a weight in its storage type: a LoRA's up·down product (f32,
// from the GEMM) merged into the weight it adapts, or taken out again with the scale negated.
// One thread per stored word: W_PACKED weights hold two halves per u32, both updated together so
// no two threads write one word. f16 weights round once, as diffusers' fuse_lora does in half
// precision.
#include "common"

struct U { n: u32, scale: f32 }

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> delta: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<wst>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_workgroup(wid, nwg) * 256u + lid;
#if W_PACKED
  let e = 2u * i;
  if (e >= u.n) { return; }
  let hi = select(0.0, u.scale * delta[min(e + 1u, u.n - 1u)], e + 1u < u.n);
  w[i] = pack2x16float(unpack2x16float(w[i]) + vec2<f32>(u.scale * delta[e], hi));
#else
  if (i >= u.n) { return; }
  w[i] = wst(f32(w[i]) + u.scale * delta[i]);
#endif
}
