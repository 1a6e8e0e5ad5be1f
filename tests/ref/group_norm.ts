import { maybeActRef, type ActName } from './elementwise.ts';

// float64 GroupNorm as torch defines it: biased variance per (batch, group), then affine; with
// scaleShift [B, 2C], ResnetBlock2D's scale_shift y·(1 + scale) + shift before the activation
// (`silu`: true for SiLU, or an activation's name).

export function groupNormRef(
  x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>,
  B: number, C: number, spatial: number, groups: number, eps: number, silu: boolean | ActName = false, scaleShift?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(B * C * spatial);
  const cpg = C / groups;
  const n = cpg * spatial;
  for (let b = 0; b < B; b++)
    for (let grp = 0; grp < groups; grp++) {
      const base = (b * groups + grp) * n;
      let mean = 0;
      for (let i = 0; i < n; i++) mean += x[base + i]!;
      mean /= n;
      let variance = 0;
      for (let i = 0; i < n; i++) variance += (x[base + i]! - mean) ** 2;
      variance /= n;
      const rstd = 1 / Math.sqrt(variance + eps);
      for (let i = 0; i < n; i++) {
        const c = grp * cpg + Math.floor(i / spatial);
        let y = (x[base + i]! - mean) * rstd * gamma[c]! + beta[c]!;
        if (scaleShift) y = y * (1 + scaleShift[b * 2 * C + c]!) + scaleShift[b * 2 * C + C + c]!;
        out[base + i] = maybeActRef(silu, y);
      }
    }
  return out;
}

/**
 * SpatialNorm (diffusers' attention_processor.SpatialNorm with the 1x1 convs already applied):
 * groupNorm(x)·my + mb, with my, mb [B, C, zh, zw] upsampled to x's [H, W] as torch's
 * F.interpolate(size, mode='nearest') does on float32 tensors (source index
 * min(floorf(dst · (float)in/out), in − 1), every step rounded to f32), then the optional SiLU.
 */
export function groupNormSpatialRef(
  x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>,
  B: number, C: number, H: number, W: number, groups: number, eps: number, silu: boolean | ActName,
  my: ArrayLike<number>, mb: ArrayLike<number>, zh: number, zw: number,
): Float64Array {
  const out = groupNormRef(x, gamma, beta, B, C, H * W, groups, eps);
  for (let bc = 0; bc < B * C; bc++)
    for (let oy = 0; oy < H; oy++)
      for (let ox = 0; ox < W; ox++) {
        const i = (bc * H + oy) * W + ox;
        const src = (dst: number, n: number, out: number) => Math.min(Math.floor(Math.fround(dst * Math.fround(n / out))), n - 1);
        const m = (bc * zh + src(oy, zh, H)) * zw + src(ox, zw, W);
        const y = out[i]! * my[m]! + mb[m]!;
        out[i] = maybeActRef(silu, y);
      }
  return out;
}
