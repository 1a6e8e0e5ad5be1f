// float64 LayerNorm over the last dimension: biased variance per row, then affine.

export function layerNormRef(x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, C: number, eps: number): Float64Array {
  const rows = x.length / C;
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    let mean = 0;
    for (let i = 0; i < C; i++) mean += x[base + i]!;
    mean /= C;
    let variance = 0;
    for (let i = 0; i < C; i++) variance += (x[base + i]! - mean) ** 2;
    variance /= C;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < C; i++) out[base + i] = (x[base + i]! - mean) * rstd * gamma[i]! + beta[i]!;
  }
  return out;
}
