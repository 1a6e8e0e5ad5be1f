// Counter-based Gaussian noise: Philox4x32-10 (Salmon et al., SC'11) and Box-Muller, fused so
// noise is generated where it is needed instead of uploaded. Output element i is a pure function
// of (key, counter) with key = (seed low, seed high) and counter = (i / 4, stream, step, 0), so a
// seed gives the same noise on every adapter and at every dispatch size. With COUNTER the step
// word is read from a buffer (f32 step index) so one planned graph draws fresh noise every step.
// WGSL has no 64-bit integers: the 32x32->64 multiply is done in 16-bit limbs. log/sin/cos are
// the precise_math versions so the values do not depend on the adapter's builtins.
#include "common"
#include "precise_math"

const WG = 256u;
const PHILOX_M0 = 0xD2511F53u;
const PHILOX_M1 = 0xCD9E8D57u;
const PHILOX_W0 = 0x9E3779B9u;
const PHILOX_W1 = 0xBB67AE85u;

#if COUNTER
struct U { n: u32, key0: u32, key1: u32, stream: u32, counter_index: u32 }
#else
struct U { n: u32, key0: u32, key1: u32, stream: u32 }
#endif
@group(0) @binding(0) var<uniform> u: U;
#if COUNTER
@group(0) @binding(1) var<storage, read> counter: array<f32>;
#endif
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// High 32 bits of a * b.
fn mulhi(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu;
  let ah = a >> 16u;
  let bl = b & 0xffffu;
  let bh = b >> 16u;
  let lh = al * bh;
  let hl = ah * bl;
  let mid = ((al * bl) >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return ah * bh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

fn philox4x32_10(ctr: vec4u, key: vec2u) -> vec4u {
  var c = ctr;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    let hi0 = mulhi(PHILOX_M0, c.x);
    let hi1 = mulhi(PHILOX_M1, c.z);
    c = vec4u(hi1 ^ c.y ^ k.x, PHILOX_M1 * c.z, hi0 ^ c.w ^ k.y, PHILOX_M0 * c.x);
    k += vec2u(PHILOX_W0, PHILOX_W1);
  }
  return c;
}

// Two normals from two words. The top 24 bits make exact f32 uniforms: u1 in (0, 1] so the log
// is finite, and 4*u2 in [0, 4) splits exactly into a quadrant and a remainder of 2*pi*u2.
fn box_muller(w1: u32, w2: u32) -> vec2f {
  let u1 = f32((w1 >> 8u) + 1u) * (1.0 / 16777216.0);
  let radius = sqrt(max(-2.0 * log_precise(u1), 0.0));
  let t = f32(w2 >> 8u) * (1.0 / 4194304.0);
  let q = round(t);
  let sc = sincos_quadrant((t - q) * PIO2, i32(q));
  return radius * vec2f(sc.y, sc.x);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let blk = flat_workgroup(wid, nwg) * WG + lid.x;
  let i = blk * 4u;
  if (i >= u.n) { return; }
#if COUNTER
  let step_index = u32(counter[u.counter_index]);
#else
  let step_index = 0u;
#endif
  let w = philox4x32_10(vec4u(blk, u.stream, step_index, 0u), vec2u(u.key0, u.key1));
  let z = vec4f(box_muller(w.x, w.y), box_muller(w.z, w.w));
  for (var j = 0u; j < 4u; j++) {
    if (i + j < u.n) { out[i + j] = z[j]; }
  }
}
