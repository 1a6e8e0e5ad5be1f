import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { STEP_ROW_LENGTH, StepRow } from '../../src/kernels/scheduler_step.ts';
import { DDIMScheduler } from '../../src/schedulers/ddim.ts';
import { DDPMScheduler } from '../../src/schedulers/ddpm.ts';
import { alphasCumprod, inferenceTimesteps, makeBetas, roundHalfEven, type ScheduleConfig } from '../../src/schedulers/schedule.ts';
import { createScheduler, SCHEDULER_NAMES } from '../../src/schedulers/scheduler.ts';
import { SchedulerConfigError } from '../../src/errors.ts';

const base: ScheduleConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: 'scaled_linear',
  trainedBetas: null,
  rescaleBetasZeroSnr: false,
  timestepSpacing: 'leading',
  stepsOffset: 0,
};

describe('timesteps (set_timesteps)', () => {
  it('leading with steps_offset=1, 10 steps', () => {
    expect(inferenceTimesteps({ ...base, stepsOffset: 1 }, 10)).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  });
  it('leading without offset, 10 steps (DDPM fixture)', () => {
    expect(inferenceTimesteps(base, 10)).toEqual([900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  });
  it('leading with a ratio that does not divide T', () => {
    // 1000 // 7 = 142
    expect(inferenceTimesteps({ ...base, stepsOffset: 1 }, 7)).toEqual([853, 711, 569, 427, 285, 143, 1]);
  });
  // Expected values from numpy (np.linspace(...).round() and np.round(np.arange(T, 0, -T/n)) - 1).
  it('linspace rounds halves to even like numpy', () => {
    expect(inferenceTimesteps({ ...base, timestepSpacing: 'linspace' }, 3)).toEqual([999, 500, 0]);
    expect(inferenceTimesteps({ ...base, timestepSpacing: 'linspace' }, 7)).toEqual([999, 832, 666, 500, 333, 166, 0]);
    const l50 = inferenceTimesteps({ ...base, timestepSpacing: 'linspace' }, 50);
    expect(l50.slice(0, 8)).toEqual([999, 979, 958, 938, 917, 897, 877, 856]);
    expect(l50.slice(-4)).toEqual([61, 41, 20, 0]);
  });
  it('trailing', () => {
    expect(inferenceTimesteps({ ...base, timestepSpacing: 'trailing' }, 3)).toEqual([999, 666, 332]);
    expect(inferenceTimesteps({ ...base, timestepSpacing: 'trailing' }, 7)).toEqual([999, 856, 713, 570, 428, 285, 142]);
    const t50 = inferenceTimesteps({ ...base, timestepSpacing: 'trailing' }, 50);
    expect(t50.length).toBe(50);
    expect(t50.slice(-3)).toEqual([59, 39, 19]);
  });
  it('rejects more steps than training timesteps, and out-of-range timesteps', () => {
    expect(() => inferenceTimesteps(base, 1001)).toThrow(SchedulerConfigError);
    expect(() => inferenceTimesteps({ ...base, stepsOffset: 1 }, 1000)).toThrow(/outside \[0, 999\]/);
  });
  it('roundHalfEven', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 3]);
  });
});

