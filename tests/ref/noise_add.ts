// float64 forward-diffusion noising, as diffusers' add_noise computes it.

export function noiseAddRef(x0: ArrayLike<number>, noise: ArrayLike<number>, sqrtAlphaBar: number, sqrtOneMinusAlphaBar: number): Float64Array {
  return Float64Array.from(x0, (v, i) => sqrtAlphaBar * v + sqrtOneMinusAlphaBar * noise[i]!);
}
