// The scheduler interface the denoising loop is written against, and the factory that builds one
// from a diffusers scheduler_config.json. A scheduler here only does host-side float math: it turns
// each step into a packed row of coefficients for the fused GPU step (src/kernels/scheduler_step.ts).
import { DDIMScheduler } from './ddim.ts';
import { DDPMScheduler } from './ddpm.ts';
import { DPMSolverMultistepScheduler } from './dpm_solver.ts';
import { EulerDiscreteScheduler } from './euler.ts';
import { EulerAncestralScheduler } from './euler_ancestral.ts';
import { LCMScheduler } from './lcm.ts';
import { PNDMScheduler } from './pndm.ts';
import { SchedulerConfigError, type Threshold } from './schedule.ts';

export { SchedulerConfigError } from './schedule.ts';

export interface Scheduler {
  readonly name: 'ddpm' | 'ddim' | 'euler-a' | 'euler' | 'lcm' | 'dpm++2m' | 'dpm++2m-sde' | 'pndm';
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

export type SchedulerName = Scheduler['name'];

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

const CLASS_NAMES: Record<string, SchedulerName> = {
  DDPMScheduler: 'ddpm',
  DDIMScheduler: 'ddim',
  EulerAncestralDiscreteScheduler: 'euler-a',
  EulerDiscreteScheduler: 'euler',
  LCMScheduler: 'lcm',
  DPMSolverMultistepScheduler: 'dpm++2m',
  PNDMScheduler: 'pndm',
};

/**
 * Every scheduler name createScheduler accepts, for CLI and error messages: one per class, and
 * DPMSolverMultistepScheduler's algorithm_type 'sde-dpmsolver++' ("DPM++ 2M SDE") as its own name.
 */
export const SCHEDULER_NAMES: readonly SchedulerName[] = ['ddpm', 'ddim', 'euler-a', 'euler', 'lcm', 'dpm++2m', 'dpm++2m-sde', 'pndm'];

const SDE = 'sde-dpmsolver++';

export function schedulerNameOf(config: Record<string, unknown>): SchedulerName {
  const cls = config._class_name;
  const name = typeof cls === 'string' ? CLASS_NAMES[cls] : undefined;
  if (!name) {
    throw new SchedulerConfigError(
      `scheduler class ${JSON.stringify(cls ?? null)} is not supported (supported: ${Object.keys(CLASS_NAMES).join(', ')}); choose one of ${SCHEDULER_NAMES.join(', ')} explicitly to reuse this config`,
    );
  }
  return name === 'dpm++2m' && config.algorithm_type === SDE ? 'dpm++2m-sde' : name;
}

export function createScheduler(config: Record<string, unknown>, steps: number, opts: CreateSchedulerOptions = {}): Scheduler {
  const name = opts.name ?? schedulerNameOf(config);
  // (Step counts themselves are checked by each scheduler, which names them.)
  const start = opts.start ?? 0;
  if (start !== 0 && (!Number.isInteger(start) || start < 0 || start >= steps)) throw new SchedulerConfigError(`the first step run (${start}) must be an integer in 0..${steps - 1}`);
  if (name === 'ddpm') return new DDPMScheduler(config, steps);
  if (name === 'ddim') return new DDIMScheduler(config, steps, { eta: opts.eta, useClippedModelOutput: opts.useClippedModelOutput });
  if (name === 'euler-a') return new EulerAncestralScheduler(config, steps);
  if (name === 'euler') return new EulerDiscreteScheduler(config, steps);
  if (name === 'lcm') return new LCMScheduler(config, steps);
  // A name the caller chose sets the DPM-Solver algorithm_type over whatever the config says
  // (from_config with an override); a name taken from the config leaves the config's own choice,
  // so an unsupported algorithm_type there stays an error.
  const chosen = opts.name !== undefined;
  if (name === 'dpm++2m') {
    const ode = config.algorithm_type === undefined || config.algorithm_type === 'dpmsolver++' || config.algorithm_type === 'deis';
    return new DPMSolverMultistepScheduler(chosen && !ode ? { ...config, algorithm_type: 'dpmsolver++' } : config, steps, opts.start);
  }
  if (name === 'dpm++2m-sde') return new DPMSolverMultistepScheduler(chosen ? { ...config, algorithm_type: SDE } : config, steps, opts.start);
  if (name === 'pndm') return new PNDMScheduler(config, steps, opts.start);
  throw new SchedulerConfigError(`unknown scheduler '${String(name)}' (supported: ${SCHEDULER_NAMES.join(', ')})`);
}
