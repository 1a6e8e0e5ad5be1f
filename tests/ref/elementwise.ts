// float64 references for the elementwise kernels (nearest upsample lives in ./gemm.ts).

export function siluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => v / (1 + Math.exp(-v)));
}

/** The activations diffusers' act_fn names (get_activation), as torch computes them in float64. */
export type ActName = 'silu' | 'mish' | 'gelu' | 'relu';
export const ACT_NAMES: ActName[] = ['silu', 'mish', 'gelu', 'relu'];

export function actRef(act: ActName, v: number): number {
  switch (act) {
    case 'silu':
      return v / (1 + Math.exp(-v));
    case 'mish':
      // torch.nn.Mish: x·tanh(softplus(x)); softplus is log1p(exp(x)) (torch's threshold 20 returns x, the same to float64 rounding of tanh).
      return v * Math.tanh(v > 20 ? v : Math.log1p(Math.exp(v)));
    case 'gelu':
      return 0.5 * v * (1 + erfRef(v / Math.SQRT2));
    case 'relu':
      return Math.max(v, 0);
  }
}

/** An optional activation after a fused op: true is SiLU (the kernels' silu flag), false / undefined none. */
export function maybeActRef(act: boolean | ActName | undefined, v: number): number {
  return act === true ? actRef('silu', v) : act ? actRef(act, v) : v;
}

export function activationRef(act: ActName, x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => actRef(act, v));
}

export function tanhClampRef(x: ArrayLike<number>, magnitude: number): Float64Array {
  return Float64Array.from(x, (v) => Math.tanh(v / magnitude) * magnitude);
}

export function addRef(a: ArrayLike<number>, b: ArrayLike<number>, scale = 1): Float64Array {
  return Float64Array.from(a, (v, i) => (v + b[i]!) * scale);
}

/** out + s·x (a ControlNet residual into a U-Net skip). */
export function addScaledRef(out: ArrayLike<number>, x: ArrayLike<number>, s: number): Float64Array {
  return Float64Array.from(out, (v, i) => v + s * x[i]!);
}

/** torch.cat([a, b], dim=1), given each input's values per batch element. */
export function concatChannelsRef(a: ArrayLike<number>, b: ArrayLike<number>, B: number, aRun: number, bRun: number): Float64Array {
  const out = new Float64Array(B * (aRun + bRun));
  for (let n = 0; n < B; n++) {
    for (let j = 0; j < aRun; j++) out[n * (aRun + bRun) + j] = a[n * aRun + j]!;
    for (let j = 0; j < bRun; j++) out[n * (aRun + bRun) + aRun + j] = b[n * bRun + j]!;
  }
  return out;
}

/** Exact erf by its Maclaurin series (|x| < 3) or continued fraction (beyond), in float64. */
export function erfRef(x: number): number {
  const z = Math.abs(x);
  let r: number;
  if (z < 3) {
    let term = z, sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    // erfc z = exp(-z²)/sqrt(pi) · 1/(z + 1/2/(z + 1/(z + 3/2/(z + ...)))), evaluated bottom-up.
    let f = z;
    for (let k = 60; k >= 1; k--) f = z + k / 2 / f;
    r = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  }
  return x < 0 ? -r : r;
}

/** h * gelu(gate) per row of 2·half values (h first, gate second), GELU in its exact erf form. */
export function gegluRef(x: ArrayLike<number>, half: number): Float64Array {
  const rows = x.length / (2 * half);
  const out = new Float64Array(rows * half);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < half; j++) {
      const gate = x[r * 2 * half + half + j]!;
      out[r * half + j] = x[r * 2 * half + j]! * 0.5 * gate * (1 + erfRef(gate / Math.SQRT2));
    }
  return out;
}

