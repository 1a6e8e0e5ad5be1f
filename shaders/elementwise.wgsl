// The small memory-bound ops between the U-Net's GEMMs, one thread per output element. One
// template, one op per variant (ACT: a standalone activation, act in common.wgsl; SCALE, ADD, CONCAT, UPSAMPLE, AVG_POOL, FIR, BATCH_DIV), each a single pass over
// memory. `add` carries a scale because diffusers divides every residual sum by
// output_scale_factor; SCALE is the odd standalone multiply (latents / scaling_factor); concat
// and upsample are pure index maps (skip connections; Upsample2D where it is not already fused
// into the following conv's read). GEGLU is diffusers' FeedForward gate: the first half of each
// row times the exact (erf) GELU of the second half. TANH_CLAMP is TAESD's soft latent clamp, tanh(x / m) * m;
// AFFINE maps value ranges (TAESD's encoder takes images in [0, 1], x * 0.5 + 0.5).
// MASK_BLEND is inpainting's per-step blend, in place: out = m * out + (1 - m) * known, with
// known [B, C, h, w] repeated over out's leading batch copies (the two guidance halves) and the
// mask [B, 1, h, w] broadcast over channels.
// ADD_INTO is a ControlNet residual going into a U-Net skip, in place: out = out + s * a, with s
// a uniform, or with COEF element coef_index of an f32 storage buffer (the step row: the scale
// times the keep flag of control_guidance_start / end changes every step of one planned graph).
// AVG_POOL is nn.AvgPool2d(2, 2) (a ResnetBlock2D with down=True pools its input and its hidden
// states so), summed in torch's order; BATCH_DIV divides each batch element by its own f32 value
// (UNet2DModel's fourier time embedding ends with sample / timesteps).
// FIR (down, or up with FIR_UP) is diffusers' upfirdn2d with its fixed FIR kernel (1, 3, 3, 1) (NCSN++'s
// FirDownsample2D / FirUpsample2D and ResnetBlock2D kernel='fir', zeros outside the image):
// per axis, the 2x decimation takes taps 2o-1..2o+2 weighted 1, 3, 3, 1 (/ 8); the 2x interpolation
// gives output 2m the inputs m-1, m weighted 1, 3 (/ 4) and output 2m+1 the inputs m, m+1 weighted 3, 1.
#include "common"

const WG = 256u;

#if SCALE
struct U { n: u32, scale: f32 }
#elif ADD
struct U { n: u32, scale: f32 }
#elif CONCAT
// a_run / b_run: values per batch element in a and b (channels times spatial).
struct U { n: u32, a_run: u32, b_run: u32 }
#elif UPSAMPLE
struct U { n: u32, H: u32, W: u32 }
#elif AVG_POOL
// H, W: the input's size (the output is H / 2 x W / 2, an odd last row or column dropped).
struct U { n: u32, H: u32, W: u32 }
#elif FIR
// H, W: the input's size (the output is 2H x 2W with FIR_UP, else H / 2 x W / 2, floored as upfirdn2d's).
struct U { n: u32, H: u32, W: u32 }
#elif BATCH_DIV
// per: values per batch element; broadcast: every element divides by b[0].
struct U { n: u32, per: u32, broadcast: u32 }
#elif TANH_CLAMP
struct U { n: u32, magnitude: f32 }
#elif AFFINE
struct U { n: u32, scale: f32, shift: f32 }
#elif GEGLU
// half: output features per row (the input row holds 2 * half).
struct U { n: u32, half: u32 }
#elif MASK_BLEND
// known_n: values in known; plane: h * w; chw: C * h * w.
struct U { n: u32, known_n: u32, plane: u32, chw: u32 }
#elif ADD_INTO
// scale: s without COEF; coef_index: where s is in b with COEF.
struct U { n: u32, scale: f32, coef_index: u32 }
#else
// ACT: one value in, one out.
struct U { n: u32 }
#endif

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<st>;
#if ADD
@group(0) @binding(2) var<storage, read> b: array<st>;
#elif CONCAT
@group(0) @binding(2) var<storage, read> b: array<st>;
#elif MASK_BLEND
@group(0) @binding(2) var<storage, read> b: array<st>;
#elif BATCH_DIV
// The divisors (timesteps) stay f32 whatever the storage type.
@group(0) @binding(2) var<storage, read> b: array<f32>;
#elif ADD_INTO
#if COEF
// The coefficient row (f32 whatever the storage type).
@group(0) @binding(2) var<storage, read> b: array<f32>;
#endif
#endif
@group(0) @binding(3) var<storage, read_write> out: array<st>;

#if GEGLU
// gelu_erf, shared with the GEMM epilogue (CLIP's exact-GELU MLP) and act's ACT_GELU (which
// includes it through common; the ACT and GEGLU variants never meet).
#include "precise_math"
#endif

