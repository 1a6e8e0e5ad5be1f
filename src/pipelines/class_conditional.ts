// Class-conditional latent diffusion: the denoising loop with classifier-free guidance as one
// batch [cond, uncond], then the VAE decode. Everything is planned once: the U-Net, the fused
// scheduler step (guidance combine inside it) and the GPU noise form one graph; each step only
// copies its coefficient row into place, records the graph and submits. Nothing is read back
// until the image (tracing, for conformance checks, is the exception and is opt-in).
import type { Runtime } from '../gpu/runtime.ts';
import { GpuError } from '../gpu/runtime.ts';
import { Graph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { scale } from '../kernels/elementwise.ts';
import { gaussianNoise } from '../kernels/rng.ts';
import { schedulerStep, StepRow } from '../kernels/scheduler_step.ts';
import { createScheduler, type Scheduler, type SchedulerName } from '../schedulers/scheduler.ts';
import type { LdmModel } from './ldm_folder.ts';

export class CancelledError extends Error {
  constructor() {
    super('generation cancelled');
    this.name = 'CancelledError';
  }
}

export interface StepInfo {
  index: number;
  total: number;
  timestep: number;
  ms: number;
}

export interface ClassConditionalOptions {
  classLabels: number[];
  /** Label of the unconditional half of classifier-free guidance. */
  nullClass?: number;
  guidanceScale?: number;
  steps?: number;
  scheduler?: SchedulerName;
  eta?: number;
  seed?: number;
  /** Initial latents [B, C, h, w] instead of drawing them from the seed. */
  latents?: Float32Array;
  onStep?: (info: StepInfo) => void;
  signal?: AbortSignal;
  /** Reads back the guided eps and the latents after every step (slow; for checks only). */
  trace?: (i: number, eps: Float32Array, latents: Float32Array) => void;
}

export interface GenerationResult {
  /** [B, C, H, W] in [-1, 1] (not clamped). */
  image: Float32Array;
  imageShape: [number, number, number, number];
  latents: Float32Array;
  stepMs: number[];
  totalMs: number;
  scheduler: Scheduler;
}

export async function generateClassConditional(rt: Runtime, model: LdmModel, opts: ClassConditionalOptions): Promise<GenerationResult> {
  const t0 = performance.now();
  const { unet, vae } = model;
  const B = opts.classLabels.length;
  if (B === 0) throw new Error('at least one class label is needed');
  const numClasses = unet.numClasses;
  if (numClasses === null) throw new Error('this U-Net is not class-conditional (num_class_embeds is not set)');
  const guidance = opts.guidanceScale ?? 1;
  if (!Number.isFinite(guidance) || guidance < 0) throw new Error(`guidance scale must be a finite number >= 0, got ${guidance}`);
  if ((opts.eta ?? 0) > 0 && opts.scheduler !== undefined && opts.scheduler !== 'ddim') throw new Error(`eta applies to DDIM only, not ${opts.scheduler}`);
  const cfg = guidance > 1;
  const nullClass = opts.nullClass ?? numClasses - 1;
  for (const l of [...opts.classLabels, ...(cfg ? [nullClass] : [])]) {
    if (!Number.isInteger(l) || l < 0 || l >= numClasses) throw new Error(`class label ${l} is out of range: this model has ${numClasses} class embeddings (0..${numClasses - 1})`);
  }
  const steps = opts.steps ?? 50;
  const sched = createScheduler(model.schedulerConfig, steps, { name: opts.scheduler, eta: opts.eta });
  const size = unet.sampleSize;
  const latentShape = [B, unet.inChannels, size, size];
  const n = numel(latentShape);
  const unetBatch = cfg ? 2 * B : B;
  const device = rt.device;

  // Step rows for the whole run, each with the guidance scale filled in.
  const rowBytes = sched.rowLength * 4;
  const table = new Float32Array(sched.rowLength * steps);
  for (let i = 0; i < steps; i++) {
    const row = sched.stepRow(i);
    row[StepRow.guidance] = guidance;
    table.set(row, i * sched.rowLength);
  }
  const owned: GPUBuffer[] = [];
  const own = (b: GPUBuffer) => (owned.push(b), b);
  const tableBuf = own(rt.upload(table, 'step-table'));
  const rowBuf = own(rt.createBuffer(rowBytes, 'step-row'));
  const labels = new Uint32Array(unetBatch);
  opts.classLabels.forEach((l, i) => {
    labels[i] = l;
    if (cfg) labels[B + i] = nullClass;
  });
  const labelT: Tensor = { buffer: own(rt.upload(labels, 'class-labels')), shape: [unetBatch], label: 'class-labels' };
  const x: Tensor = { buffer: own(rt.createBuffer(n * 4, 'latents')), shape: latentShape, label: 'latents' };
  const unetIn: Tensor = { buffer: own(rt.createBuffer(n * 4 * (cfg ? 2 : 1), 'unet-in')), shape: [unetBatch, ...latentShape.slice(1)], label: 'unet-in' };

  const graphs: Graph[] = [];
  try {
    // Initial latents: given (as diffusers' prepare_latents takes them, before init_noise_sigma),
    // or drawn on the GPU from the seed (stream 0). x = latents·init_noise_sigma; the first U-Net
    // input is scale_model_input(x, t0), once per guidance half. Later inputs come from the step.
    {
      const init = new Graph(rt, 'init');
      graphs.push(init);
      let start: Tensor;
      if (opts.latents) {
        if (opts.latents.length !== n) throw new Error(`initial latents have ${opts.latents.length} values, expected ${n} for shape [${latentShape.join(', ')}]`);
        start = { buffer: own(rt.upload(opts.latents, 'latents-init')), shape: latentShape, label: 'latents-init' };
      } else {
        start = gaussianNoise(init, 'init-noise', latentShape, opts.seed ?? 0, { stream: 0 });
      }
      const x0 = scale(init, 'init-noise-sigma', start, sched.initNoiseSigma);
      const in0 = scale(init, 'scale-model-input', x0, sched.modelInputScale(0));
      init.finalize();
      const enc = device.createCommandEncoder();
      init.record(enc);
      enc.copyBufferToBuffer(x0.buffer, 0, x.buffer, 0, n * 4);
      for (let h = 0; h < (cfg ? 2 : 1); h++) enc.copyBufferToBuffer(in0.buffer, 0, unetIn.buffer, h * n * 4, n * 4);
      rt.watch('initial latents', () => device.queue.submit([enc.finish()]));
    }

    const g = new Graph(rt, 'denoise-step');
    graphs.push(g);
    const eps = unet.forward(g, unetIn, { timesteps: rowBuf, broadcast: true, classLabels: labelT });
    const anyNoise = Array.from({ length: steps }, (_, i) => sched.drawsNoise(i)).some(Boolean);
    const noise = anyNoise ? gaussianNoise(g, 'step-noise', latentShape, opts.seed ?? 0, { stream: 1, counter: { buffer: rowBuf, index: 1 } }) : undefined;
    const epsOut = opts.trace ? g.alloc(latentShape, 'eps-trace') : undefined;
    schedulerStep(g, 'scheduler-step', { x, modelOut: eps, row: rowBuf, noise, cfg, nextInput: unetIn, epsOut });
    g.finalize();

    const stepMs: number[] = [];
    for (let i = 0; i < steps; i++) {
      if (opts.signal?.aborted) throw new CancelledError();
      const ts = performance.now();
      const enc = device.createCommandEncoder({ label: `step ${i}` });
      enc.copyBufferToBuffer(tableBuf, i * rowBytes, rowBuf, 0, rowBytes);
      g.record(enc);
      rt.watch(`denoising step ${i}`, () => device.queue.submit([enc.finish()]));
      // The first step surfaces any compile or validation problem before the loop goes on.
      if (i === 0) await rt.assertHealthy();
      if (opts.trace) {
        const e = await rt.read(epsOut!.buffer, n * 4);
        const l = await rt.read(x.buffer, n * 4);
        opts.trace(i, e, l);
      } else {
        await Promise.race([device.queue.onSubmittedWorkDone(), rt.gpu.lost.then((m) => Promise.reject(new GpuError(m)))]);
      }
      stepMs.push(performance.now() - ts);
      opts.onStep?.({ index: i, total: steps, timestep: sched.timesteps[i]!, ms: stepMs[i]! });
    }

    const d = new Graph(rt, 'decode');
    graphs.push(d);
    const z = scale(d, 'unscale-latents', x, 1 / vae.scalingFactor);
    const image = vae.decode(d, z);
    d.finalize();
    const enc = device.createCommandEncoder({ label: 'decode' });
    d.record(enc);
    rt.watch('decode', () => device.queue.submit([enc.finish()]));
    await rt.assertHealthy();
    const imageData = await rt.read(image.buffer, numel(image.shape) * 4);
    const latents = await rt.read(x.buffer, n * 4);
    if (imageData.some((v) => !Number.isFinite(v))) throw new GpuError('the decoded image contains NaN or Inf values');
    return {
      image: imageData,
      imageShape: image.shape as [number, number, number, number],
      latents,
      stepMs,
      totalMs: performance.now() - t0,
      scheduler: sched,
    };
  } finally {
    for (const gr of graphs) gr.destroy();
    for (const b of owned) rt.destroyBuffer(b);
  }
}
