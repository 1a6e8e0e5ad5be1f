// VectorQuantizer's lookup in float64: exact squared distances, first minimum wins.

export interface QuantizeRef {
  out: Float64Array;
  /**
   * Per pixel: (second-best − best squared distance) / (||z||² + ||e_best||²). The kernel, like
   * torch, computes ||z||² − 2 z·e + ||e||², whose rounding error scales with that denominator, so
   * small values are near-ties that f32 may settle differently.
   */
  gaps: Float64Array;
}

/** z [B, D, h, w] (NCHW), codebook [K, D]. */
export function quantizeRef(z: ArrayLike<number>, codebook: ArrayLike<number>, B: number, D: number, hw: number, K: number): QuantizeRef {
  const out = new Float64Array(B * D * hw);
  const gaps = new Float64Array(B * hw);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < hw; s++) {
      let best = 0;
      let bestDist = Infinity;
      let second = Infinity;
      for (let k = 0; k < K; k++) {
        let dist = 0;
        for (let c = 0; c < D; c++) {
          const diff = z[(b * D + c) * hw + s]! - codebook[k * D + c]!;
          dist += diff * diff;
        }
        if (dist < bestDist) {
          second = bestDist;
          bestDist = dist;
          best = k;
        } else if (dist < second) {
          second = dist;
        }
      }
      let scale = 0;
      for (let c = 0; c < D; c++) {
        const [zc, ec] = [z[(b * D + c) * hw + s]!, codebook[best * D + c]!];
        out[(b * D + c) * hw + s] = ec;
        scale += zc * zc + ec * ec;
      }
      gaps[b * hw + s] = (second - bestDist) / Math.max(scale, 1e-30);
    }
  }
  return { out, gaps };
}