#if FIR
// Input value (y, x) of the plane starting at base, zero outside the image.
fn fir_at(base: u32, y: i32, x: i32) -> f32 {
  if (y < 0 || y >= i32(u.H) || x < 0 || x >= i32(u.W)) { return 0.0; }
  return f32(a[base + u32(y) * u.W + u32(x)]);
}
// The weight (/ 8) of tap t = 0..3 of the (1, 3, 3, 1) kernel.
fn fir_w(t: u32) -> f32 { return select(0.125, 0.375, t == 1u || t == 2u); }
#endif

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }
#if SCALE
  out[i] = st(f32(a[i]) * u.scale);
#elif ADD
  out[i] = st((f32(a[i]) + f32(b[i])) * u.scale);
#elif CONCAT
  let run = u.a_run + u.b_run;
  let batch = i / run;
  let j = i - batch * run;
  if (j < u.a_run) {
    out[i] = a[batch * u.a_run + j];
  } else {
    out[i] = b[batch * u.b_run + (j - u.a_run)];
  }
#elif UPSAMPLE
  let W2 = u.W * 2u;
  let H2 = u.H * 2u;
  let ox = i % W2;
  let oy = (i / W2) % H2;
  let plane = i / (W2 * H2);
  out[i] = a[(plane * u.H + oy / 2u) * u.W + ox / 2u];
#elif AVG_POOL
  let Wo = u.W / 2u;
  let Ho = u.H / 2u;
  let ox = i % Wo;
  let oy = (i / Wo) % Ho;
  let plane = i / (Wo * Ho);
  let p = (plane * u.H + 2u * oy) * u.W + 2u * ox;
  // Row by row, left to right, as torch sums the window; / 4 is exact as * 0.25.
  out[i] = st((((f32(a[p]) + f32(a[p + 1u])) + f32(a[p + u.W])) + f32(a[p + u.W + 1u])) * 0.25);
#elif FIR
#if FIR_UP
  let W2 = u.W * 2u;
  let H2 = u.H * 2u;
  let ox = i % W2;
  let oy = (i / W2) % H2;
  let base = (i / (W2 * H2)) * u.H * u.W;
  // The near input (weight 3/4) and the far one (1/4) on each axis: the far one before the near
  // one for an even output, after it for an odd one.
  let ny = i32(oy / 2u);
  let nx = i32(ox / 2u);
  let fy = ny + select(-1, 1, (oy & 1u) == 1u);
  let fx = nx + select(-1, 1, (ox & 1u) == 1u);
  let near = 0.75 * fir_at(base, ny, nx) + 0.25 * fir_at(base, ny, fx);
  let far = 0.75 * fir_at(base, fy, nx) + 0.25 * fir_at(base, fy, fx);
  out[i] = st(0.75 * near + 0.25 * far);
#else
  let Wo = u.W / 2u;
  let Ho = u.H / 2u;
  let ox = i % Wo;
  let oy = (i / Wo) % Ho;
  let base = (i / (Wo * Ho)) * u.H * u.W;
  let y0 = i32(2u * oy) - 1;
  let x0 = i32(2u * ox) - 1;
  var acc = 0.0;
  for (var r = 0u; r < 4u; r++) {
    var row = 0.0;
    for (var c = 0u; c < 4u; c++) {
      row += fir_w(c) * fir_at(base, y0 + i32(r), x0 + i32(c));
    }
    acc += fir_w(r) * row;
  }
  out[i] = st(acc);
#endif
#elif BATCH_DIV
  out[i] = st(f32(a[i]) / b[select(i / u.per, 0u, u.broadcast != 0u)]);
#elif TANH_CLAMP
  // tanh is 1 in f32 beyond |x| ~ 9; clamping first keeps adapters that build tanh from exp
  // (sinh / cosh) from overflowing to NaN.
  out[i] = st(tanh(clamp(f32(a[i]) / u.magnitude, -10.0, 10.0)) * u.magnitude);
#elif AFFINE
  out[i] = st(f32(a[i]) * u.scale + u.shift);
#elif GEGLU
  let row = i / u.half;
  let j = i - row * u.half;
  let base = row * 2u * u.half;
  out[i] = st(f32(a[base + j]) * gelu_erf(f32(a[base + u.half + j])));
#elif MASK_BLEND
  // a: known, b: mask. With m in {0, 1} either term is exactly the chosen value.
  let k = i % u.known_n;
  let m = f32(b[(k / u.chw) * u.plane + k % u.plane]);
  out[i] = st(m * f32(out[i]) + (1.0 - m) * f32(a[k]));
#elif ADD_INTO
#if COEF
  let s = b[u.coef_index];
#else
  let s = u.scale;
#endif
  out[i] = st(f32(out[i]) + s * f32(a[i]));
#else
  // ACT: the activation act (common.wgsl) picks from ACT_*.
  out[i] = st(act(f32(a[i])));
#endif
}
