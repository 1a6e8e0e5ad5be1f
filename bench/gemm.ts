// GEMM/conv microbenchmark: the adapter's FMA peak (bench/kernels/fma_peak.wgsl), then Fresco's
// linear and conv2d on the fashion-ldm U-Net's own shapes and on SD 1.5-like shapes scaled down
// to run on CPU adapters, each as achieved GFLOP/s and as a fraction of that peak. Times are GPU
// timestamps of one pass where the adapter has them, wall time otherwise; each shape repeats
// until about 200 ms are measured, so it runs on any adapter. Writes bench/results/gemm-<adapter>-<date>.json.
//   node scripts/bundle-shaders.mjs && npx tsx bench/gemm.ts [--quick] [--weights f32|f16|q8|q4] [--activations f32|f16] [--layout auto|rows|n4]
//   (--quick: fashion-ldm shapes only; --weights: how the weights are stored, default f32; --layout:
//   the float weights' order, default as a model loads them (n4 on CPU adapters; see below);
//   --activations f16: inputs and outputs in f16, weights with them, and a 'sized, f16 math' column)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { Runtime, type GemmFeed, type GemmMath } from '../src/gpu/runtime.ts';
import { fold1d, Graph } from '../src/graph/graph.ts';
import type { Tensor } from '../src/graph/tensor.ts';
import { conv2d, linear } from '../src/kernels/gemm.ts';
import { shaderSources } from '../src/kernels/shaders.gen.ts';
import { uploadQuantized, uploadTensor } from '../src/kernels/cast.ts';
import { quantize } from '../src/io/quant.ts';
import { randn } from '../tests/helpers/gpu.ts';
import { adapterSlug, roundJson } from './core/generate_bench.ts';
import { gemmFeedName } from './core/gemm_feed.ts';
import { timeGraph, type Timing } from './core/time_graph.ts';

process.env.FRESCO_DAWN_FLAGS ??= 'disable-dawn-features=timestamp_quantization';
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
shaderSources['fma_peak'] = readFileSync(join(here, 'kernels', 'fma_peak.wgsl'), 'utf8');

// --activations f16 (needs shader-f16): what --precision f16 runs; the weights are stored like the
// activations (f16) unless quantized.
const ai = process.argv.indexOf('--activations');
const activations = ai >= 0 ? process.argv[ai + 1] : 'f32';
if (activations !== 'f32' && activations !== 'f16') throw new Error(`--activations must be f32 or f16; got ${JSON.stringify(activations)}`);
const gpu = await getGpu();
if (activations === 'f16' && !gpu.features.has('shader-f16')) throw new Error(`--activations f16: this adapter (${gpu.adapterName}) has no shader-f16`);
const rt = new Runtime(gpu);
const useGpuTime = gpu.features.has('timestamp-query');
console.error(`adapter: ${gpu.adapterName}; timing: ${useGpuTime ? 'GPU timestamps' : 'wall time'}`);

const pick = (t: Timing) => (useGpuTime && t.gpuMedianMs !== null ? t.gpuMedianMs : t.medianMs);

/** Times a graph: one probe run, then enough repeats for ~200 ms of measurement (1..20). */
async function measure(g: Graph): Promise<number> {
  const probe = pick(await timeGraph(rt, g, 1, 1));
  const repeat = Math.max(1, Math.min(20, Math.ceil(200 / Math.max(probe, 1e-3))));
  return pick(await timeGraph(rt, g, repeat, 1));
}

// Peak: grow the loop until one dispatch takes >= 20 ms, so launch overhead is a small part.
const THREADS = 256 * 1024;
let peak = { gflops: 0, iters: 0, ms: 0 };
{
  const out = rt.createBuffer(THREADS * 16, 'fma-out');
  try {
    for (let iters = 64; iters <= 1 << 16; iters *= 2) {
      const g = new Graph(rt, 'fma-peak');
      g.dispatch('fma', { shader: 'fma_peak' }, { out }, { iters, mul: 0.9999, add: 1e-4 }, fold1d(THREADS / 256), { flops: THREADS * iters * 64 });
      g.finalize();
      const ms = await measure(g);
      g.destroy();
      const gflops = (THREADS * iters * 64) / (ms * 1e6);
      if (gflops > peak.gflops) peak = { gflops, iters, ms };
      if (ms >= 20) break;
    }
    await rt.assertHealthy();
  } finally {
    rt.destroyBuffer(out);
  }
}
console.error(`FMA peak: ${peak.gflops.toFixed(1)} GFLOP/s (${peak.iters} iterations, ${peak.ms.toFixed(2)} ms)`);

