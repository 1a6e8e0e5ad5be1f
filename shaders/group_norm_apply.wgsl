// Group norm's output side, shared by its APPLY pass (one thread per value, statistics read from
// the STATS pass) and its FUSED form (a workgroup per group, statistics of its own): the uniforms,
// the bindings from the affine weights on, and normalized(), which takes value i to its output
// before the storage rounding. The includer declares x (binding 1).
struct U {
  n: u32, spatial: u32, C: u32, group_size: u32,
#if SPATIAL
  W: u32, zh: u32, zw: u32, sy: f32, sx: f32,
#endif
#if FUSED
  eps: f32, groups_total: u32,
#endif
}
@group(0) @binding(0) var<uniform> u: U;
// The affine weights are model weights, stored as wst (common.wgsl).
@group(0) @binding(3) var<storage, read> gamma: array<wst>;
@group(0) @binding(4) var<storage, read> beta: array<wst>;
@group(0) @binding(5) var<storage, read_write> out: array<st>;
#if SCALE_SHIFT
@group(0) @binding(6) var<storage, read> ss: array<st>;
#endif
#if SPATIAL
@group(0) @binding(6) var<storage, read> my: array<st>;
@group(0) @binding(7) var<storage, read> mb: array<st>;
#endif

// (x - shift - (mean - shift)) · rstd, the channel's affine, then scale/shift or the spatial
// modulation, then the activation (act in common.wgsl; the identity without an ACT_* parameter).
fn normalized(i: u32, shift: f32, dmean: f32, rstd: f32) -> f32 {
  let c = (i / u.spatial) % u.C;
  var y = ((f32(x[i]) - shift) - dmean) * rstd * wval(gamma[widx(c)], c) + wval(beta[widx(c)], c);
#if SCALE_SHIFT
  let row = (i / (u.spatial * u.C)) * 2u * u.C;
  y = y * (1.0 + f32(ss[row + c])) + f32(ss[row + u.C + c]);
#endif
#if SPATIAL
  let p = i % u.spatial;
  let zy = min(u32(floor(f32(p / u.W) * u.sy)), u.zh - 1u);
  let zx = min(u32(floor(f32(p % u.W) * u.sx)), u.zw - 1u);
  let m = (i / u.spatial) * u.zh * u.zw + zy * u.zw + zx;
  y = y * f32(my[m]) + f32(mb[m]);
#endif
  return act(y);
}