describe('betas and alphas_cumprod', () => {
  it('linear and scaled_linear agree with the float64 schedule to float32 precision', () => {
    for (const schedule of ['linear', 'scaled_linear'] as const) {
      const cfg = { ...base, betaSchedule: schedule, betaStart: 0.0001, betaEnd: 0.02 };
      const ac = alphasCumprod(makeBetas(cfg));
      let prod = 1;
      for (let i = 0; i < 1000; i++) {
        const b = schedule === 'linear' ? 0.0001 + (0.02 - 0.0001) * (i / 999) : (Math.sqrt(0.0001) + (Math.sqrt(0.02) - Math.sqrt(0.0001)) * (i / 999)) ** 2;
        prod *= 1 - b;
        expect(Math.abs(ac[i]! - prod) / prod).toBeLessThan(2e-5);
      }
    }
  });
  it('squaredcos_cap_v2 follows the cosine alpha-bar', () => {
    const ac = alphasCumprod(makeBetas({ ...base, betaSchedule: 'squaredcos_cap_v2' }));
    const bar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
    for (const i of [0, 100, 500, 900]) expect(ac[i]! / (bar((i + 1) / 1000) / bar(0))).toBeCloseTo(1, 4);
  });
  it('trained_betas are used as given', () => {
    const betas = Array.from({ length: 10 }, (_, i) => 0.01 * (i + 1));
    expect(Array.from(makeBetas({ ...base, numTrainTimesteps: 10, trainedBetas: betas }))).toEqual(betas.map(Math.fround));
    expect(() => makeBetas({ ...base, trainedBetas: betas })).toThrow(/trained_betas has 10 values/);
  });
  it('zero terminal SNR: last alphas_cumprod is 0, the first is kept', () => {
    const plain = alphasCumprod(makeBetas(base));
    const ac = alphasCumprod(makeBetas({ ...base, rescaleBetasZeroSnr: true }));
    expect(ac[999]).toBe(0);
    expect(ac[0]! / plain[0]!).toBeCloseTo(1, 6);
    for (let i = 1; i < 1000; i++) expect(ac[i]!).toBeLessThanOrEqual(ac[i - 1]!);
  });
});

