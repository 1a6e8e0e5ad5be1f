// The end-to-end bench of a class-conditional model, for Node (bench/generate.ts) and the browser
// page (bench/browser/main.ts) alike: the cold first run, warm generations, the U-Net step at batch
// B and at the guidance batch 2B, per-kernel GPU times of the step, the VAE decode and peak GPU
// memory. The caller supplies the device, the model loader and what it knows about the host.
import type { GpuContext } from '../../src/gpu/device.ts';
import { profileGraph, summarizeByKind, type GraphProfile, type KindTiming } from '../../src/gpu/profiler.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { scale } from '../../src/kernels/elementwise.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import type { LdmModel } from '../../src/pipelines/ldm_folder.ts';
import { randn } from '../../tests/helpers/gpu.ts';
import { done, summarize, timeGraph, type Timing } from './time_graph.ts';

export interface GenerateBenchOptions {
  steps: number;
  batch: number;
  repeat: number;
  genRepeat: number;
  guidance: number;
  classLabel: number;
  seed: number;
  /** Submits per-kernel times are the median of (0 skips the per-kernel profile). */
  profileRuns: number;
}

export interface GenerateBenchEnv {
  rt: Runtime;
  gpu: GpuContext;
  /** Time to get the device, reported beside (not inside) the first run. */
  deviceMs: number;
  /** Reads the weights and uploads them: part of the cold first run. */
  load(): Promise<LdmModel>;
  model: string;
  card: { class_names?: string[]; null_class?: number };
  /** Where it ran ("Node v20 (Dawn)", "Chromium 131 (headless)"), for the table's first line. */
  runtimeName: string;
  log(msg: string): void;
}

/** One row of the kernel table: a kind of kernel and its part of the profiled U-Net step. */
export interface KernelRow {
  name: string;
  ops: number;
  ms: number;
  share: number;
  gflops: number | null;
  gbps: number | null;
}

export type KernelProfile =
  | { batch: number; totalMs: number; onePassGpuMs: number | null; ops: number; timestampGranularityNs: number; topOps: Record<string, unknown>[] }
  | { skipped: string };

const warmup = 2;

