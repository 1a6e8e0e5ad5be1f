// The scheduler interface the denoising loop is written against, and the factory that builds one
// from a diffusers scheduler_config.json (names and their classes: registry.ts). A scheduler here
// only does host-side float math: it turns each step into a packed row of coefficients
// (src/kernels/step_row.ts) for the fused GPU step (src/kernels/scheduler_step.ts).
import { DDIMScheduler } from './ddim.ts';
import { DDPMScheduler } from './ddpm.ts';
import { DPMSolverMultistepScheduler } from './dpm_solver.ts';
import { EulerDiscreteScheduler } from './euler.ts';
import { EulerAncestralScheduler } from './euler_ancestral.ts';
import { LCMScheduler } from './lcm.ts';
import { PNDMScheduler } from './pndm.ts';
import { schedulerEntry, schedulerNameOf, type SchedulerName } from './registry.ts';
import type { Threshold } from './schedule.ts';

// The names live in the registry; re-exported here, where the library and its callers import them.
export { SCHEDULER_NAMES, schedulerNameOf, type SchedulerName } from './registry.ts';
import { SchedulerConfigError } from '../errors.ts';
export { SchedulerConfigError } from '../errors.ts';

export interface Scheduler {
  readonly name: SchedulerName;
  /**
   * After set_timesteps(steps), as diffusers computes them (fractional for Euler with linspace
   * spacing); one per U-Net call and step row, so steps + 1 of them for PNDM's PLMS.
   */
  readonly timesteps: number[];
  /** 1 for DDPM, DDIM and LCM; the largest σ (or sqrt(σ² + 1)) for the Euler schedulers. */
  readonly initNoiseSigma: number;
  /** Floats per step row (the same for every step). */
  readonly rowLength: number;
  /**
   * Packed f32 row for step i: row[0] = timestep t, row[1] = i (the RNG counter), row[2] = guidance
   * scale (1 here; the pipeline sets it), the rest the step's coefficients (StepRow).
   */
  stepRow(i: number): Float32Array;
  /** Whether step i adds noise (DDPM: t > 0; DDIM: eta > 0; Euler ancestral: σ_up > 0; LCM: all but the last; Euler: never). */
  drawsNoise(i: number): boolean;
  /**
   * True when the step needs an x0 history buffer (SchedulerStepArgs.prevX0, [B, ...], kept across
   * the loop): DPM-Solver++ 2M. A loop that binds none must refuse such a scheduler.
   */
  readonly usesX0History?: boolean;
  /**
   * True when the step needs an eps history (SchedulerStepArgs.epsHistory: a ring of past model
   * outputs and a stored sample, kept across the loop, rows of PLMS_ROW_LENGTH): PNDM's PLMS.
   * A loop that binds none must refuse such a scheduler.
   */
  readonly usesEpsHistory?: boolean;
  /**
   * Dynamic thresholding of the predicted x0 (SchedulerStepArgs.threshold), or null/absent for
   * none. It needs a per-sample quantile before the step, so the step becomes three dispatches.
   */
  readonly threshold?: Threshold | null;
  /** scale_model_input's factor at step i (1 for DDPM, DDIM and LCM, 1/sqrt(σ² + 1) for the Euler schedulers). */
  modelInputScale(i: number): number;
}

export interface CreateSchedulerOptions {
  /** Overrides config._class_name (diffusers' from_config into another scheduler class). */
  name?: SchedulerName;
  /** DDIM's eta (default 0); the other schedulers have none, and ignore it as diffusers' pipelines do. */
  eta?: number;
  /** DDIM's use_clipped_model_output (default false). */
  useClippedModelOutput?: boolean;
  /**
   * The first step the loop runs (img2img and inpainting: diffusers runs timesteps[t_start:] on a
   * fresh scheduler), where multistep state starts: PLMS's call counter and DPM-Solver's
   * first-order warm-up. Default 0.
   */
  start?: number;
}

interface FactoryOptions {
  eta?: number;
  useClippedModelOutput?: boolean;
  start: number;
  /** The caller named the scheduler, rather than it coming from the config's class. */
  chosen: boolean;
}

const ODE_ALGORITHMS: readonly unknown[] = [undefined, 'dpmsolver++', 'deis'];

// Keyed by SchedulerName, so a name added to the registry without a factory does not compile.
const FACTORIES: { readonly [N in SchedulerName]: (config: Record<string, unknown>, steps: number, opts: FactoryOptions) => Scheduler } = {
  ddim: (config, steps, opts) => new DDIMScheduler(config, steps, { eta: opts.eta, useClippedModelOutput: opts.useClippedModelOutput }),
  ddpm: (config, steps) => new DDPMScheduler(config, steps),
  'euler-a': (config, steps) => new EulerAncestralScheduler(config, steps),
  euler: (config, steps) => new EulerDiscreteScheduler(config, steps),
  lcm: (config, steps) => new LCMScheduler(config, steps),
  // A chosen name replaces any other algorithm_type with the ODE one; the config's own choice stays,
  // so an algorithm_type Fresco does not implement is still an error that names it.
  'dpm++2m': (config, steps, { start, chosen }) =>
    new DPMSolverMultistepScheduler(chosen && !ODE_ALGORITHMS.includes(config.algorithm_type) ? { ...config, algorithm_type: 'dpmsolver++' } : config, steps, start),
  // (A chosen name has already set its algorithm_type: the registry entry's config.)
  'dpm++2m-sde': (config, steps, { start }) => new DPMSolverMultistepScheduler(config, steps, start),
  pndm: (config, steps, { start }) => new PNDMScheduler(config, steps, start),
};

export function createScheduler(config: Record<string, unknown>, steps: number, opts: CreateSchedulerOptions = {}): Scheduler {
  const name = opts.name ?? schedulerNameOf(config);
  // (Step counts themselves are checked by each scheduler, which names them.)
  const start = opts.start ?? 0;
  if (start !== 0 && (!Number.isInteger(start) || start < 0 || start >= steps)) throw new SchedulerConfigError(`the first step run (${start}) must be an integer in 0..${steps - 1}`);
  const entry = schedulerEntry(name);
  const chosen = opts.name !== undefined;
  // A chosen name sets the config values that select it (from_config with an override).
  const cfg = chosen && entry.config ? { ...config, ...entry.config } : config;
  return FACTORIES[name](cfg, steps, { eta: opts.eta, useClippedModelOutput: opts.useClippedModelOutput, start, chosen });
}
