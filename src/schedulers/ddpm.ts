// DDPM (Ho et al. 2020) as diffusers' DDPMScheduler v0.25.1 steps it: x0 from the prediction
// type, optional clamp, the posterior mean (formula 7) and, for t > 0, sqrt(variance)·noise.
// The scalar math runs on float32 values with a rounding after each operation, because torch does
// it on 0-dim float32 tensors and 1 − ᾱ_t/ᾱ_prev loses digits to cancellation that float64 would
// keep; the coefficients then equal diffusers' exactly.
import type { StepCoefficients } from '../kernels/step_row.ts';
import { AlphaBarScheduler, epsilonX0 } from './alpha_bar.ts';
import { ConfigReader, readCommonConfig, type CommonConfig } from './schedule.ts';

const f = Math.fround;

export type DDPMVarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';

export class DDPMScheduler extends AlphaBarScheduler {
  readonly name = 'ddpm' as const;
  readonly config: CommonConfig & { varianceType: DDPMVarianceType };

  constructor(config: Record<string, unknown>, steps: number) {
    const r = new ConfigReader(config, 'DDPMScheduler');
    const common = readCommonConfig(r, ['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid']);
    const varianceType = r.choice<DDPMVarianceType>('variance_type', 'fixed_small', ['fixed_small', 'fixed_small_log', 'fixed_large'], [
      'fixed_large_log',
      'learned',
      'learned_range',
    ]);
    super('DDPMScheduler', common, steps);
    this.config = { ...common, varianceType };
    this.validateSteps();
  }

  drawsNoise(i: number): boolean {
    return this.t(i) > 0;
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
    let x0Inf: boolean | undefined;
    const pred = this.config.predictionType;
    if (pred === 'epsilon') {
      ({ a0, a1, x0Inf } = epsilonX0(sa, sb, this.config.clip !== null));
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
    const k: StepCoefficients = { a0, a1, clip: this.config.clip, b0: 0, b1: 0, b2: 0, c0, c1: 0, c2, c3, nextScale: 1, x0Inf };
    return this.checkFinite(i, k, pred);
  }
}
