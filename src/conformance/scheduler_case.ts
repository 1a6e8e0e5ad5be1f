// Replays a diffusers scheduler trace (a fixtures/sched-* folder) through the fused GPU step:
// x = x_init; per step (from case.json's start, an img2img-style slice, when it has one) m = scale(x), eps = 0.1·m + c, x = step(eps, t, x, noise), each result
// compared with diffusers' prev_sample. The chain runs on our own samples, so errors accumulate
// the way they would in a real loop. Also the scheduler part of a text-to-image pipeline trace
// (replayPipelineSchedulerTrace), fed the trace's recorded U-Net outputs. Node only (reads the folder).
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { readJson } from '../io/model_folder.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers, type HostTensor } from '../io/safetensors.ts';
import { EPS_HISTORY_SLOTS, schedulerStep, StepRow } from '../kernels/scheduler_step.ts';
import { createScheduler, schedulerNameOf, type CreateSchedulerOptions } from '../schedulers/scheduler.ts';
import { SchedulerConfigError } from '../errors.ts';

export interface ReplayStep {
  i: number;
  t: number;
  /** max |ours − diffusers| over step{i}_out. */
  maxAbsErr: number;
  maxAbsRef: number;
  /** max |ours − diffusers| over step{i}_model_input (before the step). */
  modelInputMaxAbsErr: number;
  modelInputMaxAbsRef: number;
}

/**
 * Integer timesteps must be equal. Fractional ones (the Euler schedulers) may differ by a few float32
 * ulps: the Karras schedule maps σ back to t through numpy's float32 log, which is not correctly
 * rounded (1 ulp off in some entries), and that moves t by ~1e-7 of itself.
 */
export function timestepsAgree(ours: number[], theirs: number[]): boolean {
  return ours.length === theirs.length && ours.every((t, i) => {
    const e = theirs[i]!;
    return Number.isInteger(e) && Number.isInteger(t) ? t === e : Math.abs(t - e) <= 1e-6 * Math.max(1, Math.abs(e));
  });
}

export interface ReplayResult {
  steps: ReplayStep[];
  timestepsMatch: boolean;
  /** Our timesteps and the trace's, for a report when they differ. */
  timesteps: number[];
  expectedTimesteps: number[];
}

/** case.json's step_kwargs as scheduler options; a kwarg we do not model is an error, not ignored. */
function stepOptions(kwargs: unknown, where: string): CreateSchedulerOptions {
  const opts: CreateSchedulerOptions = {};
  if (kwargs === undefined || kwargs === null) return opts;
  if (typeof kwargs !== 'object' || Array.isArray(kwargs)) throw new SchedulerConfigError(`${where}: step_kwargs must be an object`);
  for (const [k, v] of Object.entries(kwargs)) {
    if (k === 'eta' && typeof v === 'number') opts.eta = v;
    else if (k === 'use_clipped_model_output' && typeof v === 'boolean') opts.useClippedModelOutput = v;
    else throw new SchedulerConfigError(`${where}: step_kwargs.${k} = ${JSON.stringify(v)} is not supported`);
  }
  return opts;
}

/** max|a − b| and max|b|; a NaN anywhere makes the error NaN, so it fails every check. */
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): { err: number; ref: number } {
  let err = 0;
  let ref = 0;
  for (let j = 0; j < b.length; j++) {
    const d = Math.abs(a[j]! - b[j]!);
    err = Number.isNaN(d) ? NaN : Math.max(err, d);
    ref = Math.max(ref, Math.abs(b[j]!));
  }
  return { err, ref };
}

