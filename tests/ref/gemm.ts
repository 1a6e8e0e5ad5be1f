// Plain float64 references for the GEMM core's users.

/** y[b, m, n] = sum_k x[b, m, k] * w[n, k] + bias[n] */
export function linearRef(x: Float32Array, w: Float32Array, bias: Float32Array | null, B: number, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(B * M * N);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = bias ? bias[n]! : 0;
        for (let k = 0; k < K; k++) s += x[(b * M + m) * K + k]! * w[n * K + k]!;
        y[(b * M + m) * N + n] = s;
      }
  return y;
}

export interface ConvGeom {
  B: number; Cin: number; H: number; W: number; Cout: number; kh: number; kw: number;
  /** true = nearest 2×; [h, w] = nearest to that size (torch's F.interpolate(size=...)). */
  stride: number; pad: [number, number, number, number]; upsample?: boolean | readonly [number, number];
}

/** torch's nearest interpolation to (Ho, Wo): source index floor(dst · in / out). */
export function upsampleNearestRef(x: ArrayLike<number>, B: number, C: number, H: number, W: number, Ho = 2 * H, Wo = 2 * W): Float64Array {
  const y = new Float64Array(B * C * Ho * Wo);
  for (let p = 0; p < B * C; p++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) y[(p * Ho + i) * Wo + j] = x[(p * H + Math.floor((i * H) / Ho)) * W + Math.floor((j * W) / Wo)]!;
  return y;
}

export function conv2dRef(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, g: ConvGeom): { out: Float64Array; Hout: number; Wout: number } {
  let { H, W } = g;
  let src: ArrayLike<number> = x;
  if (g.upsample) {
    const [Ho, Wo] = g.upsample === true ? [2 * H, 2 * W] : g.upsample;
    src = upsampleNearestRef(x, g.B, g.Cin, H, W, Ho, Wo);
    H = Ho;
    W = Wo;
  }
  const [pt, pl, pb, pr] = g.pad;
  const Hout = Math.floor((H + pt + pb - g.kh) / g.stride) + 1;
  const Wout = Math.floor((W + pl + pr - g.kw) / g.stride) + 1;
  const out = new Float64Array(g.B * g.Cout * Hout * Wout);
  for (let b = 0; b < g.B; b++)
    for (let co = 0; co < g.Cout; co++)
      for (let oy = 0; oy < Hout; oy++)
        for (let ox = 0; ox < Wout; ox++) {
          let s = bias ? bias[co]! : 0;
          for (let ci = 0; ci < g.Cin; ci++)
            for (let ky = 0; ky < g.kh; ky++) {
              const iy = oy * g.stride - pt + ky;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < g.kw; kx++) {
                const ix = ox * g.stride - pl + kx;
                if (ix < 0 || ix >= W) continue;
                s += src[((b * g.Cin + ci) * H + iy) * W + ix]! * w[((co * g.Cin + ci) * g.kh + ky) * g.kw + kx]!;
              }
            }
          out[((b * g.Cout + co) * Hout + oy) * Wout + ox] = s;
        }
  return { out, Hout, Wout };
}

/**
 * An unfused LoRA's term in a GEMM's output layout: sum_r t[b, m, r]·up[n, r], for t = x·downᵀ
 * (linearRef / conv2dRef with the down matrix as the weight) laid out [B, M, R] ('rows') or
 * [B, R, M] ('channels', a conv's), up [N, R]. diffusers' LoRACompatibleLinear/Conv: y = W·x + b +
 * scale·up(down(x)), the scale (and alpha / rank) folded into up.
 */
export function loraTermRef(t: ArrayLike<number>, up: ArrayLike<number>, B: number, M: number, R: number, N: number, layout: 'rows' | 'channels'): Float64Array {
  const y = new Float64Array(B * M * N);
  for (let b = 0; b < B; b++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let r = 0; r < R; r++) s += (layout === 'rows' ? t[(b * M + m) * R + r]! : t[(b * R + r) * M + m]!) * up[n * R + r]!;
        y[layout === 'rows' ? (b * M + m) * N + n : (b * N + n) * M + m] = s;
      }
  return y;
}
