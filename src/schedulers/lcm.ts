// Latent consistency model sampling as diffusers' LCMScheduler v0.25.1 steps it: x0 from the
// prediction type (optionally clamped), the consistency boundary condition
// denoised = c_out·x0 + c_skip·x with c_skip = σ_d²/((t·s)² + σ_d²), c_out = t·s/sqrt((t·s)² + σ_d²)
// (σ_d = 0.5, s = timestep_scaling), then a fresh noising to the next timestep,
// prev = sqrt(ᾱ_next)·denoised + sqrt(1 − ᾱ_next)·noise, except after the last step where prev is
// denoised itself. Timesteps are drawn from the distillation schedule of original_inference_steps
// (k·j − 1 for j = 1..N, k = T // N), evenly spaced by index. Scalars are rounded to float32 where
// torch does float32 math, as in ddim.ts.
import { packStepRow, STEP_ROW_LENGTH, type StepCoefficients } from '../kernels/step_row.ts';
import { epsilonX0 } from './alpha_bar.ts';
import type { Scheduler } from './scheduler.ts';
import { alphasCumprod, ConfigReader, makeBetas, readScheduleConfig, readThreshold, stepAt, type PredictionType, type ScheduleConfig, type Threshold } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

const f = Math.fround;

export interface LCMConfig {
  schedule: ScheduleConfig;
  predictionType: PredictionType;
  clip: number | null;
  threshold: Threshold | null;
  originalInferenceSteps: number;
  timestepScaling: number;
}

function readConfig(r: ConfigReader): LCMConfig {
  const threshold = readThreshold(r);
  // LCM ignores timestep_spacing and steps_offset: its timesteps come from original_inference_steps.
  const schedule = readScheduleConfig(r, { spacing: 'leading', betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear', readSpacing: false });
  const predictionType = r.choice<PredictionType>('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample']);
  const clipSample = r.bool('clip_sample', false);
  const range = r.num('clip_sample_range', 1);
  // set_alpha_to_one only matters for a negative "next" timestep, which LCM's schedule never has.
  r.bool('set_alpha_to_one', true);
  return {
    schedule,
    predictionType,
    clip: clipSample && !threshold ? range : null,
    threshold,
    originalInferenceSteps: r.int('original_inference_steps', 50, 1),
    timestepScaling: r.num('timestep_scaling', 10),
  };
}

/** set_timesteps(steps) with strength 1 and no custom timesteps. */
export function lcmTimesteps(T: number, original: number, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new SchedulerConfigError(`the number of inference steps must be a positive integer, got ${steps}`);
  if (original > T) throw new SchedulerConfigError(`LCMScheduler: original_inference_steps ${original} is more than num_train_timesteps (${T})`);
  if (steps > T) throw new SchedulerConfigError(`${steps} inference steps is more than num_train_timesteps (${T})`);
  if (steps > original) {
    throw new SchedulerConfigError(`LCMScheduler: ${steps} inference steps is more than original_inference_steps (${original}); LCM picks its timesteps from that schedule`);
  }
  const k = Math.floor(T / original);
  const origin = Array.from({ length: original }, (_, j) => (original - j) * k - 1);
  // np.linspace(0, N, steps, endpoint=False) is i·(N/steps) in float64, then floored.
  const step = original / steps;
  return Array.from({ length: steps }, (_, i) => origin[Math.floor(i * step)]!);
}

export class LCMScheduler implements Scheduler {
  readonly name = 'lcm' as const;
  readonly rowLength = STEP_ROW_LENGTH;
  readonly initNoiseSigma = 1;
  readonly config: LCMConfig;
  readonly timesteps: number[];
  readonly alphasCumprod: Float32Array;

  constructor(config: Record<string, unknown>, steps: number) {
    const r = new ConfigReader(config, 'LCMScheduler');
    this.config = readConfig(r);
    this.alphasCumprod = alphasCumprod(makeBetas(this.config.schedule));
    this.timesteps = lcmTimesteps(this.config.schedule.numTrainTimesteps, this.config.originalInferenceSteps, steps);
    for (let i = 0; i < this.timesteps.length; i++) this.coefficients(i);
  }

  get threshold(): Threshold | null {
    return this.config.threshold;
  }

  private t(i: number): number {
    return stepAt(this.timesteps, i, 'LCMScheduler');
  }

  private isLast(i: number): boolean {
    return i === this.timesteps.length - 1;
  }

  modelInputScale(i: number): number {
    this.t(i);
    return 1;
  }

  drawsNoise(i: number): boolean {
    this.t(i);
    return !this.isLast(i);
  }

  /** c_skip and c_out of get_scalings_for_boundary_condition_discrete, in float32. */
  boundaryScalings(i: number): { cSkip: number; cOut: number } {
    const s = f(this.t(i) * this.config.timestepScaling);
    const d = f(f(s * s) + 0.25);
    return { cSkip: f(0.25 / d), cOut: f(s / f(Math.sqrt(d))) };
  }

  coefficients(i: number): StepCoefficients {
    const t = this.t(i);
    const a = this.alphasCumprod[t]!;
    const sa = f(Math.sqrt(a));
    const sb = f(Math.sqrt(f(1 - a)));
    let a0: number, a1: number;
    let x0Inf: boolean | undefined;
    if (this.config.predictionType === 'epsilon') ({ a0, a1, x0Inf } = epsilonX0(sa, sb, this.config.clip !== null));
    else if (this.config.predictionType === 'v_prediction') [a0, a1] = [sa, -sb];
    else [a0, a1] = [0, 1];
    const { cSkip, cOut } = this.boundaryScalings(i);
    let c0 = cOut, c2 = cSkip, c3 = 0;
    if (!this.isLast(i)) {
      const ap = this.alphasCumprod[this.timesteps[i + 1]!]!;
      const sap = f(Math.sqrt(ap));
      [c0, c2, c3] = [sap * cOut, sap * cSkip, f(Math.sqrt(f(1 - ap)))];
    }
    const k: StepCoefficients = { a0, a1, clip: this.config.clip, b0: 0, b1: 0, b2: 0, c0, c1: 0, c2, c3, nextScale: 1, x0Inf };
    for (const [key, v] of Object.entries(k)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(`LCMScheduler: step ${i} (t = ${t}) has a non-finite coefficient ${key} (alphas_cumprod[t] = ${a}); this schedule cannot be used with ${this.config.predictionType} prediction`);
      }
    }
    return k;
  }

  stepRow(i: number): Float32Array {
    return packStepRow(this.t(i), i, this.coefficients(i));
  }
}
