// End-to-end timings of the shipped model on whatever adapter is there: the cold first run, the
// U-Net step (batch B alone and the guidance batch 2B = [cond, uncond]), a warm generation, the
// VAE decode and the peak GPU memory the runtime tracked. Prints a markdown table and writes
// bench/results/<adapter>-<date>.json. Nothing here expects a speed: it runs on any adapter.
//   node scripts/bundle-shaders.mjs && npx tsx bench/generate.ts [--steps 25] [--batch 1] [--repeat 10]
//   (or: npm run bench -- [options]; more: --gen-repeat N, --guidance G, --class N, --model DIR)
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { GpuError, Runtime } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/graph.ts';
import { readJson } from '../src/io/model_folder.ts';
import { scale } from '../src/kernels/elementwise.ts';
import { generateClassConditional } from '../src/pipelines/class_conditional.ts';
import { loadLdmFolder } from '../src/pipelines/ldm_folder.ts';
import { randn } from '../tests/helpers/gpu.ts';

// A cold first run must compile every shader. Mesa drivers (lavapipe, RADV, ANV) keep compiled
// shaders on disk across processes, which would make a second launch "cold" in name only. The
// driver reads this when the device is created, so setting it before getGpu() is enough.
const driverCacheNote = process.env.MESA_SHADER_CACHE_DISABLE === undefined ? 'disabled (MESA_SHADER_CACHE_DISABLE)' : `MESA_SHADER_CACHE_DISABLE=${process.env.MESA_SHADER_CACHE_DISABLE}`;
process.env.MESA_SHADER_CACHE_DISABLE ??= 'true';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number, got ${JSON.stringify(process.argv[i + 1])}`);
  return v;
}
const modelArg = process.argv.indexOf('--model');
const modelDir = modelArg >= 0 ? resolve(process.argv[modelArg + 1]!) : join(root, 'weights/fashion-ldm');
const steps = option('steps', 25);
const batch = option('batch', 1);
const repeat = option('repeat', 10);
const genRepeat = option('gen-repeat', 3);
const guidance = option('guidance', 3);
const classLabel = option('class', 7);
const seed = option('seed', 3);
const warmup = 2;
for (const [k, v] of Object.entries({ steps, batch, repeat, 'gen-repeat': genRepeat })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
}

interface Timing {
  medianMs: number;
  minMs: number;
  runs: number;
  /** Median GPU time of the pass from timestamp queries; null without 'timestamp-query'. */
  gpuMedianMs: number | null;
  gpuMinMs: number | null;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function summarize(wall: number[], gpu: number[]): Timing {
  return {
    medianMs: median(wall),
    minMs: Math.min(...wall),
    runs: wall.length,
    gpuMedianMs: gpu.length ? median(gpu) : null,
    gpuMinMs: gpu.length ? Math.min(...gpu) : null,
  };
}

async function done(rt: Runtime): Promise<void> {
  await Promise.race([rt.device.queue.onSubmittedWorkDone(), rt.gpu.lost.then((m) => Promise.reject(new GpuError(m)))]);
}

/** Times `repeat` submits of one recorded graph after `warmup` untimed ones. */
async function timeGraph(rt: Runtime, g: Graph): Promise<Timing> {
  const device = rt.device;
  // Timestamps bracket the one compute pass, so they leave out submit and wake-up latency.
  const ts = rt.gpu.features.has('timestamp-query')
    ? {
        set: device.createQuerySet({ type: 'timestamp', count: 2 }),
        resolve: device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }),
        read: device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      }
    : null;
  const wall: number[] = [];
  const gpu: number[] = [];
  try {
    for (let r = 0; r < warmup + repeat; r++) {
      const t0 = performance.now();
      const enc = device.createCommandEncoder({ label: g.label });
      const pass = enc.beginComputePass({ label: g.label, timestampWrites: ts ? { querySet: ts.set, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } : undefined });
      g.encode(pass);
      pass.end();
      if (ts) {
        enc.resolveQuerySet(ts.set, 0, 2, ts.resolve, 0);
        enc.copyBufferToBuffer(ts.resolve, 0, ts.read, 0, 16);
      }
      device.queue.submit([enc.finish()]);
      await done(rt);
      const ms = performance.now() - t0;
      if (r < warmup) continue;
      wall.push(ms);
      if (ts) {
        await ts.read.mapAsync(GPUMapMode.READ);
        const [begin, end] = new BigUint64Array(ts.read.getMappedRange().slice(0));
        ts.read.unmap();
        // Some drivers leave both stamps at 0 (or quantize them away); such runs carry no GPU time.
        if (end! > begin!) gpu.push(Number(end! - begin!) / 1e6);
      }
    }
  } finally {
    ts?.set.destroy();
    ts?.resolve.destroy();
    ts?.read.destroy();
  }
  return summarize(wall, gpu);
}

function uploadTensor(rt: Runtime, data: Float32Array | Uint32Array, shape: number[], label: string) {
  return { buffer: rt.upload(data, label), shape, label };
}

// The model card, as the CLI reads it: class names and the label of the unconditional half.
const cardPath = join(modelDir, 'fresco.json');
const card = (existsSync(cardPath) ? await readJson(cardPath) : {}) as { class_names?: string[]; null_class?: number };
const className = card.class_names?.[classLabel] ?? String(classLabel);

const tStart = performance.now();
const gpuCtx = await getGpu();
const deviceMs = performance.now() - tStart;
const rt = new Runtime(gpuCtx);
const adapter = gpuCtx.adapterName;
console.error(`adapter: ${adapter}`);

// Cold: weights from disk to GPU, then a generation that compiles every pipeline it meets.
const t0 = performance.now();
const model = await loadLdmFolder(rt, modelDir);
await done(rt);
const loadMs = performance.now() - t0;
const weightBytes = rt.liveBytes;
const nullClass = card.null_class ?? (model.unet.numClasses ?? 1) - 1;
const labels = new Array<number>(batch).fill(classLabel);
const genOpts = { classLabels: labels, nullClass, guidanceScale: guidance, steps, scheduler: 'ddim' as const, seed };
const t1 = performance.now();
const first = await generateClassConditional(rt, model, genOpts);
const firstGenMs = performance.now() - t1;
const firstRunMs = loadMs + firstGenMs;
const pipelinesCompiled = rt.kernelsCompiled;
console.error(`first run: ${firstRunMs.toFixed(0)} ms (load ${loadMs.toFixed(0)} ms, generation ${firstGenMs.toFixed(0)} ms, ${pipelinesCompiled} pipelines)`);

const genMs: number[] = [];
for (let r = 0; r < genRepeat; r++) {
  const t = performance.now();
  await generateClassConditional(rt, model, genOpts);
  genMs.push(performance.now() - t);
  console.error(`generation ${r + 1}/${genRepeat}: ${genMs[r]!.toFixed(0)} ms`);
}
const generation = summarize(genMs, []);
// What a generation needs, before the bench's own graphs below add to the tally.
const peakBytes = rt.peakBytes;

const { unet, vae } = model;
const size = unet.sampleSize;
const unetStep = async (B: number, withCfg: boolean): Promise<Timing> => {
  const shape = [B, unet.inChannels, size, size];
  const input = uploadTensor(rt, randn(B * unet.inChannels * size * size, 11), shape, 'unet-in');
  const tBuf = rt.upload(new Float32Array([500]), 'timestep');
  // The pipeline's CFG batch: the class label for the first half, the null class for the second.
  const ls = Uint32Array.from({ length: B }, (_, i) => (withCfg && i >= B / 2 ? nullClass : classLabel));
  const labelT = uploadTensor(rt, ls, [B], 'class-labels');
  const g = new Graph(rt, `unet-b${B}`);
  try {
    unet.forward(g, input, { timesteps: tBuf, broadcast: true, classLabels: labelT });
    g.finalize();
    const t = await timeGraph(rt, g);
    console.error(`U-Net step batch ${B}: median ${t.medianMs.toFixed(1)} ms`);
    return t;
  } finally {
    g.destroy();
    for (const b of [input.buffer, tBuf, labelT.buffer]) rt.destroyBuffer(b);
  }
};
const unetStepMs = { batch1: await unetStep(batch, false), cfgBatch2: await unetStep(2 * batch, true) };

const latentShape = [batch, vae.latentChannels, size, size];
const latents = uploadTensor(rt, first.latents, latentShape, 'latents');
const dg = new Graph(rt, 'decode');
let decodeMs: Timing;
try {
  const z = scale(dg, 'unscale-latents', latents, 1 / vae.scalingFactor);
  vae.decode(dg, z);
  dg.finalize();
  decodeMs = await timeGraph(rt, dg);
} finally {
  dg.destroy();
  rt.destroyBuffer(latents.buffer);
  model.destroy();
}

const now = new Date();
const day = now.toISOString().slice(0, 10);
const config = {
  model: relative(root, modelDir) || modelDir,
  scheduler: 'ddim',
  steps,
  guidance,
  batch,
  classLabel,
  className,
  nullClass,
  seed,
  latentShape,
  imageShape: first.imageShape,
  unetBatches: [batch, 2 * batch],
  warmup,
  repeat,
  genRepeat,
  timestampQuery: gpuCtx.features.has('timestamp-query'),
  driverShaderCache: driverCacheNote,
  host: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, platform: `${process.platform}-${process.arch}` },
};
const result = {
  adapter,
  date: now.toISOString(),
  node: process.version,
  config,
  unetStepMs,
  generationMs: generation,
  firstRunMs,
  firstRun: { deviceMs, loadMs, generationMs: firstGenMs, pipelinesCompiled },
  decodeMs,
  peakBytes,
  weightBytes,
};

const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v >= 100 ? 0 : 1)} ms`);
const timing = (t: Timing) => `${ms(t.medianMs)} median, ${ms(t.minMs)} min (n=${t.runs})${t.gpuMedianMs !== null ? `; GPU ${ms(t.gpuMedianMs)} median, ${ms(t.gpuMinMs!)} min` : ''}`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const cfgNote = guidance > 1 ? `guidance ${guidance}` : 'no guidance';
const lines = [
  `**${adapter}** — ${day}, Node ${process.version}, ${config.host.cores} × ${config.host.cpu}`,
  '',
  `Model \`${config.model}\` (U-Net on [${latentShape.join('×')}] latents, VAE to [${first.imageShape.join('×')}]); ` +
    `${steps} DDIM steps, ${cfgNote}, batch ${batch} (class ${classLabel} ${className}, null class ${nullClass}), seed ${seed}; ` +
    `kernel timings over ${repeat} run(s) after ${warmup} warm-ups, generation over ${genRepeat} warm run(s); ` +
    `GPU timestamps: ${config.timestampQuery ? 'yes' : 'not available (wall time only)'}; driver shader cache ${driverCacheNote}.`,
  '',
  '| metric | value |',
  '|---|---|',
  `| first run, cold (model load + pipeline compilation + first generation) | ${ms(firstRunMs)} (load ${ms(loadMs)}, generation ${ms(firstGenMs)}, ${pipelinesCompiled} pipelines compiled; device setup ${ms(deviceMs)} not included) |`,
  `| U-Net step, batch ${batch} (no guidance) | ${timing(unetStepMs.batch1)} |`,
  `| U-Net step, batch ${2 * batch} (guidance: [cond, uncond]) | ${timing(unetStepMs.cfgBatch2)} |`,
  `| generation, ${steps} DDIM steps, ${cfgNote}, batch ${batch}, warm | ${timing(generation)} |`,
  `| VAE decode, batch ${batch} | ${timing(decodeMs)} |`,
  `| peak GPU memory tracked (weights ${mib(weightBytes)}) | ${mib(peakBytes)} |`,
];
console.log(lines.join('\n'));

// Adapter names can be long (driver and compiler versions); keep whole words up to ~60 chars.
let slug = '';
for (const w of adapter.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean)) {
  if (slug && slug.length + 1 + w.length > 60) break;
  slug = slug ? `${slug}-${w}` : w;
}
slug ||= 'adapter';
const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, `${slug}-${day}.json`);
// Microseconds are the most any of these timers resolve.
const round = (_: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v);
writeFileSync(outFile, `${JSON.stringify(result, round, 2)}\n`);
console.error(`wrote ${relative(process.cwd(), outFile)}`);
process.exit(0);