export async function runGenerateBench(env: GenerateBenchEnv, o: GenerateBenchOptions) {
  const { rt, gpu, log } = env;
  const t0 = performance.now();
  const model = await env.load();
  await done(rt);
  const loadMs = performance.now() - t0;
  const weightBytes = rt.liveBytes;
  const nullClass = env.card.null_class ?? (model.unet.numClasses ?? 1) - 1;
  const className = env.card.class_names?.[o.classLabel] ?? String(o.classLabel);
  const genOpts = { classLabels: new Array<number>(o.batch).fill(o.classLabel), nullClass, guidanceScale: o.guidance, steps: o.steps, scheduler: 'ddim' as const, seed: o.seed };
  const t1 = performance.now();
  const first = await generateClassConditional(rt, model, genOpts);
  const firstGenMs = performance.now() - t1;
  const firstRunMs = loadMs + firstGenMs;
  const pipelinesCompiled = rt.kernelsCompiled;
  log(`first run: ${firstRunMs.toFixed(0)} ms (load ${loadMs.toFixed(0)} ms, generation ${firstGenMs.toFixed(0)} ms, ${pipelinesCompiled} pipelines)`);

  const genMs: number[] = [];
  for (let r = 0; r < o.genRepeat; r++) {
    const t = performance.now();
    await generateClassConditional(rt, model, genOpts);
    genMs.push(performance.now() - t);
    log(`generation ${r + 1}/${o.genRepeat}: ${genMs[r]!.toFixed(0)} ms`);
  }
  const generation = summarize(genMs, []);
  // What a generation needs, before the bench's own graphs below add to the tally.
  const peakBytes = rt.peakBytes;

  const { unet, vae } = model;
  const size = unet.sampleSize;
  const cfg = o.guidance > 1;
  const hasTimestamps = gpu.features.has('timestamp-query');
  let profile: GraphProfile | null = null;
  const unetStep = async (B: number, withCfg: boolean, profiled: boolean): Promise<Timing> => {
    const shape = [B, unet.inChannels, size, size];
    const input = { buffer: rt.upload(randn(B * unet.inChannels * size * size, 11), 'unet-in'), shape, label: 'unet-in' };
    const tBuf = rt.upload(new Float32Array([500]), 'timestep');
    // The pipeline's guidance batch: the class label for the first half, the null class for the second.
    const ls = Uint32Array.from({ length: B }, (_, i) => (withCfg && i >= B / 2 ? nullClass : o.classLabel));
    const labelT = { buffer: rt.upload(ls, 'class-labels'), shape: [B], label: 'class-labels' };
    const g = new Graph(rt, `unet-b${B}`);
    try {
      unet.forward(g, input, { timesteps: tBuf, broadcast: true, classLabels: labelT });
      g.finalize();
      const t = await timeGraph(rt, g, o.repeat, warmup);
      log(`U-Net step batch ${B}: median ${t.medianMs.toFixed(1)} ms`);
      if (profiled && hasTimestamps && o.profileRuns > 0) profile = await profileGraph(rt, g, o.profileRuns);
      return t;
    } finally {
      g.destroy();
      for (const b of [input.buffer, tBuf, labelT.buffer]) rt.destroyBuffer(b);
    }
  };
  // The profile is of the batch the generation runs: the guidance batch when guidance is on.
  const unetStepMs = { batch1: await unetStep(o.batch, false, !cfg), cfgBatch2: await unetStep(2 * o.batch, true, cfg) };

  const latentShape = [o.batch, vae.latentChannels, size, size];
  const latents = { buffer: rt.upload(first.latents, 'latents'), shape: latentShape, label: 'latents' };
  const dg = new Graph(rt, 'decode');
  let decodeMs: Timing;
  try {
    const z = scale(dg, 'unscale-latents', latents, 1 / vae.scalingFactor);
    vae.decode(dg, z);
    dg.finalize();
    decodeMs = await timeGraph(rt, dg, o.repeat, warmup);
  } finally {
    dg.destroy();
    rt.destroyBuffer(latents.buffer);
    model.destroy();
  }

  const p = profile as GraphProfile | null;
  const kinds: KindTiming[] = p ? summarizeByKind(p) : [];
  const kernels: KernelRow[] = kinds.map((k) => ({ name: k.kind, ops: k.ops, ms: k.ms, share: k.share, gflops: k.gflops, gbps: k.gbps }));
  const topOps = p ? [...p.ops].sort((a, b) => b.ms - a.ms).slice(0, 10) : [];
  const profiledBatch = cfg ? 2 * o.batch : o.batch;
  const config = {
    model: env.model,
    scheduler: 'ddim',
    steps: o.steps,
    guidance: o.guidance,
    batch: o.batch,
    classLabel: o.classLabel,
    className,
    nullClass,
    seed: o.seed,
    latentShape,
    imageShape: first.imageShape,
    unetBatches: [o.batch, 2 * o.batch],
    profiledBatch,
    warmup,
    repeat: o.repeat,
    genRepeat: o.genRepeat,
    profileRuns: o.profileRuns,
    timestampQuery: hasTimestamps,
  };
  const result = {
    adapter: gpu.adapterName,
    runtime: env.runtimeName,
    date: new Date().toISOString(),
    config,
    kernels,
    kernelProfile: (p
      ? {
          batch: profiledBatch,
          totalMs: p.totalMs,
          onePassGpuMs: (cfg ? unetStepMs.cfgBatch2 : unetStepMs.batch1).gpuMedianMs,
          ops: p.ops.length,
          timestampGranularityNs: p.granularityNs,
          topOps: topOps.map((t) => ({ label: t.label, kind: t.kind, ms: t.ms, ...t.cost })),
        }
      : { skipped: hasTimestamps ? 'profileRuns is 0' : `no 'timestamp-query' on this adapter` }) as KernelProfile,
    unetStepMs,
    generationMs: generation,
    firstRunMs,
    firstRun: { deviceMs: env.deviceMs, loadMs, generationMs: firstGenMs, pipelinesCompiled },
    decodeMs,
    peakBytes,
    weightBytes,
    ortUnetStepMs: null as number | null,
    ortSource: null as string | null,
  };
  return result;
}

export type GenerateBenchResult = Awaited<ReturnType<typeof runGenerateBench>>;

