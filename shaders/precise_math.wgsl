// Portable sin/cos/log (and the erf behind GELU) for the kernels whose results must match torch closely and be the same on
// every adapter (timestep embedding, Gaussian noise). WGSL only promises 2^-11 absolute for the
// builtin sin/cos on [-pi, pi] (nothing outside it) and 2^-21 absolute for log near 1, and
// adapters differ, so these use exact-product Cody-Waite range reduction and short polynomials
// built from +, *, / alone, which WGSL rounds (nearly) correctly everywhere.

// pi/2 = PIO2_1 + PIO2_2 + PIO2_3 + PIO2_4: the first three have at most 11 significant bits, so
// k * PIO2_i is exact for |k| < 2^13, i.e. |x| < ~12800.
const PIO2_1 = 1.5703125;
const PIO2_2 = 0.0004837512969970703125;
const PIO2_3 = 7.54953362047672271728515625e-8;
const PIO2_4 = 2.5633440682570896e-12;
const PIO2 = 1.5707963267948966;
const TWO_OVER_PI = 0.6366197723675814;

// ln 2 = LN2_HI + LN2_LO with LN2_HI short, so e * LN2_HI is exact for any f32 exponent.
const LN2_HI = 0.693145751953125;
const LN2_LO = 1.4286068203094173e-6;

// (sin r, cos r) for |r| <= ~pi/4. Taylor to r^9 / r^10: truncation below 2e-9 there.
fn sincos_small(r: f32) -> vec2f {
  let r2 = r * r;
  let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362880.0))));
  let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0)))));
  return vec2f(s, c);
}

// (sin x, cos x) for x = q * pi/2 + r.
fn sincos_quadrant(r: f32, q: i32) -> vec2f {
  let sc = sincos_small(r);
  switch (q & 3) {
    case 0: { return sc; }
    case 1: { return vec2f(sc.y, -sc.x); }
    case 2: { return -sc; }
    default: { return vec2f(-sc.y, sc.x); }
  }
}

// (sin x, cos x), about 1e-7 absolute for |x| < ~12800 (timestep arguments reach ~1000).
fn sincos_precise(x: f32) -> vec2f {
  let k = round(x * TWO_OVER_PI);
  let r = (((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3) - k * PIO2_4;
  return sincos_quadrant(r, i32(k));
}

// ln(u) for a normal, positive u, to a few ulp relative, including near 1 (where Box-Muller's
// radius sqrt(-2 ln u) is most sensitive).
fn log_precise(u: f32) -> f32 {
  let bits = bitcast<u32>(u);
  var e = i32(bits >> 23u) - 127;
  var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
  if (m > 1.4142135) {
    m *= 0.5;
    e += 1;
  }
  // ln m = 2 atanh(s); |s| <= 0.172, so the series to s^11 is good to ~2e-11.
  let s = (m - 1.0) / (m + 1.0);
  let s2 = s * s;
  let lnm = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0))))));
  let fe = f32(e);
  return fe * LN2_HI + (fe * LN2_LO + lnm);
}

// erf(x) by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7): torch's GELU is the exact erf form,
// and the tanh approximation is off by up to ~5e-4.
fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * z);
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - p * exp(-z * z));
}

// torch.nn.functional.gelu (approximate='none'): diffusers' GEGLU gate, transformers' "gelu".
fn gelu_erf(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}
