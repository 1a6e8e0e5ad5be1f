// The denoising loop every pipeline shares: classifier-free guidance as one batch [cond, uncond],
// then the VAE decode. Everything is planned once: the U-Net, the fused scheduler step (guidance
// combine inside it) and the GPU noise form one graph; each step only copies its coefficient row
// into place, records the graph and submits. Nothing is read back until the image (tracing, for
// conformance checks, is the exception and is opt-in). What differs between pipelines (class
// labels, text states) is only how the U-Net is planned: DenoiseJob.planUnet.
//
// img2img and inpainting follow diffusers' StableDiffusionImg2ImgPipeline and the 4-channel path of
// StableDiffusionInpaintPipeline: the init image's latents (a sample of the VAE posterior from its
// own noise stream, as diffusers' retrieve_latents by default, or its mean with sampleMode
// 'argmax'; times scaling_factor) are noised to timesteps[t_start] and the loop runs from there.
// Inpainting blends after every step: the known region becomes
// add_noise(init, ε, t_next) (init itself after the last step) through the mask at latent size.
// The per-step blend coefficients ride in the step row, so the step graph is still planned once.
import type { Runtime } from '../gpu/runtime.ts';
import { Graph, planGraph } from '../graph/graph.ts';
import { numel, type Tensor } from '../graph/tensor.ts';
import { maskBlend, scale } from '../kernels/elementwise.ts';
import { noiseAdd } from '../kernels/noise_add.ts';
import { gaussianNoise } from '../kernels/rng.ts';
import { guidanceRescale } from '../kernels/guidance_rescale.ts';
import { EPS_HISTORY_SLOTS, schedulerStep, StepRow } from '../kernels/scheduler_step.ts';
import type { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { createScheduler, type Scheduler, type SchedulerName } from '../schedulers/scheduler.ts';
import { addNoiseCoefficients, encodeInitLatents, img2imgStartStep, latentMask, type SampleMode } from './img2img.ts';
import { CancelledError, GpuError, PlanLimitError } from '../errors.ts';

export interface StepInfo {
  index: number;
  total: number;
  timestep: number;
  ms: number;
  /** The latents after this step [B, C, h, w], on the steps latentsEvery asks for. */
  latents?: Float32Array;
}

/** What every text-, class- or unconditional generation takes. */
export interface DenoiseOptions {
  /** Classifier-free guidance scale; above 1 the U-Net runs on [cond, uncond] as one batch. */
  guidanceScale?: number;
  /** diffusers' guidance_rescale φ in [0, 1] (default 0: off), applied to the guided prediction. */
  guidanceRescale?: number;
  steps?: number;
  scheduler?: SchedulerName;
  eta?: number;
  seed?: number;
  /** Initial latents [B, C, h, w] instead of drawing them from the seed (with initImage: the noise ε). */
  latents?: Float32Array;
  /**
   * The given latents already include init_noise_sigma (what diffusers' prepare_latents returns,
   * as the Stable Diffusion traces record it), so they are not scaled again. Default false.
   */
  latentsScaled?: boolean;
  /** img2img / inpainting source [B, C, H, W] in [-1, 1], H = W = the model's image size. */
  initImage?: Float32Array;
  /** How far to noise initImage, (0, 1] (default 0.8 as diffusers' img2img; 1 with a mask means pure noise). */
  strength?: number;
  /** How initImage becomes latents: a posterior sample from the seed (default, as diffusers) or its mean ('argmax'). */
  sampleMode?: SampleMode;
  /** Inpainting mask [B, 1, H, W], 1 = repaint (binarized at 0.5); needs initImage. */
  mask?: Float32Array;
  onStep?: (info: StepInfo) => void;
  /** Told before pipelines are compiled (see CompileEvent). */
  onCompile?: (e: CompileEvent) => void;
  /** Reads the latents back into onStep's info every N steps (and after the last), for previews. */
  latentsEvery?: number;
  signal?: AbortSignal;
  /** Reads back the guided eps and the latents after every step (slow; for checks only). */
  trace?: (i: number, eps: Float32Array, latents: Float32Array) => void;
}

/**
 * Shaders about to be compiled, before a stage's first recording: a model's first run (at a size
 * or batch not run before) compiles its pipelines before the first step, which can take seconds on
 * a GPU in a browser, and the decode compiles the few of its own after the last step.
 */
export interface CompileEvent {
  stage: 'text encoder' | 'denoising' | 'decode';
  /** Pipelines to make (all at once: Runtime.compilePending). */
  pipelines: number;
}

/** The pipelines a stage's planned graphs still need, made all at once, with onCompile told first when there are any. */
export async function compileStage(rt: Runtime, stage: CompileEvent['stage'], onCompile?: (e: CompileEvent) => void): Promise<void> {
  const pipelines = rt.pipelinesPending;
  if (pipelines > 0) onCompile?.({ stage, pipelines });
  await rt.compilePending();
}

export interface GenerationResult {
  /** [B, C, H, W] in [-1, 1] (not clamped). */
  image: Float32Array;
  imageShape: [number, number, number, number];
  latents: Float32Array;
  /** The encoded init image (scaled latents), when initImage was given. */
  initLatents?: Float32Array;
  /** The first scheduler step run (t_start; 0 without initImage). */
  startStep: number;
  stepMs: number[];
  totalMs: number;
  scheduler: Scheduler;
  /** Largest GPU memory held during this run (weights included), bytes: buffers Fresco created. */
  peakBytes: number;
}

/**
 * The conditioning side of a generation: the batch, the latent shape, and how to plan the U-Net
 * on one step's input ([cond, uncond] when guided) with the timestep at slot 0 of the step row.
 */
export interface DenoiseJob {
  batch: number;
  latentChannels: number;
  latentSize: readonly [number, number];
  vae: AutoencoderKL;
  schedulerConfig: Record<string, unknown>;
  /**
   * Values the U-Net's plan reads from the step row beside the scheduler's (ControlNet scales ×
   * keep): `width` per row, `values(i, calls)` for U-Net call i of `calls`. planUnet gets where they start.
   */
  rowExtra?: { width: number; values(i: number, calls: number): readonly number[] };
  /** `extraAt`: the step row index of rowExtra's first value. */
  planUnet(g: Graph, input: Tensor, row: GPUBuffer, extraAt: number): Tensor;
}

export async function denoise(rt: Runtime, job: DenoiseJob, opts: DenoiseOptions): Promise<GenerationResult> {
  const t0 = performance.now();
  const peakBefore = rt.resetPeak();
  const { vae } = job;
  const B = job.batch;
  const guidance = opts.guidanceScale ?? 1;
  if (!Number.isFinite(guidance) || guidance < 0) throw new Error(`guidance scale must be a finite number >= 0, got ${guidance}`);
  if ((opts.eta ?? 0) > 0 && opts.scheduler !== undefined && opts.scheduler !== 'ddim') throw new Error(`eta applies to DDIM only, not ${opts.scheduler}`);
  const cfg = guidance > 1;
  const rescale = cfg ? (opts.guidanceRescale ?? 0) : 0;
  if (!(rescale >= 0 && rescale <= 1)) throw new Error(`guidance rescale must be in [0, 1], got ${opts.guidanceRescale}`);
  const steps = opts.steps ?? 50;
  if (opts.strength !== undefined && !opts.initImage) throw new Error('strength applies to img2img only: pass initImage');
  if (opts.mask && !opts.initImage) throw new Error('a mask needs initImage (the image to inpaint)');
  if (opts.sampleMode !== undefined && !opts.initImage) throw new Error('sampleMode applies to img2img only: pass initImage');
  const strength = opts.strength ?? 0.8;
  // img2img runs timesteps[start:] (diffusers' get_timesteps slices the scheduler's own list, so
  // for PLMS, whose list repeats its second timestep, the same index lands on a different step);
  // multistep state starts over there.
  const start = opts.initImage ? img2imgStartStep(steps, strength) : 0;
  const sched = createScheduler(job.schedulerConfig, steps, { name: opts.scheduler, eta: opts.eta, start });
  // U-Net calls (and step rows): steps + 1 for PLMS, else steps.
  const calls = sched.timesteps.length;
  const [h, w] = job.latentSize;
  const latentShape = [B, job.latentChannels, h, w];
  const n = numel(latentShape);
  const masked = !!opts.mask;
  const [imageH, imageW] = [h * vae.scaleFactor, w * vae.scaleFactor];
  if (opts.initImage && opts.initImage.length !== B * vae.inChannels * imageH * imageW) {
    throw new Error(`init image has ${opts.initImage.length} values; expected [${B}, ${vae.inChannels}, ${imageH}, ${imageW}] (${imageH}x${imageW} images for ${h}x${w} latents)`);
  }
  const unetBatch = cfg ? 2 * B : B;
  const device = rt.device;

  // Step rows for the whole run, each with the guidance scale filled in. Inpainting appends the
  // blend's add_noise coefficients for t_next: [a, b] for the latents, [s·a, s·b] for the next
  // U-Net input (s = scale_model_input at t_next, which commutes with the blend).
  const extraAt = sched.rowLength + (masked ? 4 : 0);
  const extra = job.rowExtra;
  const rowLength = extraAt + (extra?.width ?? 0);
  const rowBytes = rowLength * 4;
  const table = new Float32Array(rowLength * calls);
  for (let i = start; i < calls; i++) {
    const row = sched.stepRow(i);
    // With guidance_rescale the rescaled guided prediction replaces the cond half (see
    // guidanceRescale), and the step's own combine must then leave it as it is.
    row[StepRow.guidance] = rescale ? 1 : guidance;
    table.set(row, i * rowLength);
    if (masked) {
      const [a, b] = addNoiseCoefficients(sched, i + 1);
      const s = i + 1 < calls ? sched.modelInputScale(i + 1) : 1;
      table.set([a, b, s * a, s * b], i * rowLength + sched.rowLength);
    }
    if (extra) {
      const v = extra.values(i, calls);
      if (v.length !== extra.width) throw new Error(`step row extras: ${v.length} values for a width of ${extra.width}`);
      table.set(v, i * rowLength + extraAt);
    }
  }
  const owned: GPUBuffer[] = [];
  const own = (b: GPUBuffer) => (owned.push(b), b);
  const tableBuf = own(rt.upload(table, 'step-table'));
  const rowBuf = own(rt.createBuffer(rowBytes, 'step-row'));
  const x: Tensor = { buffer: own(rt.createBuffer(n * 4, 'latents')), shape: latentShape, label: 'latents' };
  const unetIn: Tensor = { buffer: own(rt.createBuffer(n * 4 * (cfg ? 2 : 1), 'unet-in')), shape: [unetBatch, ...latentShape.slice(1)], label: 'unet-in' };

  const graphs: Graph[] = [];
  let initLatents: Tensor | undefined;
  let epsNoise: Tensor | undefined;
  let maskT: Tensor | undefined;
  let recordInit: (enc: GPUCommandEncoder) => void = () => {};
  try {
    // Initial latents: given (as diffusers' prepare_latents takes them, before init_noise_sigma),
    // or drawn on the GPU from the seed (stream 0). x = latents·init_noise_sigma; the first U-Net
    // input is scale_model_input(x, t0), once per guidance half. Later inputs come from the step.
    {
      const init = new Graph(rt, 'init');
      graphs.push(init);
      let drawn: Tensor;
      if (opts.latents) {
        if (opts.latents.length !== n) throw new Error(`initial latents have ${opts.latents.length} values, expected ${n} for shape [${latentShape.join(', ')}]`);
        drawn = { buffer: own(rt.upload(opts.latents, 'latents-init')), shape: latentShape, label: 'latents-init' };
      } else {
        drawn = gaussianNoise(init, 'init-noise', latentShape, opts.seed ?? 0, { stream: 0 });
      }
      let x0: Tensor;
      let encoded: Tensor | undefined;
      if (opts.initImage) {
        const imageShape = [B, vae.inChannels, imageH, imageW];
        const img: Tensor = { buffer: own(rt.upload(opts.initImage, 'init-image')), shape: imageShape, label: 'init-image' };
        encoded = encodeInitLatents(init, vae, img, opts.sampleMode ?? 'sample', opts.seed ?? 0);
        if (encoded.shape.join() !== latentShape.join()) throw new Error(`the VAE encodes ${imageH}x${imageW} images to [${encoded.shape.join(', ')}], not the latents [${latentShape.join(', ')}]`);
        // diffusers' inpainting starts from pure noise (times init_noise_sigma) at strength 1.
        const [a, b] = masked && strength === 1 ? [0, sched.initNoiseSigma] : addNoiseCoefficients(sched, start);
        x0 = noiseAdd(init, 'img2img-start', encoded, drawn, { sqrtAlphaBar: a, sqrtOneMinusAlphaBar: b });
      } else {
        x0 = scale(init, 'init-noise-sigma', drawn, opts.latents && opts.latentsScaled ? 1 : sched.initNoiseSigma);
      }
      const in0 = scale(init, 'scale-model-input', x0, sched.modelInputScale(start));
      init.finalize();
      // The encoded image and ε outlive this graph: the blend reads them at every step.
      if (encoded) initLatents = { buffer: own(rt.createBuffer(n * 4, 'init-latents')), shape: latentShape, label: 'init-latents' };
      if (masked) {
        epsNoise = { buffer: own(rt.createBuffer(n * 4, 'img2img-noise')), shape: latentShape, label: 'img2img-noise' };
        const m = latentMask(opts.mask!, B, imageH, imageW, h, w);
        maskT = { buffer: own(rt.upload(m, 'latent-mask')), shape: [B, 1, h, w], label: 'latent-mask' };
      }
      recordInit = (enc) => {
        init.record(enc);
        if (encoded) enc.copyBufferToBuffer(encoded.buffer, 0, initLatents!.buffer, 0, n * 4);
        if (epsNoise) enc.copyBufferToBuffer(drawn.buffer, 0, epsNoise.buffer, 0, n * 4);
        enc.copyBufferToBuffer(x0.buffer, 0, x.buffer, 0, n * 4);
        for (let h = 0; h < (cfg ? 2 : 1); h++) enc.copyBufferToBuffer(in0.buffer, 0, unetIn.buffer, h * n * 4, n * 4);
      };
    }

    // Multistep solvers (DPM-Solver++ 2M) keep the previous step's x0 on the GPU between steps, so
    // it lives outside the graph's pool (pooled buffers are rewritten by the next step's U-Net).
    const prevX0: Tensor | undefined = sched.usesX0History ? { buffer: own(rt.createBuffer(n * 4, 'prev-x0')), shape: latentShape, label: 'prev-x0' } : undefined;
    // PLMS keeps past guided outputs and a sample across steps, outside the pool for the same reason.
    const epsHistory = sched.usesEpsHistory
      ? {
          eps: { buffer: own(rt.createBuffer(EPS_HISTORY_SLOTS * n * 4, 'eps-history')), shape: [EPS_HISTORY_SLOTS * B, ...latentShape.slice(1)], label: 'eps-history' },
          sample: { buffer: own(rt.createBuffer(n * 4, 'stored-sample')), shape: latentShape, label: 'stored-sample' },
        }
      : undefined;
    const anyNoise = Array.from({ length: calls - start }, (_, i) => sched.drawsNoise(start + i)).some(Boolean);
    const { g, out: epsOut } = plan(`${imageW}x${imageH} images`, () =>
      planGraph(rt, 'denoise-step', (g) => {
        const eps = job.planUnet(g, unetIn, rowBuf, extraAt);
        if (rescale) guidanceRescale(g, 'guidance-rescale', eps, guidance, rescale);
        const noise = anyNoise ? gaussianNoise(g, 'step-noise', latentShape, opts.seed ?? 0, { stream: 1, counter: { buffer: rowBuf, index: 1 } }) : undefined;
        const epsOut = opts.trace ? g.alloc(latentShape, 'eps-trace') : undefined;
        schedulerStep(g, 'scheduler-step', { x, modelOut: eps, row: rowBuf, noise, cfg, nextInput: unetIn, epsOut, prevX0, epsHistory, threshold: sched.threshold });
        if (masked) {
          const known = noiseAdd(g, 'known-latents', initLatents!, epsNoise!, { buffer: rowBuf, index: sched.rowLength });
          maskBlend(g, 'inpaint-blend', x, known, maskT!);
          const knownIn = noiseAdd(g, 'known-input', initLatents!, epsNoise!, { buffer: rowBuf, index: sched.rowLength + 2 });
          maskBlend(g, 'inpaint-blend-input', unetIn, knownIn, maskT!);
        }
        return epsOut;
      }),
    );
    graphs.push(g);

    // Both graphs' pipelines at once (a browser compiles them in parallel), then the first recording.
    await compileStage(rt, 'denoising', opts.onCompile);
    const enc = device.createCommandEncoder({ label: 'initial latents' });
    recordInit(enc);
    rt.watch('initial latents', () => device.queue.submit([enc.finish()]));

    const stepMs = await runSteps(rt, g, { tableBuf, rowBuf, rowBytes, start, steps, sched, opts, traced: epsOut ? { eps: epsOut, x } : null, x });

    const { image, imageShape } = await decodeLatents(rt, vae, x, graphs, opts.onCompile);
    const latents = await rt.read(x.buffer, n * 4);
    const initLatentsData = initLatents ? await rt.read(initLatents.buffer, n * 4) : undefined;
    return {
      image,
      imageShape,
      latents,
      initLatents: initLatentsData,
      startStep: start,
      stepMs,
      totalMs: performance.now() - t0,
      scheduler: sched,
      peakBytes: rt.peakBytes,
    };
  } finally {
    rt.peakBytes = Math.max(rt.peakBytes, peakBefore);
    for (const gr of graphs) gr.destroy();
    for (const b of owned) rt.destroyBuffer(b);
  }
}

interface StepLoop {
  tableBuf: GPUBuffer;
  rowBuf: GPUBuffer;
  rowBytes: number;
  start: number;
  /** The steps asked for (the scheduler may make more U-Net calls). */
  steps: number;
  sched: Scheduler;
  opts: DenoiseOptions;
  /** With opts.trace: the buffers read back after every step. */
  traced: { eps: Tensor; x: Tensor } | null;
  /** The latents, for opts.latentsEvery. */
  x: Tensor;
}

/**
 * Runs steps start..end of the planned step graph, one command buffer each; returns the wall time
 * per step. The step after the one being awaited is already submitted (the queue runs them in
 * order, and each copies its own row of the step table first), so the GPU never idles while the
 * loop awaits, reports progress and encodes; only a step whose results are read back (tracing,
 * latentsEvery) is awaited alone, since a copy queued after the next step would read that one's.
 */
async function runSteps(rt: Runtime, g: Graph, l: StepLoop): Promise<number[]> {
  const { device } = rt;
  const steps = l.sched.timesteps.length;
  // PLMS makes one U-Net call more than the steps asked for (its first step is taken twice): the
  // first call's time goes into the next event, so progress counts the steps the user asked for.
  const extra = Math.max(0, steps - l.steps);
  const events = steps - l.start - extra;
  const every = l.opts.latentsEvery ?? 0;
  const sendsLatents = (i: number) => {
    const k = i - l.start;
    return !!l.opts.onStep && every > 0 && k >= extra && ((k - extra + 1) % every === 0 || i + 1 === steps);
  };
  const readsBack = (i: number) => !!l.traced || sendsLatents(i);
  const done = new Map<number, Promise<void>>();
  let next = l.start;
  const submitNext = () => {
    if (l.opts.signal?.aborted) throw new CancelledError();
    const i = next++;
    const enc = device.createCommandEncoder({ label: `step ${i}` });
    enc.copyBufferToBuffer(l.tableBuf, i * l.rowBytes, l.rowBuf, 0, l.rowBytes);
    g.record(enc);
    rt.watch(`denoising step ${i}`, () => device.queue.submit([enc.finish()]));
    const p = rt.queueDone();
    // Awaited in order below, or by the finally; a loss meanwhile must not surface as unhandled.
    p.catch(() => undefined);
    done.set(i, p);
  };
  // The folded calls' time, and the timestep their step starts from (PLMS: d0 of d0 → d1).
  let carriedMs = 0;
  const firstT = l.sched.timesteps[l.start]!;
  const stepMs: number[] = [];
  let last = performance.now();
  try {
    for (let i = l.start; i < steps; i++) {
      const k = i - l.start;
      // A step already submitted ahead still runs, but nothing after a cancel is reported.
      if (l.opts.signal?.aborted) throw new CancelledError();
      if (next === i) submitNext();
      // The first step surfaces any compile or validation problem before the loop goes on.
      if (k === 0) await rt.assertHealthy();
      if (next === i + 1 && next < steps && !readsBack(i)) submitNext();
      await done.get(i);
      done.delete(i);
      if (l.traced) {
        const e = await rt.read(l.traced.eps.buffer, numel(l.traced.eps.shape) * 4);
        const x = await rt.read(l.traced.x.buffer, numel(l.traced.x.shape) * 4);
        l.opts.trace!(k, e, x);
      }
      const now = performance.now();
      stepMs.push(now - last);
      last = now;
      if (k < extra) {
        carriedMs += stepMs[k]!;
        continue;
      }
      const latents = sendsLatents(i) ? await rt.read(l.x.buffer, numel(l.x.shape) * 4) : undefined;
      l.opts.onStep?.({ index: k - extra, total: events, timestep: k === extra ? firstT : l.sched.timesteps[i]!, ms: carriedMs + stepMs[k]!, ...(latents ? { latents } : {}) });
      carriedMs = 0;
      // Nothing ran ahead of a step read back: the next step's time starts once it is submitted,
      // not with the read and the callback.
      if (readsBack(i)) last = performance.now();
    }
  } finally {
    // A step submitted ahead of a cancel or an error still runs: wait for it, so the caller's
    // buffers are not destroyed under it.
    await Promise.allSettled(done.values());
  }
  return stepMs;
}

/** vae.decode(latents / scaling_factor), read back and checked for NaN/Inf. */
async function decodeLatents(rt: Runtime, vae: AutoencoderKL, x: Tensor, graphs: Graph[], onCompile?: (e: CompileEvent) => void): Promise<{ image: Float32Array; imageShape: [number, number, number, number] }> {
  const [, , h, w] = x.shape as [number, number, number, number];
  const { g: d, out } = plan(`${w * vae.scaleFactor}x${h * vae.scaleFactor} images`, () =>
    planGraph(rt, 'decode', (d) => vae.decode(d, scale(d, 'unscale-latents', x, 1 / vae.scalingFactor))),
  );
  graphs.push(d);
  await compileStage(rt, 'decode', onCompile);
  d.submit('decode');
  await rt.assertHealthy();
  const image = await rt.read(out.buffer, numel(out.shape) * 4);
  if (image.some((v) => !Number.isFinite(v))) throw new GpuError('the decoded image contains NaN or Inf values');
  return { image, imageShape: out.shape as [number, number, number, number] };
}

/** Runs a planning step, naming the image size when its tensors pass even the device's limits. */
function plan<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PlanLimitError) throw new PlanLimitError(`${what} are too large for this model on this adapter: ${e.message}`);
    throw e;
  }
}
