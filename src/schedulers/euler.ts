// Euler sampling (k-diffusion's sample_euler with s_churn = 0) as diffusers' EulerDiscreteScheduler
// v0.25.1 steps it: the σ-space of euler_ancestral.ts (same σ table, timesteps, init_noise_sigma and
// x/sqrt(σ² + 1) model input) with a deterministic step, prev = x + (σ_next − σ)·(x − x0)/σ. The
// churn options (s_churn, s_tmin, s_tmax, s_noise) are step() arguments that diffusers' pipelines
// leave at their defaults, where gamma is 0 and no noise is drawn; they are not modelled.
import { packStepRow, STEP_ROW_LENGTH, type StepCoefficients } from '../kernels/scheduler_step.ts';
import { interpAtIndex, linspaceTimesteps } from './euler_ancestral.ts';
import type { Scheduler } from './scheduler.ts';
import {
  alphasCumprod,
  ConfigReader,
  inferenceTimesteps,
  makeBetas,
  SchedulerConfigError,
  type BetaSchedule,
  type ScheduleConfig,
  type TimestepSpacing,
} from './schedule.ts';

const f = Math.fround;

export type EulerDiscretePredictionType = 'epsilon' | 'v_prediction' | 'sample';

export interface EulerDiscreteConfig {
  schedule: ScheduleConfig;
  predictionType: EulerDiscretePredictionType;
}

function readConfig(r: ConfigReader): EulerDiscreteConfig {
  const schedule: ScheduleConfig = {
    numTrainTimesteps: r.int('num_train_timesteps', 1000, 1),
    betaStart: r.num('beta_start', 0.0001),
    betaEnd: r.num('beta_end', 0.02),
    betaSchedule: 'linear',
    trainedBetas: r.numbers('trained_betas'),
    rescaleBetasZeroSnr: r.bool('rescale_betas_zero_snr', false),
    timestepSpacing: r.choice<TimestepSpacing>('timestep_spacing', 'linspace', ['leading', 'trailing', 'linspace']),
    stepsOffset: r.int('steps_offset', 0),
  };
  if (!schedule.trainedBetas) {
    schedule.betaSchedule = r.choice<BetaSchedule>('beta_schedule', 'linear', ['linear', 'scaled_linear', 'squaredcos_cap_v2'], ['sigmoid']);
  }
  // diffusers accepts 'original_sample' as a synonym of 'sample'.
  const pred = r.choice<EulerDiscretePredictionType | 'original_sample'>('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample', 'original_sample']);
  r.choice('interpolation_type', 'linear', ['linear'], ['log_linear']);
  if (r.bool('use_karras_sigmas', false)) {
    throw new SchedulerConfigError(`${r.who}: use_karras_sigmas (the Karras σ schedule) is not supported; set it to false`);
  }
  const predictionType = pred === 'original_sample' ? 'sample' : pred;
  // 'continuous' changes the timesteps only with v_prediction (0.25·log σ); elsewhere it is inert.
  const tt = r.choice('timestep_type', 'discrete', ['discrete', 'continuous']);
  if (tt === 'continuous' && predictionType === 'v_prediction') {
    throw new SchedulerConfigError(`${r.who}: timestep_type 'continuous' with v_prediction is not supported (supported: discrete)`);
  }
  return { schedule, predictionType };
}

export class EulerDiscreteScheduler implements Scheduler {
  readonly name = 'euler' as const;
  readonly rowLength = STEP_ROW_LENGTH;
  readonly config: EulerDiscreteConfig;
  readonly timesteps: number[];
  readonly alphasCumprod: Float32Array;
  /** σ at each inference timestep, then 0: steps + 1 float32 values. */
  readonly sigmas: Float32Array;
  readonly initNoiseSigma: number;

  constructor(config: Record<string, unknown>, steps: number) {
    const r = new ConfigReader(config, 'EulerDiscreteScheduler');
    this.config = readConfig(r);
    const sc = this.config.schedule;
    const ac = alphasCumprod(makeBetas(sc));
    // Zero terminal SNR makes σ_T infinite; diffusers substitutes the smallest positive fp16 subnormal.
    if (sc.rescaleBetasZeroSnr) ac[ac.length - 1] = 2 ** -24;
    this.alphasCumprod = ac;
    const table = ac.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
    this.timesteps = sc.timestepSpacing === 'linspace' ? linspaceTimesteps(sc.numTrainTimesteps, steps) : inferenceTimesteps(sc, steps);
    this.sigmas = new Float32Array(this.timesteps.length + 1);
    this.timesteps.forEach((t, i) => (this.sigmas[i] = interpAtIndex(table, t)));
    const max = this.sigmas.reduce((m, s) => Math.max(m, s), 0);
    this.initNoiseSigma = sc.timestepSpacing === 'leading' ? f(Math.sqrt(f(f(max * max) + 1))) : max;
    for (let i = 0; i < this.timesteps.length; i++) this.coefficients(i);
  }

  private sigma(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.timesteps.length) {
      throw new RangeError(`EulerDiscreteScheduler step ${i} is outside 0..${this.timesteps.length - 1}`);
    }
    return this.sigmas[i]!;
  }

  private inputDivisor(i: number): number {
    return f(Math.sqrt(f(f(this.sigma(i) ** 2) + 1)));
  }

  modelInputScale(i: number): number {
    return 1 / this.inputDivisor(i);
  }

  drawsNoise(i: number): boolean {
    this.sigma(i);
    return false;
  }

  /**
   * x0 from the prediction type; derivative = (x − x0)/σ as epsHat; prev = x + (σ_next − σ)·derivative.
   * x keeps coefficient 1 (as in euler_ancestral.ts) so small σ does not cancel x against x0.
   */
  coefficients(i: number): StepCoefficients {
    const sigma = this.sigma(i);
    let a0: number, a1: number;
    if (this.config.predictionType === 'epsilon') [a0, a1] = [1, -sigma];
    else if (this.config.predictionType === 'v_prediction') [a0, a1] = [1 / f(f(sigma ** 2) + 1), f(-sigma / this.inputDivisor(i))];
    else [a0, a1] = [0, 1];
    const k: StepCoefficients = {
      a0,
      a1,
      clip: null,
      b0: 1 / sigma,
      b1: 0,
      b2: -1 / sigma,
      c0: 0,
      c1: f(this.sigmas[i + 1]! - sigma),
      c2: 1,
      c3: 0,
      nextScale: i + 1 < this.timesteps.length ? this.modelInputScale(i + 1) : 1,
    };
    for (const [key, v] of Object.entries(k)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(`EulerDiscreteScheduler: step ${i} (t = ${this.timesteps[i]}, σ = ${sigma}) has a non-finite coefficient ${key}`);
      }
    }
    return k;
  }

  stepRow(i: number): Float32Array {
    return packStepRow(this.timesteps[i]!, i, this.coefficients(i));
  }
}
