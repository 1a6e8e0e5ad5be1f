// diffusers.models.embeddings.get_timestep_embedding, step by step, with Math.fround wherever
// torch rounds to float32 (the frequencies, t * freq, scale * that); sin/cos in float64.

export interface TimestepRefOptions {
  flipSinToCos: boolean;
  downscaleFreqShift: number;
  scale?: number;
  maxPeriod?: number;
}

export function timestepEmbeddingRef(timesteps: ArrayLike<number>, dim: number, o: TimestepRefOptions): Float64Array {
  const f = Math.fround;
  const half = Math.floor(dim / 2);
  const out = new Float64Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const t = f(timesteps[b]!);
    for (let i = 0; i < half; i++) {
      const exponent = f(f(f(-Math.log(o.maxPeriod ?? 10000)) * i) / f(half - o.downscaleFreqShift));
      const arg = f(f(o.scale ?? 1) * f(t * f(Math.exp(exponent))));
      const [first, second] = o.flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
      out[b * dim + i] = first;
      out[b * dim + half + i] = second;
    }
  }
  return out;
}

/** nn.Embedding with the kernel's clamp for ids past the table. */
export function embeddingLookupRef(table: ArrayLike<number>, num: number, dim: number, ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * dim);
  ids = Array.from(ids, (id) => Math.min(id, num - 1));
  for (let b = 0; b < ids.length; b++) for (let j = 0; j < dim; j++) out[b * dim + j] = table[ids[b]! * dim + j]!;
  return out;
}

/**
 * diffusers' GaussianFourierProjection (log=True) with torch's float32 roundings: ln t, then
 * (ln t · w), · 2 (exact), · float32(π); sin/cos in float64. [sin | cos], or [cos | sin] with flip.
 */
export function gaussianFourierRef(timesteps: ArrayLike<number>, weight: ArrayLike<number>, flipSinToCos = false): Float64Array {
  const f = Math.fround;
  const half = weight.length;
  const out = new Float64Array(timesteps.length * 2 * half);
  for (let b = 0; b < timesteps.length; b++) {
    const lt = f(Math.log(f(timesteps[b]!)));
    for (let i = 0; i < half; i++) {
      const arg = f(f(f(lt * f(weight[i]!)) * 2) * f(Math.PI));
      const [first, second] = flipSinToCos ? [Math.cos(arg), Math.sin(arg)] : [Math.sin(arg), Math.cos(arg)];
      out[b * 2 * half + i] = first;
      out[b * 2 * half + half + i] = second;
    }
  }
  return out;
}
