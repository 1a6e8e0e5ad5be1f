// w += scale · delta, in place, for a weight in its storage type: a LoRA's up·down product (f32,
// from the GEMM) merged into the weight it adapts, or taken out again with the scale negated.
// One thread per stored word: W_PACKED weights hold two halves per u32, both updated together so
// no two threads write one word. f16 weights round once, as diffusers' fuse_lora does in half
// precision.
#include "common"

// n: the stored elements (N4: the padded ones); N, K: the weight as [N, K] (N4 reads delta at
// (n, k), delta being row-major).
struct U { n: u32, scale: f32, N: u32, K: u32 }

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> delta: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<wst>;

// The scaled delta of stored element e (e < u.n). An 'n4' weight (Tensor.layout) stores (n, k) at
// ((n / 4)·K + k)·4 + n % 4; its padding rows (n >= N) stay zero.
fn d(e: u32) -> f32 {
#if N4
  let n = (e / (4u * u.K)) * 4u + e % 4u;
  let k = (e / 4u) % u.K;
  if (n >= u.N) { return 0.0; }
  return u.scale * delta[n * u.K + k];
#else
  return u.scale * delta[e];
#endif
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_workgroup(wid, nwg) * 256u + lid;
#if W_PACKED
  let e = 2u * i;
  if (e >= u.n) { return; }
  let hi = select(0.0, d(min(e + 1u, u.n - 1u)), e + 1u < u.n);
  w[i] = pack2x16float(unpack2x16float(w[i]) + vec2<f32>(d(e), hi));
#else
  if (i >= u.n) { return; }
  w[i] = wst(f32(w[i]) + d(i));
#endif
}
