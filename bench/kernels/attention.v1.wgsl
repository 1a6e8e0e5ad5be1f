// Naive attention, the baseline for shaders/attention.wgsl: the full score matrix
// s: [B, heads, Tq, Tk] in global memory, in three passes chosen by one param each.
//   SCORES:  s = q·kᵀ·scale, one thread per score
//   SOFTMAX: each row of s in place, one thread per row (max, exp, sum, normalize)
//   PV:      out = s·v, one thread per output element
#include "common"

struct U {
  B: u32, Tq: u32, Tk: u32, C: u32, heads: u32, d: u32,
  // threads this pass runs (the workgroup count is folded)
  n: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> u: U;
#if SCORES
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
#endif
#if PV
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> s: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
#else
@group(0) @binding(4) var<storage, read_write> s: array<f32>;
#endif

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = flat_workgroup(wid, nwg) * 64u + lid;
  if (t >= u.n) { return; }
#if SCORES
  let j = t % u.Tk;
  let row = t / u.Tk;
  let i = row % u.Tq;
  let bh = row / u.Tq;
  let h = bh % u.heads;
  let b = bh / u.heads;
  let qb = (b * u.Tq + i) * u.C + h * u.d;
  let kb = (b * u.Tk + j) * u.C + h * u.d;
  var dot = 0.0;
  for (var c = 0u; c < u.d; c++) { dot = fma(q[qb + c], k[kb + c], dot); }
  s[t] = dot * u.scale;
#elif SOFTMAX
  let base = t * u.Tk;
  var m = s[base];
  for (var j = 1u; j < u.Tk; j++) { m = max(m, s[base + j]); }
  var sum = 0.0;
  for (var j = 0u; j < u.Tk; j++) {
    let p = exp(s[base + j] - m);
    s[base + j] = p;
    sum += p;
  }
  let inv = 1.0 / sum;
  for (var j = 0u; j < u.Tk; j++) { s[base + j] *= inv; }
#elif PV
  let ch = t % u.C;
  let i = (t / u.C) % u.Tq;
  let b = t / (u.C * u.Tq);
  let h = ch / u.d;
  let sb = ((b * u.heads + h) * u.Tq + i) * u.Tk;
  var acc = 0.0;
  for (var j = 0u; j < u.Tk; j++) { acc = fma(s[sb + j], v[(b * u.Tk + j) * u.C + ch], acc); }
  out[t] = acc;
#endif
}