interface Case {
  name: string;
  op: 'linear' | 'conv2d';
  /** linear: [batch, tokens, K] → N; conv2d: [B, Cin, H, W] with Cout, k×k, stride. */
  x: number[];
  n: number;
  k?: number;
  stride?: number;
  source: 'fashion-ldm' | 'SD 1.5-like';
}

const fashion: Case[] = [
  { name: 'conv_in 4→64, 8×8', op: 'conv2d', x: [2, 4, 8, 8], n: 64, k: 3, source: 'fashion-ldm' },
  { name: 'down0 resnet conv 64→64, 8×8', op: 'conv2d', x: [2, 64, 8, 8], n: 64, k: 3, source: 'fashion-ldm' },
  { name: 'down1 resnet conv 128→128, 4×4', op: 'conv2d', x: [2, 128, 4, 4], n: 128, k: 3, source: 'fashion-ldm' },
  { name: 'up1 resnet conv1 256→128, 4×4', op: 'conv2d', x: [2, 256, 4, 4], n: 128, k: 3, source: 'fashion-ldm' },
  { name: 'up1 upsampler conv 128→128, 8×8', op: 'conv2d', x: [2, 128, 8, 8], n: 128, k: 3, source: 'fashion-ldm' },
  { name: 'up2 resnet conv1 192→64, 8×8', op: 'conv2d', x: [2, 192, 8, 8], n: 64, k: 3, source: 'fashion-ldm' },
  { name: 'attn to_q 128→128, 16 tokens', op: 'linear', x: [2, 16, 128], n: 128, source: 'fashion-ldm' },
  { name: 'time_emb linear 256→256', op: 'linear', x: [2, 256], n: 256, source: 'fashion-ldm' },
];
// SD 1.5 at 256² (32² latents) instead of 512²: the same channel counts, a quarter of the positions.
const sd: Case[] = [
  { name: 'resnet conv 320→320, 32×32', op: 'conv2d', x: [1, 320, 32, 32], n: 320, k: 3, source: 'SD 1.5-like' },
  { name: 'resnet conv 640→640, 16×16', op: 'conv2d', x: [1, 640, 16, 16], n: 640, k: 3, source: 'SD 1.5-like' },
  { name: 'resnet conv 1280→1280, 8×8', op: 'conv2d', x: [1, 1280, 8, 8], n: 1280, k: 3, source: 'SD 1.5-like' },
  { name: 'downsampler conv 320→320 /2, 32×32', op: 'conv2d', x: [1, 320, 32, 32], n: 320, k: 3, stride: 2, source: 'SD 1.5-like' },
  { name: 'proj_in 1×1 320→320, 32×32', op: 'conv2d', x: [1, 320, 32, 32], n: 320, k: 1, source: 'SD 1.5-like' },
  { name: 'attn to_q 320→320, 1024 tokens', op: 'linear', x: [1, 1024, 320], n: 320, source: 'SD 1.5-like' },
  { name: 'GEGLU proj 320→2560, 1024 tokens', op: 'linear', x: [1, 1024, 320], n: 2560, source: 'SD 1.5-like' },
  { name: 'cross-attn to_k 768→320, 77 tokens', op: 'linear', x: [1, 77, 768], n: 320, source: 'SD 1.5-like' },
];
const cases = process.argv.includes('--quick') ? fashion : [...fashion, ...sd];

