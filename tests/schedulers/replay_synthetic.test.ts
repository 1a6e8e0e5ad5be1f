// The replay on trace folders of configurations the diffusers fixtures do not cover (v_prediction,
// sample prediction, trailing / linspace spacing, eta > 0 through case.json's step_kwargs). The
// expected samples come from the float64 diffusers formulas in tests/ref, so this checks the
// replay's plumbing and the rows' algebra together; the diffusers traces pin the float32 details.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DDIMScheduler } from '../../src/schedulers/ddim.ts';
import { DDPMScheduler } from '../../src/schedulers/ddpm.ts';
import { replaySchedulerTrace } from '../../src/conformance/scheduler_case.ts';
import { runtime } from '../helpers/gpu.ts';
import { gauss, writeTraceFolder } from '../helpers/synthetic_trace.ts';
import { ddimStepRef, ddpmStepRef } from '../ref/scheduler_step.ts';

interface Synthetic {
  name: string;
  config: Record<string, unknown>;
  steps: number;
  stepKwargs: Record<string, unknown>;
  /** Defaults to [1, 4, 4, 4]; thresholding cases use two items, each with its own quantile. */
  shape?: number[];
}

function thresholdOf(config: Record<string, unknown>) {
  if (config.thresholding !== true) return null;
  return { ratio: (config.dynamic_thresholding_ratio as number | undefined) ?? 0.995, maxValue: (config.sample_max_value as number | undefined) ?? 1 };
}

/** The trace folder, and how far thresholding moved the steps (0 without it): a test of it must not pass by ignoring it. */
function writeTrace(c: Synthetic): { dir: string; thresholdEffect: number } {
  const shape = c.shape ?? [1, 4, 4, 4];
  const n = shape.reduce((a, b) => a * b, 1);
  const items = shape[0]!;
  const threshold = thresholdOf(c.config);
  const x0 = gauss(n, 11);
  const cc = gauss(n, 12);
  const tensors: Record<string, { dtype: 'F32' | 'I64'; shape: number[]; data: ArrayBufferView }> = {
    x_init: { dtype: 'F32', shape, data: x0 },
    c: { dtype: 'F32', shape, data: cc },
  };
  let x: ArrayLike<number> = x0;
  let thresholdEffect = 0;
  const eta = (c.stepKwargs.eta as number | undefined) ?? 0;
  const ddim = c.config._class_name === 'DDIMScheduler';
  const s = ddim ? new DDIMScheduler(c.config, c.steps, { eta }) : new DDPMScheduler(c.config, c.steps);
  tensors.timesteps = { dtype: 'I64', shape: [c.steps], data: BigInt64Array.from(s.timesteps.map(BigInt)) };
  const pred = (c.config.prediction_type ?? 'epsilon') as 'epsilon' | 'v_prediction' | 'sample';
  const clip = c.config.clip_sample === false ? null : ((c.config.clip_sample_range as number | undefined) ?? 1);
  for (let i = 0; i < c.steps; i++) {
    const t = s.timesteps[i]!;
    const m = Float32Array.from(x);
    const out = Float64Array.from(m, (v, j) => 0.1 * v + cc[j]!);
    const prev = s.prevTimestep(i);
    const a = s.alphasCumprod[t]!;
    const draws = s.drawsNoise(i);
    const noise = draws ? gauss(n, 100 + i) : new Float32Array(n);
    const step = (th: typeof threshold) => {
      if (s instanceof DDIMScheduler) {
        const ap = prev >= 0 ? s.alphasCumprod[prev]! : s.finalAlphaCumprod;
        return ddimStepRef(m, out, noise, { a, ap, pred, clip, eta, useClipped: false, threshold: th, items });
      }
      const ap = prev >= 0 ? s.alphasCumprod[prev]! : 1;
      return ddpmStepRef(m, out, draws ? noise : null, { a, ap, pred, clip, variance: (c.config.variance_type as 'fixed_large') ?? 'fixed_small', threshold: th, items });
    };
    const next = step(threshold);
    if (threshold) {
      const plain = step(null);
      const ref = Math.max(...plain.map(Math.abs));
      thresholdEffect = Math.max(thresholdEffect, Math.max(...next.map((v, j) => Math.abs(v - plain[j]!))) / ref);
    }
    tensors[`step${i}_model_input`] = { dtype: 'F32', shape, data: m };
    tensors[`step${i}_noise`] = { dtype: 'F32', shape, data: noise };
    tensors[`step${i}_out`] = { dtype: 'F32', shape, data: Float32Array.from(next) };
    x = next;
  }
  return { dir: writeTraceFolder(c.name, c.config, c.steps, tensors, c.stepKwargs), thresholdEffect };
}

