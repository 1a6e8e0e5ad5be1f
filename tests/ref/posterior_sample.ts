// float64 DiagonalGaussianDistribution.sample(): moments [B, 2C, S] split into mean and logvar
// along channels, std = exp(0.5·clamp(logvar, −30, 20)).

export function posteriorSampleRef(moments: ArrayLike<number>, noise: ArrayLike<number>, B: number, chw: number): Float64Array {
  const out = new Float64Array(B * chw);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < chw; j++) {
      const logvar = Math.min(Math.max(moments[(2 * b + 1) * chw + j]!, -30), 20);
      out[b * chw + j] = moments[2 * b * chw + j]! + Math.exp(0.5 * logvar) * noise[b * chw + j]!;
    }
  return out;
}