// --weights f32|f16|q8|q4: how the weights are stored (the activations stay f32): f16 as the models'
// 'auto' precision keeps them (array<f16> with shader-f16, else packed words), q8/q4 quantized
// (src/io/quant.ts; the bias stays f32).
const wi = process.argv.indexOf('--weights');
const WEIGHTS = ['f32', 'f16', 'q8', 'q4'] as const;
const weights = (wi >= 0 ? process.argv[wi + 1] : activations) as (typeof WEIGHTS)[number];
if (!WEIGHTS.includes(weights)) throw new Error(`--weights must be ${WEIGHTS.join(', ')}; got ${JSON.stringify(weights)}`);
if (activations === 'f16' && weights === 'f32') throw new Error('--activations f16 keeps float weights in f16 (as --precision f16 does): leave --weights out, or give f16, q8 or q4');

// --layout auto|rows|n4: how float GEMM weights are stored (Tensor.layout): 'n4' with four output
// channels interleaved per k, 'rows' row-major; 'auto' (default) as WeightLoader.gemmWeight stores
// a model's, n4 where the runtime's feed is direct (CPU adapters). Every feed below reads the same
// weights, as a model's after the feed is switched.
const li = process.argv.indexOf('--layout');
const layoutArg = li >= 0 ? process.argv[li + 1] : 'auto';
if (layoutArg !== 'auto' && layoutArg !== 'rows' && layoutArg !== 'n4') throw new Error(`--layout must be auto, rows or n4; got ${JSON.stringify(layoutArg)}`);
const layout = layoutArg === 'auto' ? (rt.gemmFeed === 'direct' ? 'n4' : 'rows') : layoutArg;

/** Random values of `shape` (normal, 0.1 std), a weight stored as --weights says. */
function uploadWeight(shape: number[], label: string, seed: number, quantizable = true): Tensor {
  const values = randn(shape.reduce((a, b) => a * b, 1), seed, 0.1);
  // Float weights (and a quantized weight's bias) are f16 beside f16 activations, as models keep them.
  const dtype = weights === 'f16' || activations === 'f16' ? 'f16' : 'f32';
  if (layout === 'n4' && quantizable && (weights === 'f32' || weights === 'f16')) return uploadTensor(rt, values, shape, label, dtype, 'n4');
  if (weights === 'f32' || weights === 'f16' || !quantizable) return uploadTensor(rt, values, shape, label, dtype);
  const q = quantize(weights, values, shape[0]!, values.length / shape[0]!);
  return uploadQuantized(rt, q, shape, label);
}

// Every way the GEMM core can run a shape, so one run shows which suits the adapter: 'direct'
// global reads (CPU adapters' default), 'tiled' through workgroup memory with 128 x 128 tiles over
// all of K, and 'sized' = tiled with tiles and K splits sized to the shape (gemmTiling; GPUs' default).
// With f16 activations also 'sized, f16 math': the tiled feed multiplying in f16 (Runtime.gemmMath).
const variants: readonly { name: string; feed: GemmFeed; adapt: boolean; math?: GemmMath }[] = [
  { name: 'direct', feed: 'direct', adapt: false },
  { name: 'tiled', feed: 'tiled', adapt: false },
  { name: 'sized', feed: 'tiled', adapt: true },
  ...(activations === 'f16' ? [{ name: 'sized, f16 math', feed: 'tiled' as const, adapt: true, math: 'f16' as const }] : []),
];
const defaults = { feed: rt.gemmFeed, adapt: rt.gemmAdapt };
const defaultVariant = gemmFeedName(rt);
const rows = [];
for (const c of cases) {
  const upload = (shape: number[], label: string, seed: number): Tensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    return uploadTensor(rt, randn(n, seed, 0.1), shape, label, activations);
  };
  const x = upload(c.x, 'x', 1);
  const wShape = c.op === 'linear' ? [c.n, c.x[c.x.length - 1]!] : [c.n, c.x[1]!, c.k!, c.k!];
  const w = uploadWeight(wShape, 'w', 2);
  const bias = uploadWeight([c.n], 'bias', 3, false);
  const byFeed: Record<string, { ms: number; gflops: number; fractionOfPeak: number; dispatches: number }> = {};
  let cost = { flops: 0, bytes: 0 };
  try {
    for (const v of variants) {
      rt.gemmFeed = v.feed;
      rt.gemmAdapt = v.adapt;
      rt.gemmMath = v.math ?? 'f32';
      const g = new Graph(rt, c.name);
      try {
        if (c.op === 'linear') linear(g, c.name, x, w, { bias });
        else conv2d(g, c.name, x, w, { bias, stride: c.stride ?? 1, padding: (c.k! - 1) / 2 });
        g.finalize();
        // A split-K run is two dispatches (slices, then their sum): the shape's work is the first's flops.
        if (v.name === 'direct') cost = { flops: g.ops[0]!.cost!.flops!, bytes: g.ops[0]!.cost!.bytes! };
        const ms = await measure(g);
        await rt.assertHealthy();
        const gflops = cost.flops / (ms * 1e6);
        byFeed[v.name] = { ms, gflops, fractionOfPeak: gflops / peak.gflops, dispatches: g.ops.length };
        console.error(`${c.name} [${v.name}]: ${ms.toFixed(3)} ms, ${gflops.toFixed(2)} GFLOP/s (${((100 * gflops) / peak.gflops).toFixed(1)}% of peak)`);
      } finally {
        g.destroy();
      }
    }
  } finally {
    rt.gemmFeed = defaults.feed;
    rt.gemmAdapt = defaults.adapt;
    rt.gemmMath = 'f32';
    for (const t of [x, w, bias]) rt.destroyBuffer(t.buffer);
  }
  rows.push({ ...c, ...byFeed[defaultVariant]!, flops: cost.flops, bytes: cost.bytes, variant: defaultVariant, byFeed });
}

