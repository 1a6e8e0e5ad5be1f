import { Graph } from '../../src/graph/graph.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { schedulerStep, StepRow } from '../../src/kernels/scheduler_step.ts';
import { createScheduler, type CreateSchedulerOptions } from '../../src/schedulers/scheduler.ts';
import { input, randn } from '../helpers/gpu.ts';
import { schedulerStepRef } from '../ref/scheduler_step.ts';
import { F32, type OpCase } from './cases.ts';

// The two fixture configs (tests/fixtures/sched-*), with variations the traces do not cover.
const ddpmConfig = { _class_name: 'DDPMScheduler', beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02, clip_sample: true, variance_type: 'fixed_small' };
const ddimConfig = {
  _class_name: 'DDIMScheduler',
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
};

interface Row {
  what: string;
  config: Record<string, unknown>;
  opts?: CreateSchedulerOptions;
  steps: number;
  step: number;
  shape: number[];
  cfg?: boolean;
  guidance?: number;
  /** Bind nextInput and epsOut too. */
  outputs?: boolean;
  /** Bind a prevX0 history (multistep solvers); checked for both its read and its new x0. */
  history?: boolean;
}

const pndmConfig = { ...ddimConfig, _class_name: 'PNDMScheduler', skip_prk_steps: true };

const rows: Row[] = [
  { what: 'ddpm clip step 2', config: ddpmConfig, steps: 10, step: 2, shape: [1, 3, 5, 5] },
  { what: 'ddpm clip last step (t=0, noise bound but unused)', config: ddpmConfig, steps: 10, step: 9, shape: [1, 3, 5, 5] },
  { what: 'ddpm v_prediction fixed_large', config: { ...ddpmConfig, prediction_type: 'v_prediction', variance_type: 'fixed_large', clip_sample: false }, steps: 50, step: 20, shape: [2, 4, 8, 8] },
  { what: 'ddim eta=0 +cfg', config: ddimConfig, steps: 10, step: 0, shape: [2, 4, 8, 8], cfg: true, guidance: 7.5, outputs: true },
  { what: 'ddim eta=0 no cfg', config: ddimConfig, steps: 10, step: 9, shape: [1, 3, 5, 5], outputs: true },
  { what: 'ddim eta=1 clip 0.5 v_prediction +cfg', config: { ...ddimConfig, clip_sample: true, clip_sample_range: 0.5, prediction_type: 'v_prediction' }, opts: { eta: 1 }, steps: 20, step: 5, shape: [2, 4, 8, 8], cfg: true, guidance: 3, outputs: true },
  { what: 'ddim sample prediction clip use_clipped_model_output', config: { ...ddimConfig, clip_sample: true, prediction_type: 'sample' }, opts: { useClippedModelOutput: true, eta: 0.3 }, steps: 25, step: 3, shape: [1, 3, 5, 5] },
  { what: 'ddim eta=0 clip, real LDM latent shape', config: { ...ddimConfig, clip_sample: true }, steps: 50, step: 1, shape: [2, 3, 32, 32], cfg: true, guidance: 2 },
  { what: 'euler v_prediction leading', config: { ...ddimConfig, _class_name: 'EulerDiscreteScheduler', prediction_type: 'v_prediction', timestep_spacing: 'leading' }, steps: 10, step: 3, shape: [1, 3, 5, 5], outputs: true },
  { what: 'lcm clip +cfg (noise)', config: { ...ddimConfig, _class_name: 'LCMScheduler', clip_sample: true }, steps: 4, step: 1, shape: [2, 4, 8, 8], cfg: true, guidance: 1.5 },
  { what: 'dpm++2m first step (history written, not read)', config: { ...ddimConfig, _class_name: 'DPMSolverMultistepScheduler' }, steps: 10, step: 0, shape: [1, 3, 5, 5], history: true },
  { what: 'dpm++2m second-order step +cfg', config: { ...ddimConfig, _class_name: 'DPMSolverMultistepScheduler' }, steps: 10, step: 4, shape: [2, 4, 8, 8], cfg: true, guidance: 3, history: true, outputs: true },
  { what: 'pndm call 0 (stores the sample and ring slot 0, reads no history)', config: pndmConfig, steps: 10, step: 0, shape: [1, 3, 5, 5], outputs: true },
  { what: 'pndm call 1 (restarts from the stored sample, mean with slot 0) +cfg', config: pndmConfig, steps: 10, step: 1, shape: [2, 4, 8, 8], cfg: true, guidance: 7.5, outputs: true },
  { what: 'pndm call 4 (4th order, refills the slot it reads) v_prediction odd size', config: { ...pndmConfig, prediction_type: 'v_prediction' }, steps: 10, step: 4, shape: [1, 1, 17, 19] },
  // Dynamic thresholding: three dispatches (x0, per-item quantile, step), each item its own s.
  { what: 'ddim thresholding +cfg', config: { ...ddimConfig, thresholding: true, dynamic_thresholding_ratio: 0.9, sample_max_value: 2 }, steps: 10, step: 2, shape: [2, 4, 8, 8], cfg: true, guidance: 3, outputs: true },
  { what: 'dpm++2m thresholding second-order (thresholded x0 into the history) +cfg', config: { ...ddimConfig, _class_name: 'DPMSolverMultistepScheduler', thresholding: true, sample_max_value: 3 }, steps: 10, step: 4, shape: [2, 4, 8, 8], cfg: true, guidance: 3, history: true },
  { what: 'lcm thresholding, 3 items (noise)', config: { ...ddimConfig, _class_name: 'LCMScheduler', thresholding: true, dynamic_thresholding_ratio: 0.7, sample_max_value: 4 }, steps: 4, step: 1, shape: [3, 2, 5, 5] },
  { what: 'dpm++2m heun v_prediction odd size', config: { ...ddimConfig, _class_name: 'DPMSolverMultistepScheduler', solver_type: 'heun', prediction_type: 'v_prediction' }, steps: 7, step: 2, shape: [1, 1, 17, 19], history: true },
];