const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v >= 100 ? 0 : v >= 1 ? 1 : 3)} ms`);
const rate = (v: number | null) => (v === null ? '–' : v.toFixed(v >= 10 ? 1 : v >= 0.1 ? 2 : 4));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const timing = (t: Timing) => `${ms(t.medianMs)} median, ${ms(t.minMs)} min (n=${t.runs})${t.gpuMedianMs !== null ? `; GPU ${ms(t.gpuMedianMs)} median, ${ms(t.gpuMinMs!)} min` : ''}`;

/** The markdown the bench prints and the README shows. `hostLine` names the machine. */
export function markdown(r: GenerateBenchResult, hostLine: string): string {
  const c = r.config;
  const day = r.date.slice(0, 10);
  const cfgNote = c.guidance > 1 ? `guidance ${c.guidance}` : 'no guidance';
  const lines = [
    `**${r.adapter}** — ${day}, ${r.runtime}, ${hostLine}`,
    '',
    `Model \`${c.model}\` (U-Net on [${c.latentShape.join('×')}] latents, VAE to [${c.imageShape.join('×')}]); ` +
      `${c.steps} DDIM steps, ${cfgNote}, batch ${c.batch} (class ${c.classLabel} ${c.className}, null class ${c.nullClass}), seed ${c.seed}; ` +
      `graph timings over ${c.repeat} run(s) after ${c.warmup} warm-ups, generation over ${c.genRepeat} warm run(s); ` +
      `GPU timestamps: ${c.timestampQuery ? 'yes' : 'not available (wall time only, no per-kernel profile)'}.`,
    '',
    '| metric | value |',
    '|---|---|',
    `| first run, cold (model load + pipeline compilation + first generation) | ${ms(r.firstRunMs)} (load ${ms(r.firstRun.loadMs)}, generation ${ms(r.firstRun.generationMs)}, ${r.firstRun.pipelinesCompiled} pipelines compiled; device setup ${ms(r.firstRun.deviceMs)} not included) |`,
    `| U-Net step, batch ${c.batch} (no guidance) | ${timing(r.unetStepMs.batch1)} |`,
    `| U-Net step, batch ${2 * c.batch} (guidance: [cond, uncond]) | ${timing(r.unetStepMs.cfgBatch2)} |`,
    `| U-Net step, onnxruntime-web (bench/ort) | ${r.ortUnetStepMs !== null ? `${ms(r.ortUnetStepMs)} (${r.ortSource})` : 'not measured'} |`,
    `| generation, ${c.steps} DDIM steps, ${cfgNote}, batch ${c.batch}, warm | ${timing(r.generationMs)} |`,
    `| VAE decode, batch ${c.batch} | ${timing(r.decodeMs)} |`,
    `| peak GPU memory tracked (weights ${mib(r.weightBytes)}) | ${mib(r.peakBytes)} |`,
  ];
  const kp = r.kernelProfile;
  if ('totalMs' in kp) {
    const q = kp.timestampGranularityNs >= 1000 ? `timestamps quantized to ${(kp.timestampGranularityNs / 1000).toFixed(1)} µs` : 'exact timestamps';
    lines.push(
      '',
      `Per-kernel GPU time of one U-Net step at batch ${kp.batch} (${kp.ops} dispatches, each in its own timed pass, median of ${c.profileRuns} runs; ` +
        `sum ${ms(kp.totalMs)} vs ${kp.onePassGpuMs !== null ? ms(kp.onePassGpuMs) : '?'} as one pass; ${q}). GFLOP/s and GB/s come from each dispatch's cost estimate.`,
      '',
      '| kernel | dispatches | time | share of step | GFLOP/s | GB/s |',
      '|---|---:|---:|---:|---:|---:|',
      ...r.kernels.map((k) => `| ${k.name} | ${k.ops} | ${ms(k.ms)} | ${(100 * k.share).toFixed(1)}% | ${rate(k.gflops)} | ${rate(k.gbps)} |`),
    );
  } else {
    lines.push('', `Per-kernel GPU time: skipped (${kp.skipped}).`);
  }
  return lines.join('\n');
}

/** A file-name-safe form of the adapter name: whole words up to ~60 characters. */
export function adapterSlug(adapter: string): string {
  let slug = '';
  for (const w of adapter.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean)) {
    if (slug && slug.length + 1 + w.length > 60) break;
    slug = slug ? `${slug}-${w}` : w;
  }
  return slug || 'adapter';
}

/** Microseconds are the most any of these timers resolve. */
export const roundJson = (_: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v);

/** The U-Net step of the onnxruntime-web comparison (bench/ort writes it); null where its file has none. */
export function ortStepMs(json: unknown): number | null {
  const j = json as Record<string, unknown> | null;
  const v = (j?.ortUnetStepMs ?? j?.unetStepMs) as unknown;
  if (typeof v === 'number') return v;
  const o = v as { medianMs?: unknown; batch1?: { medianMs?: unknown } } | null;
  if (typeof o?.medianMs === 'number') return o.medianMs;
  if (typeof o?.batch1?.medianMs === 'number') return o.batch1.medianMs;
  return null;
}
