// The scheduler registry is the one list of names: everything that lists or maps schedulers must
// agree with it. GPU-free, including its imports (the CLI's argument parser loads it).
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSchedulerName, SCHEDULER_NAMES, schedulerHelp, schedulerHelpLines, SCHEDULERS, type SchedulerEntry } from '../../src/schedulers/registry.ts';
import { createScheduler, schedulerNameOf } from '../../src/schedulers/scheduler.ts';
import { SchedulerConfigError } from '../../src/errors.ts';

const fixture = JSON.parse(readFileSync('tests/fixtures/sd-tiny/scheduler/scheduler_config.json', 'utf8')) as Record<string, unknown>;
const entries: readonly SchedulerEntry[] = SCHEDULERS;

/** Files a module reaches through its static imports, relative to the repository root. */
function importClosure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
      if (!/^import\s+type\b|^export\s+type\b/.test(m[0])) visit(relative('.', join(dirname(file), m[1]!)));
    }
  };
  visit(entry);
  return seen;
}

describe('scheduler registry', () => {
  it('has unique names, and one plain entry per diffusers class', () => {
    expect(new Set(SCHEDULER_NAMES).size).toBe(SCHEDULER_NAMES.length);
    for (const cls of new Set(entries.map((e) => e.className))) {
      expect(entries.filter((e) => e.className === cls && !e.config), cls).toHaveLength(1);
    }
  });

  it('round-trips every name through its diffusers config', () => {
    for (const e of entries) {
      const config = { ...fixture, _class_name: e.className, ...e.config };
      expect(schedulerNameOf(config), e.name).toBe(e.name);
      expect(createScheduler(config, 4).name, e.name).toBe(e.name);
      expect(isSchedulerName(e.name)).toBe(true);
    }
    expect(isSchedulerName('euler_a')).toBe(false);
  });

  it('lets createScheduler build every registered name from any config', () => {
    for (const name of SCHEDULER_NAMES) expect(createScheduler(fixture, 4, { name }).name, name).toBe(name);
    expect(() => createScheduler(fixture, 4, { name: 'heun' as never })).toThrow(/unknown scheduler 'heun' \(supported: ddim, ddpm, /);
  });

  it('maps diffusers class names, DPM-Solver by its algorithm_type', () => {
    const of = (cls: string, extra: Record<string, unknown> = {}) => schedulerNameOf({ _class_name: cls, ...extra });
    expect(of('DDIMScheduler')).toBe('ddim');
    expect(of('DDPMScheduler')).toBe('ddpm');
    expect(of('PNDMScheduler')).toBe('pndm');
    expect(of('EulerDiscreteScheduler')).toBe('euler');
    expect(of('EulerAncestralDiscreteScheduler')).toBe('euler-a');
    expect(of('LCMScheduler')).toBe('lcm');
    expect(of('DPMSolverMultistepScheduler')).toBe('dpm++2m');
    expect(of('DPMSolverMultistepScheduler', { algorithm_type: 'dpmsolver++' })).toBe('dpm++2m');
    // An unsupported algorithm_type stays with the plain name, whose scheduler then refuses it.
    expect(of('DPMSolverMultistepScheduler', { algorithm_type: 'dpmsolver' })).toBe('dpm++2m');
    expect(of('DPMSolverMultistepScheduler', { algorithm_type: 'sde-dpmsolver++' })).toBe('dpm++2m-sde');
    expect(() => of('HeunDiscreteScheduler')).toThrow(SchedulerConfigError);
    expect(() => of('HeunDiscreteScheduler')).toThrow(/"HeunDiscreteScheduler" is not supported \(supported: DDIMScheduler, .*DPMSolverMultistepScheduler, PNDMScheduler\); choose one of ddim, /);
    expect(() => schedulerNameOf({})).toThrow(/scheduler class null is not supported/);
  });

  it('lists every name in the help, in registry order', () => {
    expect(schedulerHelp()).toBe(SCHEDULER_NAMES.join('|'));
    expect(schedulerHelp().startsWith('ddim|')).toBe(true);
    const lines = schedulerHelpLines('  ');
    expect(lines).toHaveLength(entries.length);
    entries.forEach((e, i) => {
      expect(lines[i]!.startsWith(`  ${e.name} `), lines[i]).toBe(true);
      expect(lines[i]!.endsWith(e.description)).toBe(true);
    });
    // Aligned: every description starts in the same column.
    expect(new Set(lines.map((l, i) => l.indexOf(entries[i]!.description))).size).toBe(1);
  });

  it('imports no GPU code, and neither do the schedulers', () => {
    expect([...importClosure('src/schedulers/registry.ts')].sort()).toEqual(['src/errors.ts', 'src/schedulers/registry.ts']);
    const schedulers = [...importClosure('src/schedulers/scheduler.ts')];
    expect(schedulers.filter((f) => /^src\/(gpu|graph)\/|^src\/kernels\/(?!step_row\.ts$)/.test(f))).toEqual([]);
  });
});
