// What DDPM and DDIM share: the ᾱ table, the inference timesteps, diffusers' previous timestep
// (t − T // steps, whatever the spacing) and the packing of a step's coefficients into the row
// the fused GPU step reads. Each subclass only turns (t, prev) into coefficients.
import { packStepRow, STEP_ROW_LENGTH, type StepCoefficients } from '../kernels/step_row.ts';
import type { Scheduler } from './scheduler.ts';
import { alphasCumprod, inferenceTimesteps, makeBetas, stepAt, type CommonConfig, type Threshold } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

/**
 * x0 from an epsilon prediction, (x − sqrt(1 − ᾱ)·eps)/sqrt(ᾱ), as a0·x + a1·eps. At ᾱ = 0 (the last
 * training timestep under zero terminal SNR) diffusers divides by zero; with clip_sample its ±inf x0
 * becomes ±clip_sample_range and the step is usable (x0Inf). Otherwise the coefficients stay
 * non-finite and the caller refuses the schedule: diffusers' own result is inf or NaN (a threshold
 * takes the quantile of infinities, which torch.lerp turns into NaN).
 */
export function epsilonX0(sa: number, sb: number, clipped: boolean): { a0: number; a1: number; x0Inf?: boolean } {
  if (sa === 0 && clipped) return { a0: 1, a1: -sb, x0Inf: true };
  return { a0: 1 / sa, a1: -sb / sa };
}

export abstract class AlphaBarScheduler implements Scheduler {
  abstract readonly name: 'ddpm' | 'ddim';
  readonly initNoiseSigma = 1;
  readonly rowLength = STEP_ROW_LENGTH;
  readonly timesteps: number[];
  readonly alphasCumprod: Float32Array;
  private readonly stepRatio: number;
  readonly threshold: Threshold | null;

  constructor(protected readonly className: string, common: CommonConfig, steps: number) {
    this.threshold = common.threshold;
    this.alphasCumprod = alphasCumprod(makeBetas(common.schedule));
    this.timesteps = inferenceTimesteps(common.schedule, steps);
    this.stepRatio = Math.floor(common.schedule.numTrainTimesteps / steps);
  }

  abstract coefficients(i: number): StepCoefficients;
  abstract drawsNoise(i: number): boolean;

  protected t(i: number): number {
    return stepAt(this.timesteps, i, this.className);
  }

  prevTimestep(i: number): number {
    return this.t(i) - this.stepRatio;
  }

  modelInputScale(i: number): number {
    this.t(i);
    return 1;
  }

  stepRow(i: number): Float32Array {
    return packStepRow(this.t(i), i, this.coefficients(i));
  }

  /** Computes every step once so a schedule that cannot work fails at construction. */
  protected validateSteps(): void {
    for (let i = 0; i < this.timesteps.length; i++) this.coefficients(i);
  }

  protected checkFinite(i: number, k: StepCoefficients, prediction: string): StepCoefficients {
    const t = this.t(i);
    for (const [key, v] of Object.entries(k)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(
          `${this.className}: step ${i} (t = ${t}) has a non-finite coefficient ${key} (alphas_cumprod[t] = ${this.alphasCumprod[t]}); this schedule cannot be used with ${prediction} prediction` +
            (this.alphasCumprod[t] === 0 ? ' without clip_sample (diffusers divides by sqrt(alphas_cumprod[t]) = 0 and gets inf or NaN)' : ''),
        );
      }
    }
    return k;
  }
}
