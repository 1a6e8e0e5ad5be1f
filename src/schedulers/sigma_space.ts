// What diffusers' Euler-family schedulers share (v0.25.1): the sample lives in σ-space,
// x = x0 + σ·eps with σ_t = sqrt((1 − ᾱ_t)/ᾱ_t), the U-Net sees x/sqrt(σ² + 1), and step i goes
// from sigmas[i] to sigmas[i + 1] (0 after the last step) — there is no "previous timestep", and
// with linspace spacing the timesteps are fractional. Subclasses only say where a step lands
// deterministically and how much noise it adds. The σ table and the per-step scalars are rounded
// to float32 where diffusers has torch or numpy do float32 math, as in ddpm.ts.
import { packStepRow, STEP_ROW_LENGTH, type StepCoefficients } from '../kernels/step_row.ts';
import { karrasSigmas, logSigmaTable, sigmaToT } from './karras.ts';
import type { Scheduler } from './scheduler.ts';
import { alphasCumprod, type ConfigReader, inferenceTimesteps, makeBetas, readScheduleConfig, stepAt, type ScheduleConfig } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

const f = Math.fround;

export type SigmaPredictionType = 'epsilon' | 'v_prediction' | 'sample';

/** The schedule fields of the Euler family; their default spacing is linspace, not leading. */
export function readSigmaSchedule(r: ConfigReader): ScheduleConfig {
  return readScheduleConfig(r, { spacing: 'linspace' });
}

/**
 * np.linspace(0, T − 1, steps, dtype=float32)[::-1]: numpy computes i·step + start in float64, sets
 * the last value to stop exactly, then rounds to float32; the timesteps stay fractional.
 */
export function linspaceTimesteps(T: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new SchedulerConfigError(`the number of inference steps must be a positive integer, got ${steps}`);
  if (steps === 1) return [0];
  const step = (T - 1) / (steps - 1);
  return Array.from({ length: steps }, (_, i) => f(i === steps - 1 ? T - 1 : i * step)).reverse();
}

/** np.interp(x, arange(len(fp)), fp) in float64, as numpy does it (exact knots return fp[j] unchanged). */
export function interpAtIndex(fp: Float32Array, x: number): number {
  const last = fp.length - 1;
  if (x >= last) return fp[last]!;
  if (x <= 0) return fp[0]!;
  const j = Math.floor(x);
  if (j === x) return fp[j]!;
  const slope = fp[j + 1]! - fp[j]!;
  return slope * (x - j) + fp[j]!;
}

export abstract class SigmaScheduler implements Scheduler {
  abstract readonly name: 'euler' | 'euler-a';
  readonly rowLength = STEP_ROW_LENGTH;
  readonly timesteps: number[];
  readonly alphasCumprod: Float32Array;
  /** σ at each inference timestep, then 0: steps + 1 float32 values. */
  readonly sigmas: Float32Array;
  readonly initNoiseSigma: number;

  constructor(
    protected readonly className: string,
    sc: ScheduleConfig,
    protected readonly prediction: SigmaPredictionType,
    steps: number,
    /** use_karras_sigmas (EulerDiscreteScheduler): Karras σ between the schedule's ends, fractional timesteps. */
    karras = false,
  ) {
    const ac = alphasCumprod(makeBetas(sc));
    // Zero terminal SNR makes σ_T infinite; diffusers substitutes the smallest positive fp16 subnormal.
    if (sc.rescaleBetasZeroSnr) ac[ac.length - 1] = 2 ** -24;
    this.alphasCumprod = ac;
    // torch float32: ((1 − ᾱ)/ᾱ) ** 0.5, where pow(·, 0.5) is a correctly rounded sqrt.
    const table = ac.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
    const spaced = sc.timestepSpacing === 'linspace' ? linspaceTimesteps(sc.numTrainTimesteps, steps) : inferenceTimesteps(sc, steps);
    this.sigmas = new Float32Array(spaced.length + 1);
    if (karras) {
      // The ends are the float64 σ interpolated at the spaced timesteps; the timesteps are replaced.
      const ks = karrasSigmas(interpAtIndex(table, spaced[spaced.length - 1]!), interpAtIndex(table, spaced[0]!), spaced.length);
      const logs = logSigmaTable(table);
      this.timesteps = ks.map((s) => f(sigmaToT(s, logs)));
      ks.forEach((s, i) => (this.sigmas[i] = s));
    } else {
      this.timesteps = spaced;
      spaced.forEach((t, i) => (this.sigmas[i] = interpAtIndex(table, t)));
    }
    const max = this.sigmas.reduce((m, s) => Math.max(m, s), 0);
    this.initNoiseSigma = sc.timestepSpacing === 'leading' ? f(Math.sqrt(f(f(max * max) + 1))) : max;
  }

  /** Where step i lands deterministically (σ_to) and the σ of the noise it adds. */
  protected abstract target(i: number): { to: number; noise: number };

  drawsNoise(i: number): boolean {
    return this.target(i).noise > 0;
  }

  protected sigma(i: number): number {
    stepAt(this.timesteps, i, this.className);
    return this.sigmas[i]!;
  }

  /** sqrt(σ² + 1), the divisor of scale_model_input. */
  protected inputDivisor(i: number): number {
    return f(Math.sqrt(f(f(this.sigma(i) ** 2) + 1)));
  }

  modelInputScale(i: number): number {
    return 1 / this.inputDivisor(i);
  }

  /** Computes every step once so a schedule that cannot work fails at construction. */
  protected validateSteps(): void {
    for (let i = 0; i < this.timesteps.length; i++) this.coefficients(i);
  }

  /**
   * x0 from the prediction type; derivative = (x − x0)/σ as epsHat (difference, then division, in
   * diffusers' order: see StepRow.bDiv); prev = x + (σ_to − σ)·derivative
   * + σ_noise·noise. Keeping x's coefficient at 1 (rather than folding the derivative into c0/c2)
   * avoids a cancellation between x and x0 when σ is small.
   */
  coefficients(i: number): StepCoefficients {
    const sigma = this.sigma(i);
    const { to, noise } = this.target(i);
    let a0: number, a1: number;
    if (this.prediction === 'epsilon') [a0, a1] = [1, -sigma];
    else if (this.prediction === 'v_prediction') [a0, a1] = [1 / f(f(sigma ** 2) + 1), f(-sigma / this.inputDivisor(i))];
    else [a0, a1] = [0, 1];
    const k: StepCoefficients = {
      a0,
      a1,
      clip: null,
      b0: 1,
      b1: 0,
      b2: -1,
      bDiv: sigma,
      c0: 0,
      c1: f(to - sigma),
      c2: 1,
      c3: noise,
      nextScale: i + 1 < this.timesteps.length ? this.modelInputScale(i + 1) : 1,
    };
    for (const [key, v] of Object.entries(k)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(`${this.className}: step ${i} (t = ${this.timesteps[i]}, σ = ${sigma}) has a non-finite coefficient ${key}`);
      }
    }
    return k;
  }

  stepRow(i: number): Float32Array {
    return packStepRow(this.timesteps[i]!, i, this.coefficients(i));
  }
}