describe('config handling', () => {
  const ddim = { _class_name: 'DDIMScheduler', beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 };
  const ddpm = { _class_name: 'DDPMScheduler' };
  it('chooses the class from _class_name or opts.name', () => {
    expect(createScheduler(ddim, 10).name).toBe('ddim');
    expect(createScheduler(ddpm, 10).name).toBe('ddpm');
    expect(createScheduler(ddim, 10, { name: 'ddpm' }).name).toBe('ddpm');
    expect(createScheduler({ _class_name: 'PNDMScheduler', beta_schedule: 'scaled_linear' }, 10, { name: 'ddim' }).name).toBe('ddim');
    expect(() => createScheduler({ _class_name: 'PNDMScheduler' }, 10)).toThrow(/PNDMScheduler.*not supported/);
  });
  it('names each unsupported option', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...ddim, thresholding: true, dynamic_thresholding_ratio: 1.5 }, /dynamic_thresholding_ratio 1.5 is not a quantile/],
      [{ ...ddpm, variance_type: 'learned_range' }, /variance_type 'learned_range' is not supported/],
      [{ ...ddpm, variance_type: 'fixed_large_log' }, /variance_type 'fixed_large_log' is not supported/],
      [{ ...ddpm, variance_type: 'wobbly' }, /variance_type 'wobbly' is unknown/],
      [{ ...ddim, prediction_type: 'x0' }, /prediction_type 'x0' is unknown/],
      [{ ...ddim, beta_schedule: 'sigmoid' }, /beta_schedule 'sigmoid' is not supported/],
      [{ ...ddim, beta_schedule: 'cubic' }, /beta_schedule 'cubic' is unknown/],
      [{ ...ddim, timestep_spacing: 'karras' }, /timestep_spacing 'karras' is unknown/],
      [{ ...ddim, clip_sample: 'yes' }, /clip_sample = "yes" is not true or false/],
      [{ ...ddim, steps_offset: -1 }, /steps_offset = -1 is not an integer >= 0/],
      // epsilon at ᾱ = 0 (zero terminal SNR, trailing): only a clip makes diffusers' ±inf x0 finite
      [{ ...ddim, rescale_betas_zero_snr: true, timestep_spacing: 'trailing', clip_sample: false }, /t = 999\) .* without clip_sample/],
      [{ ...ddpm, rescale_betas_zero_snr: true, timestep_spacing: 'trailing', thresholding: true }, /without clip_sample .* inf or NaN/],
    ];
    for (const [cfg, msg] of bad) {
      expect(() => createScheduler(cfg, 10)).toThrow(SchedulerConfigError);
      expect(() => createScheduler(cfg, 10)).toThrow(msg);
    }
  });
  it('DDPM accepts the sigmoid schedule and fixed_small_log', () => {
    const s = new DDPMScheduler({ ...ddpm, beta_schedule: 'sigmoid', variance_type: 'fixed_small_log' }, 10);
    expect(s.alphasCumprod[999]).toBeGreaterThan(0);
  });
  it('epsilon prediction at a zero-SNR timestep is refused unless clipped, v_prediction is fine', () => {
    const zsnr = { ...ddim, rescale_betas_zero_snr: true, timestep_spacing: 'trailing', clip_sample: false };
    expect(() => createScheduler(zsnr, 10)).toThrow(/non-finite coefficient/);
    // With clip_sample, diffusers' ±inf x0 clips to ±range: the row marks x0 as infinite.
    const clipped = createScheduler({ ...zsnr, clip_sample: true }, 10).stepRow(0);
    expect(clipped[StepRow.x0Inf]).toBe(1);
    expect(Array.from(clipped).every(Number.isFinite)).toBe(true);
    const s = createScheduler({ ...zsnr, prediction_type: 'v_prediction' }, 10);
    expect(s.timesteps[0]).toBe(999);
    expect(Array.from(s.stepRow(0)).every(Number.isFinite)).toBe(true);
  });
  it('drawsNoise: DDPM for t > 0, DDIM for eta > 0', () => {
    const p = createScheduler(ddpm, 10);
    expect(p.timesteps.map((_, i) => p.drawsNoise(i))).toEqual([true, true, true, true, true, true, true, true, true, false]);
    expect(createScheduler({ ...ddpm, timestep_spacing: 'trailing' }, 10).drawsNoise(9)).toBe(true);
    expect(createScheduler(ddim, 10).drawsNoise(0)).toBe(false);
    expect(createScheduler(ddim, 10, { eta: 0.5 }).drawsNoise(9)).toBe(true);
  });
  it('set_alpha_to_one picks the last step\'s previous alpha', () => {
    const one = new DDIMScheduler({ ...ddim, set_alpha_to_one: true }, 10);
    const first = new DDIMScheduler({ ...ddim, set_alpha_to_one: false }, 10);
    expect(one.finalAlphaCumprod).toBe(1);
    expect(first.finalAlphaCumprod).toBe(first.alphasCumprod[0]);
    expect(one.coefficients(9).c0).toBe(1);
  });
  it('rows carry t, the step index and guidance 1', () => {
    const s = createScheduler({ ...ddim, steps_offset: 1 }, 10);
    expect(s.rowLength).toBe(STEP_ROW_LENGTH);
    expect(s.initNoiseSigma).toBe(1);
    const row = s.stepRow(3);
    expect([row[0], row[1], row[2]]).toEqual([601, 3, 1]);
    expect(s.modelInputScale(3)).toBe(1);
    expect(() => s.stepRow(10)).toThrow(RangeError);
  });
});

describe('step indices', () => {
  it('every scheduler refuses a step outside its loop with a RangeError naming it', () => {
    const config = JSON.parse(readFileSync('tests/fixtures/sd-tiny/scheduler/scheduler_config.json', 'utf8')) as Record<string, unknown>;
    for (const name of SCHEDULER_NAMES) {
      const s = createScheduler(config, 4, { name });
      const n = s.timesteps.length;
      expect(() => s.stepRow(0)).not.toThrow();
      for (const bad of [-1, n, 1.5]) {
        expect(() => s.stepRow(bad), `${name} step ${bad}`).toThrow(RangeError);
        expect(() => s.stepRow(bad), `${name} step ${bad}`).toThrow(new RegExp(`step ${bad} is outside 0\\.\\.${n - 1}`));
      }
    }
  });
});
