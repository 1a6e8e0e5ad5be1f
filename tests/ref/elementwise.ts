// float64 references for the elementwise kernels (nearest upsample lives in ./gemm.ts).

export function siluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (v) => v / (1 + Math.exp(-v)));
}

export function addRef(a: ArrayLike<number>, b: ArrayLike<number>, scale = 1): Float64Array {
  return Float64Array.from(a, (v, i) => (v + b[i]!) * scale);
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
