// Euler ancestral sampling (k-diffusion's sample_euler_ancestral) as diffusers'
// EulerAncestralDiscreteScheduler v0.25.1 steps it (σ-space, see sigma_space.ts): each step moves
// deterministically to σ_down and adds σ_up·noise, with σ_down² + σ_up² = σ_next².
import { readSigmaSchedule, SigmaScheduler } from './sigma_space.ts';
import { ConfigReader, type ScheduleConfig } from './schedule.ts';

const f = Math.fround;

export type EulerPredictionType = 'epsilon' | 'v_prediction';

export interface EulerAncestralConfig {
  schedule: ScheduleConfig;
  predictionType: EulerPredictionType;
}

function readConfig(r: ConfigReader): EulerAncestralConfig {
  const schedule = readSigmaSchedule(r);
  // diffusers raises NotImplementedError for 'sample' in this scheduler.
  const predictionType = r.choice<EulerPredictionType>('prediction_type', 'epsilon', ['epsilon', 'v_prediction'], ['sample']);
  return { schedule, predictionType };
}

export class EulerAncestralScheduler extends SigmaScheduler {
  readonly name = 'euler-a' as const;
  readonly config: EulerAncestralConfig;

  constructor(config: Record<string, unknown>, steps: number) {
    const c = readConfig(new ConfigReader(config, 'EulerAncestralDiscreteScheduler'));
    super('EulerAncestralDiscreteScheduler', c.schedule, c.predictionType, steps);
    this.config = c;
    this.validateSteps();
  }

  /** σ_down and σ_up of step i, in torch's float32 order of operations. */
  protected target(i: number): { to: number; noise: number } {
    const from2 = f(this.sigma(i) ** 2);
    const to2 = f(this.sigmas[i + 1]! ** 2);
    const up = f(Math.sqrt(f(f(to2 * f(from2 - to2)) / from2)));
    // Mathematically σ_to⁴/σ_from² >= 0; the clamp only guards a last-bit negative.
    const down = f(Math.sqrt(Math.max(0, f(to2 - f(up * up)))));
    return { to: down, noise: up };
  }
}