const date = new Date().toISOString();
const shape = (c: Case) => (c.op === 'linear' ? `[${c.x.join('×')}] · [${c.n}×${c.x[c.x.length - 1]}]ᵀ` : `[${c.x.join('×')}] ⊛ ${c.n}×${c.x[1]}×${c.k}×${c.k}${c.stride && c.stride > 1 ? ` /${c.stride}` : ''}`);
const pct = (f: number) => `${(100 * f).toFixed(1)}%`;
console.log(
  [
    `**${gpu.adapterName}** — ${date.slice(0, 10)}, Node ${process.version}; ${weights} weights${layout === 'n4' ? " ('n4' interleaved)" : ''}, ${activations} activations; FMA peak ${peak.gflops.toFixed(1)} GFLOP/s; ${useGpuTime ? 'GPU timestamps' : 'wall time'}, median per shape; the runtime runs '${defaultVariant}' on this adapter (direct: global reads; tiled: workgroup memory, 128 x 128 tiles, all of K; sized: tiled, tiles and K splits sized to the shape).`,
    '',
    `| shape | source | op | operands | MFLOP | ${variants.map((v) => `${v.name} | GFLOP/s | of peak`).join(' | ')} |`,
    `|---|---|---|---|---:|${variants.map(() => '---:|---:|---:').join('|')}|`,
    ...rows.map((r) => {
      const cells = variants.map((v) => {
        const t = r.byFeed[v.name]!;
        return `${t.ms.toFixed(3)} ms | ${t.gflops.toFixed(2)} | ${pct(t.fractionOfPeak)}`;
      });
      return `| ${r.name} | ${r.source} | ${r.op} | ${shape(r)} | ${(r.flops / 1e6).toFixed(1)} | ${cells.join(' | ')} |`;
    }),
  ].join('\n'),
);
const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, `gemm${activations === 'f32' ? '' : `-${activations}-activations`}${weights === activations ? '' : `-${weights}-weights`}${layout === 'n4' || layoutArg !== 'auto' ? `-${layout}` : ''}-${adapterSlug(gpu.adapterName)}-${date.slice(0, 10)}.json`);
const result = { adapter: gpu.adapterName, date, node: process.version, weights, activations, layout, timing: useGpuTime ? 'gpu-timestamps' : 'wall', defaultVariant, peak: { ...peak, threads: THREADS, flopsPerThreadPerIter: 64 }, shapes: rows };
writeFileSync(outFile, `${JSON.stringify(result, roundJson, 2)}\n`);
console.error(`wrote ${relative(process.cwd(), outFile)}`);
process.exit(0);