export async function replaySchedulerTrace(rt: Runtime, dir: string): Promise<ReplayResult> {
  const config = await readJson(join(dir, 'scheduler_config.json'));
  const kase = await readJson(join(dir, 'case.json'));
  const steps = kase.steps;
  if (typeof steps !== 'number' || !Number.isInteger(steps)) throw new Error(`${dir}/case.json: steps must be an integer`);
  const opts = stepOptions(kase.step_kwargs, `${dir}/case.json`);
  if (typeof kase.class === 'string' && typeof config._class_name !== 'string') config._class_name = kase.class;
  opts.name = schedulerNameOf(config);
  // start: an img2img-style run of timesteps[start:] on a fresh scheduler (step names keep their index).
  const start = kase.start ?? 0;
  if (typeof start !== 'number' || !Number.isInteger(start)) throw new Error(`${dir}/case.json: start must be an integer`);
  opts.start = start;
  const sched = createScheduler(config, steps, opts);

  const trace = await readSafetensorsFile(join(dir, 'trace.safetensors'));
  const need = (key: string): HostTensor => {
    const t = trace.get(key);
    if (!t) throw new Error(`${dir}/trace.safetensors has no tensor '${key}'`);
    return t;
  };
  // Integer for DDPM/DDIM; float32 (and fractional with linspace spacing) for the Euler schedulers.
  const tsTensor = need('timesteps');
  const expectedTimesteps = tsTensor.dtype === 'F32' || tsTensor.dtype === 'F64' ? Array.from(toFloat32(tsTensor)) : toInt64Numbers(tsTensor);
  const timestepsMatch = timestepsAgree(sched.timesteps, expectedTimesteps);
  const xInit = need('x_init');
  const shape = xInit.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  const c = toFloat32(need('c'));
  const bytes = n * 4;

  const owned: GPUBuffer[] = [];
  const tensor = (label: string): Tensor => {
    const buffer = rt.createBuffer(bytes, label);
    owned.push(buffer);
    return { buffer, shape, label };
  };
  const x = tensor('x');
  const eps = tensor('eps');
  const noise = tensor('noise');
  // Multistep solvers keep the previous x0 on the GPU between steps.
  const prevX0 = sched.usesX0History ? tensor('prev-x0') : undefined;
  const epsHistory = sched.usesEpsHistory ? epsHistoryTensors(rt, shape, owned) : undefined;
  const row = rt.createBuffer(sched.rowLength * 4, 'step-row');
  owned.push(row);
  const q = rt.device.queue;
  const write = (buf: GPUBuffer, data: Float32Array) => q.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  const g = new Graph(rt, 'scheduler-replay');
  try {
    // One graph for the whole loop, as the pipeline does: only the row and the inputs change.
    schedulerStep(g, 'step', { x, modelOut: eps, row, noise, prevX0, epsHistory, threshold: sched.threshold });
    g.finalize();
    write(x.buffer, toFloat32(xInit));
    let cur: Float32Array = toFloat32(xInit).slice();
    const out: ReplayStep[] = [];
    // One row per U-Net call: steps + 1 of them for PNDM's PLMS.
    for (let i = start; i < sched.timesteps.length; i++) {
      const s = Math.fround(sched.modelInputScale(i));
      const m = cur.map((v) => v * s);
      const mi = maxAbs(m, toFloat32(need(`step${i}_model_input`)));
      // The stand-in model in float32, as torch evaluates 0.1 * m + c.
      const tenth = Math.fround(0.1);
      const e = m.map((v, j) => Math.fround(v * tenth) + c[j]!);
      write(eps.buffer, e);
      write(noise.buffer, toFloat32(need(`step${i}_noise`)));
      write(row, sched.stepRow(i));
      g.submit(`replay step ${i}`);
      // A kernel that failed to build leaves the buffers as they were: a wrong answer, not an error, unless checked.
      await rt.assertHealthy();
      cur = await rt.read(x.buffer, bytes);
      const o = maxAbs(cur, toFloat32(need(`step${i}_out`)));
      out.push({ i, t: sched.timesteps[i]!, maxAbsErr: o.err, maxAbsRef: o.ref, modelInputMaxAbsErr: mi.err, modelInputMaxAbsRef: mi.ref });
    }
    return { steps: out, timestepsMatch, timesteps: sched.timesteps, expectedTimesteps };
  } finally {
    g.destroy();
    for (const b of owned) rt.destroyBuffer(b);
  }
}

/** The eps ring ([3B, ...]) and stored sample a PLMS loop binds; their buffers go into `owned`. */
function epsHistoryTensors(rt: Runtime, shape: number[], owned: GPUBuffer[]): { eps: Tensor; sample: Tensor } {
  const n = shape.reduce((a, b) => a * b, 1);
  const make = (label: string, count: number, s: number[]): Tensor => {
    const buffer = rt.createBuffer(count * 4, label);
    owned.push(buffer);
    return { buffer, shape: s, label };
  };
  return {
    eps: make('eps-history', EPS_HISTORY_SLOTS * n, [EPS_HISTORY_SLOTS * shape[0]!, ...shape.slice(1)]),
    sample: make('stored-sample', n, shape),
  };
}

export interface PipelineReplayStep {
  i: number;
  t: number;
  /** max |ours − diffusers| over step{i}_latents. */
  maxAbsErr: number;
  maxAbsRef: number;
  /** With guided: max |ours − diffusers| over step{i}_noise_pred (the guidance combine). */
  epsMaxAbsErr: number;
  epsMaxAbsRef: number;
}

export interface PipelineReplayResult {
  steps: PipelineReplayStep[];
  timestepsMatch: boolean;
  timesteps: number[];
  expectedTimesteps: number[];
}

