// DDPM (Ho et al. 2020) as diffusers' DDPMScheduler v0.25.1 steps it: x0 from the prediction
// type, optional clamp, the posterior mean (formula 7) and, for t > 0, sqrt(variance)·noise.
// The scalar math runs on float32 values with a rounding after each operation, because torch does
// it on 0-dim float32 tensors and 1 − ᾱ_t/ᾱ_prev loses digits to cancellation that float64 would
// keep; the coefficients then equal diffusers' exactly.
import { packStepRow, STEP_ROW_LENGTH, type StepCoefficients } from '../kernels/scheduler_step.ts';
import type { Scheduler } from './scheduler.ts';
import {
  alphasCumprod,
  ConfigReader,
  inferenceTimesteps,
  makeBetas,
  readCommonConfig,
  SchedulerConfigError,
  type CommonConfig,
} from './schedule.ts';

const f = Math.fround;

export type DDPMVarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';

export class DDPMScheduler implements Scheduler {
  readonly name = 'ddpm' as const;
  readonly initNoiseSigma = 1;
  readonly rowLength = STEP_ROW_LENGTH;
  readonly timesteps: number[];
  readonly config: CommonConfig & { varianceType: DDPMVarianceType };
  readonly alphasCumprod: Float32Array;
  private readonly stepRatio: number;

  constructor(config: Record<string, unknown>, steps: number) {
    const r = new ConfigReader(config, 'DDPMScheduler');
    const common = readCommonConfig(r, ['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid']);
    const varianceType = r.choice<DDPMVarianceType>('variance_type', 'fixed_small', ['fixed_small', 'fixed_small_log', 'fixed_large'], [
      'fixed_large_log',
      'learned',
      'learned_range',
    ]);
    this.config = { ...common, varianceType };
    this.alphasCumprod = alphasCumprod(makeBetas(common.schedule));
    this.timesteps = inferenceTimesteps(common.schedule, steps);
    // diffusers' previous_timestep: t − T // steps, whatever the spacing.
    this.stepRatio = Math.floor(common.schedule.numTrainTimesteps / steps);
    for (let i = 0; i < steps; i++) this.coefficients(i);
  }

  private t(i: number): number {
    const t = this.timesteps[i];
    if (t === undefined) throw new RangeError(`DDPM step ${i} is outside 0..${this.timesteps.length - 1}`);
    return t;
  }

  prevTimestep(i: number): number {
    return this.t(i) - this.stepRatio;
  }

  drawsNoise(i: number): boolean {
    return this.t(i) > 0;
  }

  modelInputScale(i: number): number {
    this.t(i);
    return 1;
  }

  coefficients(i: number): StepCoefficients {
    const t = this.t(i);
    const prev = this.prevTimestep(i);
    const a = this.alphasCumprod[t]!;
    const ap = prev >= 0 ? this.alphasCumprod[prev]! : 1;
    const bt = f(1 - a);
    const bp = f(1 - ap);
    const curAlpha = f(a / ap);
    const curBeta = f(1 - curAlpha);
    const sa = f(Math.sqrt(a));
    const sb = f(Math.sqrt(bt));
    let a0: number, a1: number;
    const pred = this.config.predictionType;
    if (pred === 'epsilon') {
      a0 = 1 / sa;
      a1 = -sb / sa;
    } else if (pred === 'v_prediction') {
      a0 = sa;
      a1 = -sb;
    } else {
      a0 = 0;
      a1 = 1;
    }
    const c0 = f(f(f(Math.sqrt(ap)) * curBeta) / bt);
    const c2 = f(f(f(Math.sqrt(curAlpha)) * bp) / bt);
    let c3 = 0;
    if (t > 0) {
      const variance = Math.max(f(f(bp / bt) * curBeta), f(1e-20));
      const vt = this.config.varianceType;
      // fixed_small_log is exp(0.5·log(variance)): sqrt(variance) up to rounding.
      c3 = vt === 'fixed_large' ? f(Math.sqrt(curBeta)) : vt === 'fixed_small_log' ? f(Math.exp(0.5 * f(Math.log(variance)))) : f(Math.sqrt(variance));
    }
    const k: StepCoefficients = { a0, a1, clip: this.config.clip, b0: 0, b1: 0, b2: 0, c0, c1: 0, c2, c3, nextScale: 1 };
    for (const [key, v] of Object.entries(k)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(`DDPMScheduler: step ${i} (t = ${t}) has a non-finite coefficient ${key} (alphas_cumprod[t] = ${a}); this schedule cannot be used with ${pred} prediction`);
      }
    }
    return k;
  }

  stepRow(i: number): Float32Array {
    return packStepRow(this.t(i), i, this.coefficients(i));
  }
}
