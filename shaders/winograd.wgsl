// Winograd F(2x2, 3x3) for stride-1 3x3 convs (Lavin & Gray, 2015): each 2x2 block of outputs
// ("tile") is Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A of the 4x4 input patch d under it and each 3x3 filter g,
// so the conv becomes 16 independent GEMMs over channels, one per element ξ of the 4x4 transform
// domain, with 16 multiplies per tile and channel pair where the direct conv has 36 (2.25x fewer).
// This file holds the two transforms into that domain; the 16 GEMMs run on the GEMM core, and the
// output transform Aᵀ·M·A with the conv's epilogue in its WINO_OUT variant (shaders/gemm.wgsl).
// src/kernels/winograd.ts drives all three.
//
// INPUT: V[ξ][ci][m] = (Bᵀ·d·B)[ξ] for tile m = b·tiles + ty·tw + tx of batch item b (channel-major
// per ξ: the GEMMs read it as A_COLMAJOR with z = ξ, K = Cin, M = batch·tiles). The patch starts at
// (2·ty - padT, 2·tx - padL) of the conv's input, zero outside it; with UPSAMPLE that input is x
// nearest-upsampled to (upH, upW), read at each position's source pixel.
// WEIGHT (once per weight, not per step): U[ξ] = G·g·Gᵀ for every (cout, cin), stored for the
// GEMM core as 16 planes of an 'n4' weight (four output channels interleaved per cin, Cout padded
// to a multiple of 4 with zeros), in the source weight's storage type. The source is row-major
// [Cout, Cin, 3, 3], or 'n4' itself with SRC_N4.
#include "common"

#if INPUT
struct U { Cin: u32, H: u32, W: u32, inH: u32, inW: u32, padT: u32, padL: u32, tw: u32, tiles: u32, Mw: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> x: array<st>;
@group(0) @binding(2) var<storage, read_write> v: array<st>;

fn at(plane: u32, iy: i32, ix: i32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(u.inH) || ix >= i32(u.inW)) { return 0.0; }
#if UPSAMPLE
  // The conv reads x upsampled to (upH, upW), 2H or 2H - 1: source row y / 2 is torch's nearest for both.
  return f32(x[(plane + u32(iy) / 2u) * u.W + u32(ix) / 2u]);
#else
  return f32(x[(plane + u32(iy)) * u.W + u32(ix)]);
#endif
}

// Bᵀ·r for a column r of four (or r·B for a row): Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
fn bt(r: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(r.x - r.z, r.y + r.z, r.z - r.y, r.y - r.w);
}

fn patch_row(plane: u32, iy: i32, x0: i32) -> vec4<f32> {
  return vec4<f32>(at(plane, iy, x0), at(plane, iy, x0 + 1), at(plane, iy, x0 + 2), at(plane, iy, x0 + 3));
}

// One thread per (channel, tile), tiles fastest: neighbouring threads write neighbouring V entries.
// Straight-line code on whole rows: no array indexed in a loop, which CPU adapters keep in memory.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * 256u + lid.x;
  if (i >= u.Cin * u.Mw) { return; }
  let m = i % u.Mw;
  let ci = i / u.Mw;
  let b = m / u.tiles;
  let t = m % u.tiles;
  let y0 = i32(2u * (t / u.tw)) - i32(u.padT);
  let x0 = i32(2u * (t % u.tw)) - i32(u.padL);
  let plane = (b * u.Cin + ci) * u.H;
  let d0 = patch_row(plane, y0, x0);
  let d1 = patch_row(plane, y0 + 1, x0);
  let d2 = patch_row(plane, y0 + 2, x0);
  let d3 = patch_row(plane, y0 + 3, x0);
  // Row r of Bᵀ·d·B is bt(row r of Bᵀ·d); element ξ = 4r + c goes to V plane ξ.
  let stride = u.Cin * u.Mw;
  let o = ci * u.Mw + m;
  let r0 = bt(d0 - d2);
  let r1 = bt(d1 + d2);
  let r2 = bt(d2 - d1);
  let r3 = bt(d1 - d3);
  v[o] = st(r0.x); v[o + stride] = st(r0.y); v[o + 2u * stride] = st(r0.z); v[o + 3u * stride] = st(r0.w);
  v[o + 4u * stride] = st(r1.x); v[o + 5u * stride] = st(r1.y); v[o + 6u * stride] = st(r1.z); v[o + 7u * stride] = st(r1.w);
  v[o + 8u * stride] = st(r2.x); v[o + 9u * stride] = st(r2.y); v[o + 10u * stride] = st(r2.z); v[o + 11u * stride] = st(r2.w);
  v[o + 12u * stride] = st(r3.x); v[o + 13u * stride] = st(r3.y); v[o + 14u * stride] = st(r3.z); v[o + 15u * stride] = st(r3.w);
}
#endif