/**
 * The scheduler part of a text-to-image pipeline trace (pipeline.json and trace.safetensors; the
 * model folder pipeline.json names sits beside the case, with scheduler/scheduler_config.json):
 * x = latents_init, then per U-Net call the fused step gets the trace's guided noise_pred, or with
 * `guided` the trace's two U-Net halves and guidance_scale, and each result is compared with
 * step{i}_latents. The U-Net is not run: this checks the scheduler (and guidance) alone. The chain
 * runs on our own latents, so multistep state (PLMS) has to be right from call 0 on.
 */
export async function replayPipelineSchedulerTrace(rt: Runtime, dir: string, opts: { guided?: boolean } = {}): Promise<PipelineReplayResult> {
  const kase = await readJson(join(dir, 'pipeline.json'));
  const steps = kase.steps;
  if (typeof steps !== 'number' || !Number.isInteger(steps)) throw new Error(`${dir}/pipeline.json: steps must be an integer`);
  if (typeof kase.model !== 'string') throw new Error(`${dir}/pipeline.json: model must name the model folder`);
  const guidance = kase.guidance_scale;
  if (opts.guided && typeof guidance !== 'number') throw new Error(`${dir}/pipeline.json: guidance_scale must be a number`);
  const config = await readJson(join(dir, '..', kase.model, 'scheduler', 'scheduler_config.json'));
  const sched = createScheduler(config, steps, { name: schedulerNameOf(config) });
  if (sched.drawsNoise(0)) throw new SchedulerConfigError(`${dir}: the trace holds no step noise, so ${sched.name} with noise cannot be replayed`);

  const trace = await readSafetensorsFile(join(dir, 'trace.safetensors'));
  const need = (key: string): HostTensor => {
    const t = trace.get(key);
    if (!t) throw new Error(`${dir}/trace.safetensors has no tensor '${key}'`);
    return t;
  };
  const expectedTimesteps = toInt64Numbers(need('timesteps'));
  const timestepsMatch = timestepsAgree(sched.timesteps, expectedTimesteps);
  const xInit = need('latents_init');
  const shape = xInit.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  const B = shape[0]!;
  const owned: GPUBuffer[] = [];
  const tensor = (label: string, s: number[]): Tensor => {
    const buffer = rt.createBuffer(s.reduce((a, b) => a * b, 1) * 4, label);
    owned.push(buffer);
    return { buffer, shape: s, label };
  };
  const x = tensor('x', shape);
  const modelOut = tensor('model-out', opts.guided ? [2 * B, ...shape.slice(1)] : shape);
  const epsOut = opts.guided ? tensor('eps-out', shape) : undefined;
  const prevX0 = sched.usesX0History ? tensor('prev-x0', shape) : undefined;
  const epsHistory = sched.usesEpsHistory ? epsHistoryTensors(rt, shape, owned) : undefined;
  const row = rt.createBuffer(sched.rowLength * 4, 'step-row');
  owned.push(row);
  const q = rt.device.queue;
  const write = (buf: GPUBuffer, data: Float32Array) => q.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  const g = new Graph(rt, 'pipeline-scheduler-replay');
  try {
    schedulerStep(g, 'step', { x, modelOut, row, cfg: opts.guided, epsOut, prevX0, epsHistory, threshold: sched.threshold });
    g.finalize();
    write(x.buffer, toFloat32(xInit));
    const out: PipelineReplayStep[] = [];
    for (let i = 0; i < sched.timesteps.length; i++) {
      const r = sched.stepRow(i);
      if (opts.guided) {
        // The trace's batch is [uncond, cond]; the fused step takes [cond, uncond].
        const u = toFloat32(need(`step${i}_unet_out`));
        const swapped = new Float32Array(2 * n);
        swapped.set(u.subarray(n, 2 * n), 0);
        swapped.set(u.subarray(0, n), n);
        write(modelOut.buffer, swapped);
        r[StepRow.guidance] = guidance as number;
      } else {
        write(modelOut.buffer, toFloat32(need(`step${i}_noise_pred`)));
      }
      write(row, r);
      g.submit(`pipeline replay step ${i}`);
      await rt.assertHealthy();
      const lat = maxAbs(await rt.read(x.buffer, n * 4), toFloat32(need(`step${i}_latents`)));
      const e = epsOut ? maxAbs(await rt.read(epsOut.buffer, n * 4), toFloat32(need(`step${i}_noise_pred`))) : { err: 0, ref: 0 };
      out.push({ i, t: sched.timesteps[i]!, maxAbsErr: lat.err, maxAbsRef: lat.ref, epsMaxAbsErr: e.err, epsMaxAbsRef: e.ref });
    }
    return { steps: out, timestepsMatch, timesteps: sched.timesteps, expectedTimesteps };
  } finally {
    g.destroy();
    for (const b of owned) rt.destroyBuffer(b);
  }
}
