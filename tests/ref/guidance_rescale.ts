/**
 * diffusers' rescale_noise_cfg after the guidance combine, float64: per image, g = u + s·(c − u),
 * then g·(φ·std(c)/std(g) + 1 − φ) with torch.std's unbiased divisor. eps = [cond; uncond].
 */
export function guidanceRescaleRef(eps: ArrayLike<number>, batch: number, guidance: number, rescale: number): Float64Array {
  const n = eps.length / (2 * batch);
  const out = new Float64Array(batch * n);
  const std = (v: Float64Array) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
  };
  for (let b = 0; b < batch; b++) {
    const c = Float64Array.from({ length: n }, (_, i) => eps[b * n + i]!);
    const g = c.map((cv, i) => eps[(batch + b) * n + i]! + guidance * (cv - eps[(batch + b) * n + i]!));
    const f = (rescale * std(c)) / std(g) + (1 - rescale);
    g.forEach((v, i) => (out[b * n + i] = v * f));
  }
  return out;
}
