// The one list of schedulers. The SchedulerName type, the library's SCHEDULER_NAMES, the CLI's
// --scheduler values and help, and the diffusers config → name mapping derive from it; so does
// createScheduler, whose factories (scheduler.ts) are keyed by SchedulerName and so must cover
// exactly these names. Plain data: the factories stay out so that the CLI's argument parser can
// import this without the schedulers' math, and so that the Scheduler interface can name its
// SchedulerName without the type depending on itself.
import { SchedulerConfigError } from '../errors.ts';

export interface SchedulerEntry {
  /** The library and CLI name. */
  readonly name: string;
  /** The diffusers class: a config with this _class_name maps to this name. */
  readonly className: string;
  /**
   * Config values that tell this name apart from another of the same class (schedulerNameOf), and
   * that choosing this name sets over the config's own (from_config with an override). At most
   * one entry per class goes without: the one a config of that class gets otherwise.
   */
  readonly config?: Readonly<Record<string, string>>;
  /** One line for help text. */
  readonly description: string;
}

/** In help order: the CLI's default for class-conditional models first. */
export const SCHEDULERS = [
  { name: 'ddim', className: 'DDIMScheduler', description: 'DDIM, deterministic unless eta > 0' },
  { name: 'ddpm', className: 'DDPMScheduler', description: 'DDPM, ancestral sampling (fresh noise every step)' },
  { name: 'euler-a', className: 'EulerAncestralDiscreteScheduler', description: 'Euler ancestral (fresh noise every step)' },
  { name: 'euler', className: 'EulerDiscreteScheduler', description: 'Euler, deterministic' },
  { name: 'lcm', className: 'LCMScheduler', description: 'latent consistency models, a few steps' },
  { name: 'dpm++2m', className: 'DPMSolverMultistepScheduler', description: 'DPM-Solver++ 2M, deterministic multistep' },
  { name: 'dpm++2m-sde', className: 'DPMSolverMultistepScheduler', config: { algorithm_type: 'sde-dpmsolver++' }, description: 'DPM-Solver++ 2M SDE (fresh noise every step)' },
  { name: 'pndm', className: 'PNDMScheduler', description: 'PNDM in its PLMS form, as Stable Diffusion 1.x ships it' },
] as const satisfies readonly SchedulerEntry[];

export type SchedulerName = (typeof SCHEDULERS)[number]['name'];

/** Every scheduler name createScheduler accepts, in help order. */
export const SCHEDULER_NAMES: readonly SchedulerName[] = SCHEDULERS.map((s) => s.name);

export function isSchedulerName(name: unknown): name is SchedulerName {
  return SCHEDULER_NAMES.includes(name as SchedulerName);
}

export function schedulerEntry(name: SchedulerName): SchedulerEntry {
  const entry = SCHEDULERS.find((s) => s.name === name);
  if (!entry) throw new SchedulerConfigError(`unknown scheduler '${String(name)}' (supported: ${SCHEDULER_NAMES.join(', ')})`);
  return entry;
}

const matches = (entry: SchedulerEntry, config: Record<string, unknown>): boolean =>
  Object.entries(entry.config ?? {}).every(([key, value]) => config[key] === value);

/** The name a diffusers scheduler config runs under when the caller names none. */
export function schedulerNameOf(config: Record<string, unknown>): SchedulerName {
  const cls = config._class_name;
  const ofClass = SCHEDULERS.filter((s: SchedulerEntry) => s.className === cls);
  // Entries that ask for config values first, so the plain one of a class is the fallback.
  const entry = ofClass.find((s: SchedulerEntry) => s.config && matches(s, config)) ?? ofClass.find((s: SchedulerEntry) => !s.config);
  if (!entry) {
    const classes = [...new Set(SCHEDULERS.map((s) => s.className))];
    throw new SchedulerConfigError(
      `scheduler class ${JSON.stringify(cls ?? null)} is not supported (supported: ${classes.join(', ')}); choose one of ${SCHEDULER_NAMES.join(', ')} explicitly to reuse this config`,
    );
  }
  return entry.name;
}

/** The --scheduler values for usage text: `ddim|ddpm|...`, in help order. */
export function schedulerHelp(): string {
  return SCHEDULER_NAMES.join('|');
}

/** One aligned `name  description` line per scheduler, in help order, each after `indent`. */
export function schedulerHelpLines(indent = ''): string[] {
  const width = Math.max(...SCHEDULER_NAMES.map((n) => n.length));
  return SCHEDULERS.map((s) => `${indent}${s.name.padEnd(width)}  ${s.description}`);
}
