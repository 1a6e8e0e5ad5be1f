// diffusers' get_guidance_scale_embedding (LatentConsistencyModelPipeline, and
// StableDiffusionPipeline / StableDiffusionXLPipeline for U-Nets with time_cond_proj_dim), in
// float64: VDM's sinusoidal embedding of w·1000,
//   half = dim // 2, freq_i = exp(−i · ln(10000) / (half − 1)), i < half
//   emb = [sin(w·1000·freq_i) for i] ++ [cos(w·1000·freq_i) for i] (++ [0] when dim is odd).
export function guidanceScaleEmbeddingRef(w: number, dim: number): Float64Array {
  const half = Math.floor(dim / 2);
  const out = new Float64Array(dim);
  for (let i = 0; i < half; i++) {
    const x = w * 1000 * Math.exp((-i * Math.log(10000)) / (half - 1));
    out[i] = Math.sin(x);
    out[half + i] = Math.cos(x);
  }
  return out;
}
