// The Karras et al. (2022) σ schedule as diffusers v0.25.1 builds it for EulerDiscreteScheduler and
// DPMSolverMultistepScheduler (use_karras_sigmas): ρ = 7 interpolation between σ_max and σ_min in
// float64, then each σ mapped back to a (fractional) training timestep through the log-σ table.
// The dtypes follow numpy's: the log-σ table is float32, and so is the interpolation weight.
import { npLinspace } from './schedule.ts';

const f = Math.fround;
const RHO = 7;

/** _convert_to_karras: n σ values from sigmaMax down to sigmaMin. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const minInv = sigmaMin ** (1 / RHO);
  const maxInv = sigmaMax ** (1 / RHO);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** RHO);
}

/** np.log of the float32 σ table, in float32. */
export function logSigmaTable(sigmas: Float32Array): Float32Array {
  return sigmas.map((s) => f(Math.log(s)));
}

/**
 * _sigma_to_t: the timestep whose log σ is log(sigma), linear between table entries. numpy does the
 * subtraction and the weight in float32 (a 1-element float32 array meets a float64 scalar) and the
 * final blend in float64.
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const ls32 = f(logSigma);
  // numpy's float32 log is not correctly rounded, so some table entries here are an ulp from its;
  // t then moves by ~1e-7 of itself (the conformance check allows that for fractional t).
  // Index of the last table entry at or below log σ (0 when none), leaving room for a high neighbour.
  let low = 0;
  for (let j = 0; j < logSigmas.length; j++) if (ls32 >= logSigmas[j]!) low = j;
  low = Math.min(low, logSigmas.length - 2);
  const lo = logSigmas[low]!;
  const hi = logSigmas[low + 1]!;
  const w = Math.min(Math.max(f(f(lo - ls32) / f(lo - hi)), 0), 1);
  return f(1 - w) * low + w * (low + 1);
}
