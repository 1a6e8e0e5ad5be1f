// diffusers' EulerAncestralDiscreteScheduler trace replayed through the fused GPU step, plus the
// host-side schedule (σ table, timesteps, init_noise_sigma) and the options it refuses.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { replaySchedulerTrace } from '../../src/conformance/scheduler_case.ts';
import { EulerAncestralScheduler } from '../../src/schedulers/euler_ancestral.ts';
import { createScheduler } from '../../src/schedulers/scheduler.ts';
import { runtime } from '../helpers/gpu.ts';
import { SchedulerConfigError } from '../../src/errors.ts';

const TOL = 1e-5;
const dir = fileURLToPath(new URL('../fixtures/sched-euler-a', import.meta.url));
const config = JSON.parse(readFileSync(`${dir}/scheduler_config.json`, 'utf8')) as Record<string, unknown>;

describe('EulerAncestralDiscreteScheduler', () => {
  it('replays the diffusers trace (GPU step vs diffusers)', async () => {
    const rt = await runtime();
    const r = await replaySchedulerTrace(rt, dir);
    expect(r.timesteps, 'timesteps').toEqual(r.expectedTimesteps);
    expect(r.steps.length).toBe(r.expectedTimesteps.length);
    const ratio = (e: number, m: number) => (e / m).toExponential(2);
    const lines = r.steps.map(
      (s) => `  step ${s.i} t=${s.t}: out ${s.maxAbsErr.toExponential(2)} / ${s.maxAbsRef.toFixed(3)} = ${ratio(s.maxAbsErr, s.maxAbsRef)}; model input ${ratio(s.modelInputMaxAbsErr, s.modelInputMaxAbsRef)}`,
    );
    console.log(`sched-euler-a\n${lines.join('\n')}`);
    for (const s of r.steps) {
      expect(s.maxAbsErr / s.maxAbsRef, `step ${s.i} (t = ${s.t})`).toBeLessThanOrEqual(TOL);
      expect(s.modelInputMaxAbsErr / s.modelInputMaxAbsRef, `step ${s.i} model input`).toBeLessThanOrEqual(TOL);
    }
  });

  it('builds from the class name, with σ-space scaling', () => {
    const s = createScheduler(config, 10);
    expect(s.name).toBe('euler-a');
    expect(s.timesteps).toEqual([999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
    const e = s as EulerAncestralScheduler;
    expect(e.sigmas.length).toBe(11);
    expect(e.sigmas[10]).toBe(0);
    // linspace spacing: init_noise_sigma is the largest σ itself (about 14.6 for SD's schedule).
    expect(s.initNoiseSigma).toBe(e.sigmas[0]);
    expect(s.initNoiseSigma).toBeCloseTo(14.6146, 3);
    expect(s.modelInputScale(0)).toBeCloseTo(1 / Math.sqrt(e.sigmas[0]! ** 2 + 1), 6);
    expect(s.drawsNoise(0)).toBe(true);
    expect(s.drawsNoise(9)).toBe(false);
    expect(() => s.stepRow(10)).toThrow(RangeError);
  });

  it('follows timestep_spacing: fractional linspace, leading init_noise_sigma sqrt(σ² + 1)', () => {
    const lin = createScheduler(config, 4);
    expect(lin.timesteps).toEqual([999, 666, 333, 0]);
    const frac = createScheduler(config, 7);
    expect(frac.timesteps[1]).toBe(Math.fround(999 * 5 / 6));
    expect(Number.isInteger(frac.timesteps[1])).toBe(false);
    const lead = createScheduler({ ...config, timestep_spacing: 'leading', steps_offset: 1 }, 10) as EulerAncestralScheduler;
    expect(lead.timesteps).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    expect(lead.initNoiseSigma).toBeCloseTo(Math.sqrt(lead.sigmas[0]! ** 2 + 1), 4);
    const trail = createScheduler({ ...config, timestep_spacing: 'trailing' }, 10);
    expect(trail.timesteps).toEqual([999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  });

  it('supports zero terminal SNR (σ_T from ᾱ_T = 2^-24) and v-prediction', () => {
    const s = createScheduler({ ...config, rescale_betas_zero_snr: true, prediction_type: 'v_prediction' }, 10) as EulerAncestralScheduler;
    expect(s.initNoiseSigma).toBeCloseTo(4096, 0);
    const row = s.stepRow(0);
    expect(row.every(Number.isFinite)).toBe(true);
  });

  it('rejects what diffusers does not implement, by name', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...config, prediction_type: 'sample' }, /prediction_type 'sample' is not supported/],
      [{ ...config, beta_schedule: 'sigmoid' }, /beta_schedule 'sigmoid' is not supported/],
      [{ ...config, timestep_spacing: 'karras' }, /timestep_spacing 'karras' is unknown/],
    ];
    for (const [cfg, msg] of cases) {
      expect(() => createScheduler(cfg, 10)).toThrow(SchedulerConfigError);
      expect(() => createScheduler(cfg, 10)).toThrow(msg);
    }
    expect(() => createScheduler(config, 0)).toThrow(/positive integer/);
  });
});
