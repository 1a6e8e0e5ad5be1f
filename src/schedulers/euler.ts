// Euler sampling (k-diffusion's sample_euler with s_churn = 0) as diffusers' EulerDiscreteScheduler
// v0.25.1 steps it: the σ-space of sigma_space.ts (same σ table, timesteps, init_noise_sigma and
// x/sqrt(σ² + 1) model input) with a deterministic step, prev = x + (σ_next − σ)·(x − x0)/σ. The
// churn options (s_churn, s_tmin, s_tmax, s_noise) are step() arguments that diffusers' pipelines
// leave at their defaults, where gamma is 0 and no noise is drawn; they are not modelled.
import { readSigmaSchedule, SigmaScheduler, type SigmaPredictionType } from './sigma_space.ts';
import { ConfigReader, type ScheduleConfig } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

export type EulerDiscretePredictionType = SigmaPredictionType;

export interface EulerDiscreteConfig {
  schedule: ScheduleConfig;
  predictionType: EulerDiscretePredictionType;
  /** use_karras_sigmas: the Karras σ schedule (src/schedulers/karras.ts). */
  karras: boolean;
}

function readConfig(r: ConfigReader): EulerDiscreteConfig {
  const schedule = readSigmaSchedule(r);
  // diffusers accepts 'original_sample' as a synonym of 'sample'.
  const pred = r.choice<EulerDiscretePredictionType | 'original_sample'>('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample', 'original_sample']);
  r.choice('interpolation_type', 'linear', ['linear'], ['log_linear']);
  const karras = r.bool('use_karras_sigmas', false);
  const predictionType = pred === 'original_sample' ? 'sample' : pred;
  // 'continuous' changes the timesteps only with v_prediction (0.25·log σ); elsewhere it is inert.
  const tt = r.choice('timestep_type', 'discrete', ['discrete', 'continuous']);
  if (tt === 'continuous' && predictionType === 'v_prediction') {
    throw new SchedulerConfigError(`${r.who}: timestep_type 'continuous' with v_prediction is not supported (supported: discrete)`);
  }
  return { schedule, predictionType, karras };
}

export class EulerDiscreteScheduler extends SigmaScheduler {
  readonly name = 'euler' as const;
  readonly config: EulerDiscreteConfig;

  constructor(config: Record<string, unknown>, steps: number) {
    const c = readConfig(new ConfigReader(config, 'EulerDiscreteScheduler'));
    super('EulerDiscreteScheduler', c.schedule, c.predictionType, steps, c.karras);
    this.config = c;
    this.validateSteps();
  }

  /** Deterministic: straight to the next σ, no noise. */
  protected target(i: number): { to: number; noise: number } {
    this.sigma(i);
    return { to: this.sigmas[i + 1]!, noise: 0 };
  }
}