/** Inpainting blend: x [R·B, C, plane], known [B, C, plane], mask [B, 1, plane]; m·x + (1 − m)·known. */
export function maskBlendRef(x: ArrayLike<number>, known: ArrayLike<number>, mask: ArrayLike<number>, C: number, plane: number): Float64Array {
  return Float64Array.from(x, (v, i) => {
    const k = i % known.length;
    const m = mask[Math.floor(k / (C * plane)) * plane + (k % plane)]!;
    return m * v + (1 - m) * known[k]!;
  });
}

/** F.avg_pool2d(x, 2, 2) on [B, C, H, W] (floored output size), in float64. */
export function avgPool2Ref(x: ArrayLike<number>, B: number, C: number, H: number, W: number): Float64Array {
  const Ho = Math.floor(H / 2);
  const Wo = Math.floor(W / 2);
  const y = new Float64Array(B * C * Ho * Wo);
  for (let p = 0; p < B * C; p++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++) {
        const at = (r: number, c: number) => x[(p * H + 2 * i + r) * W + 2 * j + c]!;
        y[(p * Ho + i) * Wo + j] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4;
      }
  return y;
}

/** x [B, ...] divided by d[b] (or d[0] for every b), in float64. */
export function divideBatchRef(x: ArrayLike<number>, B: number, d: ArrayLike<number>, broadcast: boolean): Float64Array {
  const per = x.length / B;
  return Float64Array.from(x, (v, i) => v / d[broadcast ? 0 : Math.floor(i / per)]!);
}

/**
 * diffusers' upfirdn2d_native on [B, C, H, W] in float64, from its definition: insert up - 1 zeros
 * after every input sample (each axis), zero-pad by pad0 before and pad1 after, correlate with the
 * flipped 2-D kernel (outer product of k1d with itself), keep every down-th output.
 */
export function upfirdn2dRef(x: ArrayLike<number>, B: number, C: number, H: number, W: number, k1d: readonly number[], up: number, down: number, pad0: number, pad1: number): { data: Float64Array; H: number; W: number } {
  const K = k1d.length;
  const k = (i: number, j: number) => k1d[K - 1 - i]! * k1d[K - 1 - j]!; // flipped (torch.flip over both axes)
  const [Hp, Wp] = [H * up + pad0 + pad1, W * up + pad0 + pad1];
  const [Ho, Wo] = [Math.floor((Hp - K) / down) + 1, Math.floor((Wp - K) / down) + 1];
  // The padded, zero-stuffed plane value at (y, x).
  const padded = (p: number, y: number, x: number) => {
    const [uy, ux] = [y - pad0, x - pad0];
    if (uy < 0 || ux < 0 || uy % up !== 0 || ux % up !== 0) return 0;
    const [iy, ix] = [uy / up, ux / up];
    return iy < H && ix < W ? x_(p, iy, ix) : 0;
  };
  const x_ = (p: number, y: number, x1: number) => x[(p * H + y) * W + x1]!;
  const out = new Float64Array(B * C * Ho * Wo);
  for (let p = 0; p < B * C; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        let s = 0;
        for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) s += k(i, j) * padded(p, oy * down + i, ox * down + j);
        out[(p * Ho + oy) * Wo + ox] = s;
      }
  return { data: out, H: Ho, W: Wo };
}

/** FirDownsample2D / FirUpsample2D without conv (kernel (1, 3, 3, 1) normalized, × factor² for up) via upfirdn2dRef. */
export function firResampleRef(x: ArrayLike<number>, B: number, C: number, H: number, W: number, direction: 'up' | 'down'): Float64Array {
  // The 2-D kernel outer(k, k) / sum, times gain·factor² = 4 for up: per axis k / 8, times 2 for up.
  const k = [1, 3, 3, 1].map((v) => (v / 8) * (direction === 'up' ? 2 : 1));
  // pad_value = 4 - 2: down pads ((2 + 1) // 2, 2 // 2) = (1, 1); up ((2 + 1) // 2 + 2 - 1, 2 // 2) = (2, 1).
  return direction === 'up' ? upfirdn2dRef(x, B, C, H, W, k, 2, 1, 2, 1).data : upfirdn2dRef(x, B, C, H, W, k, 1, 2, 1, 1).data;
}
