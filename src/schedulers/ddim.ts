// DDIM (Song et al. 2020, formulas 12 and 16) as diffusers' DDIMScheduler v0.25.1 steps it:
// x0 and eps from the prediction type, optional clamp of x0, σ_t = η·sqrt(variance), and
// prev = sqrt(ᾱ_prev)·x0 + sqrt(1 − ᾱ_prev − σ_t²)·eps + σ_t·noise. As in ddpm.ts the scalar
// math is rounded to float32 after each operation, the way torch does it on 0-dim tensors.
import type { StepCoefficients } from '../kernels/step_row.ts';
import { AlphaBarScheduler, epsilonX0 } from './alpha_bar.ts';
import { ConfigReader, readCommonConfig, type CommonConfig } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

const f = Math.fround;

export interface DDIMOptions {
  eta?: number;
  useClippedModelOutput?: boolean;
}

export class DDIMScheduler extends AlphaBarScheduler {
  readonly name = 'ddim' as const;
  readonly config: CommonConfig & { setAlphaToOne: boolean };
  /** ᾱ used as "previous" by the last step: 1, or alphas_cumprod[0] without set_alpha_to_one. */
  readonly finalAlphaCumprod: number;
  readonly eta: number;
  readonly useClippedModelOutput: boolean;

  constructor(config: Record<string, unknown>, steps: number, opts: DDIMOptions = {}) {
    const r = new ConfigReader(config, 'DDIMScheduler');
    const common = readCommonConfig(r, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    super('DDIMScheduler', common, steps);
    this.config = { ...common, setAlphaToOne: r.bool('set_alpha_to_one', true) };
    this.eta = opts.eta ?? 0;
    if (!Number.isFinite(this.eta) || this.eta < 0) throw new SchedulerConfigError(`DDIMScheduler: eta must be a number >= 0, got ${this.eta}`);
    this.useClippedModelOutput = opts.useClippedModelOutput ?? false;
    this.finalAlphaCumprod = this.config.setAlphaToOne ? 1 : this.alphasCumprod[0]!;
    this.validateSteps();
  }

  drawsNoise(i: number): boolean {
    this.t(i);
    return this.eta > 0;
  }

  coefficients(i: number): StepCoefficients {
    const t = this.t(i);
    const prev = this.prevTimestep(i);
    const a = this.alphasCumprod[t]!;
    const ap = prev >= 0 ? this.alphasCumprod[prev]! : this.finalAlphaCumprod;
    const bt = f(1 - a);
    const bp = f(1 - ap);
    const sa = f(Math.sqrt(a));
    const sb = f(Math.sqrt(bt));
    let a0: number, a1: number, b0: number, b1: number;
    let x0Inf: boolean | undefined;
    const pred = this.config.predictionType;
    if (pred === 'epsilon') {
      ({ a0, a1, x0Inf } = epsilonX0(sa, sb, this.config.clip !== null));
      [b0, b1] = [0, 1];
    } else if (pred === 'v_prediction') {
      [a0, a1, b0, b1] = [sa, -sb, sb, sa];
    } else {
      // eps is re-derived from the model's (unclipped) x0.
      [a0, a1, b0, b1] = [0, 1, 1 / sb, -sa / sb];
    }
    let b2 = 0;
    if (this.useClippedModelOutput) {
      // eps from the clipped x0, as in GLIDE.
      [b0, b1, b2] = [1 / sb, 0, -sa / sb];
    }
    const variance = f(f(bp / bt) * f(1 - f(a / ap)));
    const std = f(this.eta * f(Math.sqrt(variance)));
    const direction = f(Math.sqrt(Math.max(0, f(bp - f(std * std)))));
    const k: StepCoefficients = {
      a0,
      a1,
      clip: this.config.clip,
      b0,
      b1,
      b2,
      c0: f(Math.sqrt(ap)),
      c1: direction,
      c2: 0,
      c3: this.eta > 0 ? std : 0,
      nextScale: 1,
      x0Inf,
    };
    return this.checkFinite(i, k, pred);
  }
}