export const schedulerStepCases: OpCase[] = rows.map((r, idx) => ({
  op: 'scheduler_step',
  name: `${r.what} ${JSON.stringify(r.shape)}`,
  ...F32,
  async run(rt) {
    const sched = createScheduler(r.config, r.steps, r.opts);
    const row = sched.stepRow(r.step);
    row[StepRow.guidance] = r.guidance ?? 1;
    const n = r.shape.reduce((a, b) => a * b, 1);
    const B = r.shape[0]!;
    const tail = r.shape.slice(1);
    const x = randn(n, 100 + idx, 2);
    const out = randn(r.cfg ? 2 * n : n, 200 + idx, 1.5);
    const draws = row[StepRow.c3] !== 0;
    // A step without noise must not read it: NaN there would show up in the output.
    const noise = draws ? randn(n, 300 + idx) : new Float32Array(n).fill(NaN);
    // The first step must not read the history: NaN there would show up in the output.
    const hist = r.history ? (row[StepRow.d] !== 0 ? randn(n, 400 + idx, 2) : new Float32Array(n).fill(NaN)) : undefined;
    // PLMS: ring slots and the stored sample the row does not read are NaN, for the same reason.
    const plms = sched.usesEpsHistory === true;
    const w = (k: number) => row[StepRow.wHist0 + k]!;
    const ring = plms ? Float32Array.from({ length: 3 * n }, (_, j) => (w(Math.floor(j / n)) !== 0 ? 0 : NaN)) : undefined;
    if (ring) [0, 1, 2].forEach((k) => w(k) !== 0 && ring.set(randn(n, 500 + 10 * idx + k, 1.5), k * n));
    const stored = plms ? (row[StepRow.fromStored] !== 0 ? randn(n, 600 + idx, 2) : new Float32Array(n).fill(NaN)) : undefined;
    const threshold = sched.threshold ?? null;
    const ref = schedulerStepRef(x, out, row, { noise, cfg: r.cfg, prevX0: hist, epsHist: ring, storedSample: stored, threshold, items: B });

    const owned: Tensor[] = [];
    const t = <T extends Tensor>(v: T) => (owned.push(v), v);
    const xT = t(input(rt, x, r.shape, 'x'));
    const outT = t(input(rt, out, [r.cfg ? 2 * B : B, ...tail], 'modelOut'));
    const noiseT = t(input(rt, noise, r.shape, 'noise'));
    const rowBuf = rt.upload(row, 'row');
    const g = new Graph(rt, 'sched-test');
    const nextT = r.outputs ? g.alloc([r.cfg ? 2 * B : B, ...tail], 'next') : undefined;
    const epsT = r.outputs ? g.alloc(r.shape, 'eps') : undefined;
    const histT = hist ? t(input(rt, hist, r.shape, 'prevX0')) : undefined;
    const ringT = ring ? t(input(rt, ring, [3 * B, ...tail], 'epsHist')) : undefined;
    const storedT = stored ? t(input(rt, stored, r.shape, 'storedSample')) : undefined;
    const epsHistory = ringT && storedT ? { eps: ringT, sample: storedT } : undefined;
    schedulerStep(g, 'step', { x: xT, modelOut: outT, row: rowBuf, noise: noiseT, cfg: r.cfg, nextInput: nextT, epsOut: epsT, prevX0: histT, epsHistory, threshold });
    g.finalize();
    g.submit();
    await rt.assertHealthy();
    const parts = [await rt.read(xT.buffer, n * 4)];
    const refs: ArrayLike<number>[] = [ref.prev];
    if (nextT && epsT) {
      parts.push(await rt.read(nextT.buffer, ref.next.length * 4), await rt.read(epsT.buffer, n * 4));
      refs.push(ref.next, ref.eps);
    }
    if (histT) {
      parts.push(await rt.read(histT.buffer, n * 4));
      refs.push(ref.x0);
    }
    if (ringT && storedT) {
      // Only what the step writes: this call's ring slot and, on call 0, the stored sample.
      const slot = row[StepRow.histWrite]!;
      if (slot >= 0) {
        const all = await rt.read(ringT.buffer, 3 * n * 4);
        parts.push(all.subarray(slot * n, (slot + 1) * n));
        refs.push(ref.epsHist!.subarray(slot * n, (slot + 1) * n));
      }
      if (row[StepRow.storeSample] !== 0) {
        parts.push(await rt.read(storedT.buffer, n * 4));
        refs.push(ref.storedSample!);
      }
    }
    g.destroy();
    for (const o of owned) rt.destroyBuffer(o.buffer);
    rt.destroyBuffer(rowBuf);
    const cat = (a: ArrayLike<number>[]) => Float64Array.from(a.flatMap((v) => Array.from(v)));
    return { got: cat(parts), ref: cat(refs) };
  },
}));