#if WEIGHT
// N: Cout; Np: Cout padded to a multiple of 4 (each plane's rows).
struct U { N: u32, Np: u32, Cin: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> w: array<wst>;
#if W_PACKED
@group(0) @binding(2) var<storage, read_write> wt: array<vec2<u32>>;
#else
@group(0) @binding(2) var<storage, read_write> wt: array<vec4<wst>>;
#endif

// g(n, ci, tap) of the source weight as f32 (zero for the padding channels n >= N).
fn g_at(n: u32, ci: u32, tap: u32) -> f32 {
  if (n >= u.N) { return 0.0; }
  let k = ci * 9u + tap;
#if SRC_N4
  let i = ((n / 4u) * u.Cin * 9u + k) * 4u + n % 4u;
#else
  let i = n * u.Cin * 9u + k;
#endif
  return wval(w[widx(i)], i);
}

// G·r for a column r of three (or r·Gᵀ for a row): G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
fn gt(r: vec3<f32>) -> vec4<f32> {
  return vec4<f32>(r.x, 0.5 * (r.x + r.y + r.z), 0.5 * (r.x - r.y + r.z), r.z);
}

// Rows r = 0..3 of G·g·Gᵀ for output channel n (zeros for a padding channel).
struct Filter { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32> }

fn transform(n: u32, ci: u32) -> Filter {
  let g0 = vec3<f32>(g_at(n, ci, 0u), g_at(n, ci, 1u), g_at(n, ci, 2u));
  let g1 = vec3<f32>(g_at(n, ci, 3u), g_at(n, ci, 4u), g_at(n, ci, 5u));
  let g2 = vec3<f32>(g_at(n, ci, 6u), g_at(n, ci, 7u), g_at(n, ci, 8u));
  // Row r of G·g·Gᵀ is gt(row r of G·g).
  return Filter(gt(g0), gt(0.5 * (g0 + g1 + g2)), gt(0.5 * (g0 - g1 + g2)), gt(g2));
}

fn put(o: u32, val: vec4<f32>) {
#if W_PACKED
  wt[o] = vec2<u32>(pack2x16float(val.xy), pack2x16float(val.zw));
#else
  wt[o] = vec4<wst>(val);
#endif
}

// One thread per (group of four output channels, cin): it writes whole stored vec4s (or word
// pairs) of every plane, never a part of one another thread writes.
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * 256u + lid.x;
  let groups = u.Np / 4u;
  if (i >= groups * u.Cin) { return; }
  let ci = i % u.Cin;
  let q = i / u.Cin;
  let a = transform(4u * q, ci);
  let b = transform(4u * q + 1u, ci);
  let c = transform(4u * q + 2u, ci);
  let d = transform(4u * q + 3u, ci);
  // Plane ξ holds Np / 4 groups of Cin vec4s; its vec4 for this (q, ci) is the four channels' ξ.
  let o = q * u.Cin + ci;
  let plane = groups * u.Cin;
  put(o, vec4<f32>(a.r0.x, b.r0.x, c.r0.x, d.r0.x));
  put(o + plane, vec4<f32>(a.r0.y, b.r0.y, c.r0.y, d.r0.y));
  put(o + 2u * plane, vec4<f32>(a.r0.z, b.r0.z, c.r0.z, d.r0.z));
  put(o + 3u * plane, vec4<f32>(a.r0.w, b.r0.w, c.r0.w, d.r0.w));
  put(o + 4u * plane, vec4<f32>(a.r1.x, b.r1.x, c.r1.x, d.r1.x));
  put(o + 5u * plane, vec4<f32>(a.r1.y, b.r1.y, c.r1.y, d.r1.y));
  put(o + 6u * plane, vec4<f32>(a.r1.z, b.r1.z, c.r1.z, d.r1.z));
  put(o + 7u * plane, vec4<f32>(a.r1.w, b.r1.w, c.r1.w, d.r1.w));
  put(o + 8u * plane, vec4<f32>(a.r2.x, b.r2.x, c.r2.x, d.r2.x));
  put(o + 9u * plane, vec4<f32>(a.r2.y, b.r2.y, c.r2.y, d.r2.y));
  put(o + 10u * plane, vec4<f32>(a.r2.z, b.r2.z, c.r2.z, d.r2.z));
  put(o + 11u * plane, vec4<f32>(a.r2.w, b.r2.w, c.r2.w, d.r2.w));
  put(o + 12u * plane, vec4<f32>(a.r3.x, b.r3.x, c.r3.x, d.r3.x));
  put(o + 13u * plane, vec4<f32>(a.r3.y, b.r3.y, c.r3.y, d.r3.y));
  put(o + 14u * plane, vec4<f32>(a.r3.z, b.r3.z, c.r3.z, d.r3.z));
  put(o + 15u * plane, vec4<f32>(a.r3.w, b.r3.w, c.r3.w, d.r3.w));
}
#endif