const ldm = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 };
const cases: Synthetic[] = [
  { name: 'ddim-v-trailing-eta', config: { _class_name: 'DDIMScheduler', ...ldm, prediction_type: 'v_prediction', timestep_spacing: 'trailing', clip_sample: false, set_alpha_to_one: true }, steps: 8, stepKwargs: { eta: 0.7 } },
  { name: 'ddim-sample-linspace-clip', config: { _class_name: 'DDIMScheduler', ...ldm, prediction_type: 'sample', timestep_spacing: 'linspace', clip_sample: true, clip_sample_range: 2 }, steps: 7, stepKwargs: {} },
  { name: 'ddpm-v-trailing-large', config: { _class_name: 'DDPMScheduler', prediction_type: 'v_prediction', timestep_spacing: 'trailing', variance_type: 'fixed_large', clip_sample: false }, steps: 6, stepKwargs: {} },
  { name: 'ddpm-cosine-offset', config: { _class_name: 'DDPMScheduler', beta_schedule: 'squaredcos_cap_v2', steps_offset: 1 }, steps: 5, stepKwargs: {} },
  // Dynamic thresholding: quantiles between order statistics (rank 0.8·63 = 50.4), clamped to
  // [1, max] only sometimes, per item of a batch of 2; clip_sample is ignored, as in diffusers.
  { name: 'ddim-threshold-eta', config: { _class_name: 'DDIMScheduler', ...ldm, thresholding: true, dynamic_thresholding_ratio: 0.8, sample_max_value: 6, clip_sample: true }, steps: 8, stepKwargs: { eta: 0.5 }, shape: [2, 4, 4, 4] },
  { name: 'ddpm-threshold-v', config: { _class_name: 'DDPMScheduler', prediction_type: 'v_prediction', thresholding: true, sample_max_value: 2.5 }, steps: 6, stepKwargs: {}, shape: [2, 3, 5, 7] },
];

// These traces come from the float64 formulas with this scheduler's own timesteps and ᾱ, so they check
// the GPU step's row algebra for configs the diffusers fixtures do not cover, not the schedule itself.
describe('GPU step algebra on synthetic traces (v_prediction, sample, clip, eta, fixed_large, cosine, thresholding)', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const rt = await runtime();
      const { dir, thresholdEffect } = writeTrace(c);
      if (c.config.thresholding) expect(thresholdEffect, 'thresholding changes the steps').toBeGreaterThan(0.05);
      const r = await replaySchedulerTrace(rt, dir);
      expect(r.timestepsMatch).toBe(true);
      expect(r.steps.length).toBe(c.steps);
      console.log(`${c.name}: worst step ratio ${Math.max(...r.steps.map((s) => s.maxAbsErr / s.maxAbsRef)).toExponential(2)}`);
      for (const s of r.steps) expect(s.maxAbsErr / s.maxAbsRef, `${c.name} step ${s.i} (t = ${s.t})`).toBeLessThanOrEqual(1e-5);
    });
  }
  it('rejects step_kwargs it does not model', async () => {
    const rt = await runtime();
    const { dir } = writeTrace(cases[1]!);
    writeFileSync(join(dir, 'case.json'), JSON.stringify({ class: 'DDIMScheduler', steps: 7, step_kwargs: { variance_noise: 1 } }));
    await expect(replaySchedulerTrace(rt, dir)).rejects.toThrow(/step_kwargs.variance_noise/);
  });
});
