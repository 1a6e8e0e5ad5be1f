// The figures users ask for first: a Stable Diffusion-sized text encoding, U-Net step and VAE decode,
// with random weights in the real component shapes (bench/sd-configs/), within WebGPU's default
// limits (the 512×512 decode holds 256 MiB activations; the plan splits them into chunks).
//   npx tsx bench/sd.ts [--config sd15|sd21] [--precision auto|f16|f32] [--runs 3] [--size 512]
//                       [--stages text,unet,decode] [--gemm-feed auto|direct|tiled|sized] [--gemm-math f32|f16] [--winograd on|off|auto] [--profile]
// --profile: per-kernel GPU time of the U-Net step and the decode (timestamp queries, one timed
// pass per dispatch), by kind and the ten slowest dispatches.
// --gemm-feed: how the GEMM core runs (bench/core/gemm_feed.ts), so one machine can time each way.
// --gemm-math f16: the tiled feed multiplies f16 activations in f16 (Runtime.gemmMath; needs --precision f16).
// --winograd on: stride-1 3x3 convs as Winograd F(2x2, 3x3) (Runtime.winograd; default: on CPU adapters only).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { profileGraph, summarizeByKind } from '../src/gpu/profiler.ts';
import { Runtime } from '../src/gpu/runtime.ts';
import { applyGemmFeedArg, applyGemmMathArg, applyWinogradArg } from './core/gemm_feed.ts';
import { Graph } from '../src/graph/graph.ts';
import { numel, type Tensor } from '../src/graph/tensor.ts';
import { RandomWeightStore } from '../src/io/random_weights.ts';
import { uploadIds } from '../src/kernels/embedding.ts';
import { AutoencoderKL } from '../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../src/models/autoencoder_kl_config.ts';
import { buildModel } from '../src/models/model_loader.ts';
import { CLIPTextModel } from '../src/models/clip_text_model.ts';
import { readClipTextConfig } from '../src/models/clip_text_config.ts';
import { PRECISIONS, type Precision } from '../src/models/precision.ts';
import { UNet2DConditionModel } from '../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../src/models/unet_2d_condition_config.ts';
import { done, median } from './core/time_graph.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const configName = arg('config', 'sd15');
const precision = arg('precision', 'auto') as Precision;
if (!PRECISIONS.includes(precision)) throw new Error(`--precision must be ${PRECISIONS.join(', ')}`);
const runs = Number(arg('runs', '3'));
if (!Number.isInteger(runs) || runs < 0) throw new Error('--runs must be an integer >= 0');
const configs = JSON.parse(readFileSync(join(root, 'bench/sd-configs', `${configName}.json`), 'utf8')) as Record<string, Record<string, unknown>>;
const size = Number(arg('size', String((configs.vae!.sample_size as number) ?? 512)));

// Exact timestamps for --profile (Dawn rounds them to 100 µs unless told otherwise).
if (process.argv.includes('--profile')) process.env.FRESCO_DAWN_FLAGS ??= 'disable-dawn-features=timestamp_quantization';
const gpu = await getGpu();
const rt = new Runtime(gpu);
const feed = applyGemmFeedArg(rt);
const gemmMath = applyGemmMathArg(rt);
const winograd = applyWinogradArg(rt);
// f16 math and Winograd convs are variants of the feed, named with it (in the table and the result file).
const feedName = `${feed.name}${gemmMath === 'f16' ? ', f16 math' : ''}${winograd.forced ? `, Winograd ${winograd.on ? 'on' : 'off'}` : ''}`;
console.error(`adapter: ${gpu.adapterName}; GEMM feed: ${feedName}`);
const s = (x: { firstMs: number; ms: number | null }) => (Number.isNaN(x.firstMs) ? 'not run' : x.ms === null ? `${(x.firstMs / 1000).toFixed(1)} s (first run, compilation included)` : `${(x.ms / 1000).toFixed(2)} s (first ${(x.firstMs / 1000).toFixed(2)} s)`);

async function submit(g: Graph): Promise<number> {
  const t0 = performance.now();
  g.submit();
  await done(rt);
  await rt.assertHealthy();
  return performance.now() - t0;
}

/**
 * First run (compiling its pipelines) and the median of `runs` more (null with --runs 0, for
 * adapters where one run takes minutes). Each stage is printed as it ends.
 */
async function time(g: Graph): Promise<{ firstMs: number; ms: number | null }> {
  const firstMs = await submit(g);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) ms.push(await submit(g));
  const r = { firstMs, ms: ms.length ? median(ms) : null };
  console.error(`${g.label}: ${s(r)}`);
  return r;
}

/**
 * The pipelines a graph adds, made all at once as a generation makes them (Runtime.compilePending)
 * before its first run: how many, and how long they took (a driver that compiles at first
 * dispatch, as lavapipe does, spends that in the first run instead).
 */
const pipelines: Record<string, { count: number; ms: number }> = {};
async function compile(g: Graph): Promise<void> {
  const count = rt.pipelinesPending;
  // dawn.node may report an async pipeline creation done only after the queue's earlier work
  // (seen behind a 0.4 s dispatch on lavapipe; here the planning's weight transforms and
  // slices), so that is waited for first.
  await done(rt);
  const t0 = performance.now();
  await rt.compilePending();
  pipelines[g.label] = { count, ms: performance.now() - t0 };
  console.error(`${g.label}: ${count} new pipelines made in ${pipelines[g.label]!.ms.toFixed(0)} ms`);
}

const stages = new Set(arg('stages', 'text,unet,decode').split(','));
for (const st of stages) if (!['text', 'unet', 'decode'].includes(st)) throw new Error(`--stages takes text, unet, decode; got ${st}`);
const skipped = { firstMs: NaN, ms: null };
const store = new RandomWeightStore(1);
let t = performance.now();
const text = buildModel(CLIPTextModel, rt, store, readClipTextConfig(configs.text_encoder!, `${configName}/text_encoder`), { precision });
const unet = buildModel(UNet2DConditionModel, rt, store, readUNet2DConditionConfig(configs.unet!, `${configName}/unet`), { precision });
const vae = buildModel(AutoencoderKL, rt, store, readAutoencoderKLConfig(configs.vae!, `${configName}/vae`), { precision });
const loadMs = performance.now() - t;
const weightBytes = rt.liveBytes;
console.error(`built with random weights in ${(loadMs / 1000).toFixed(1)} s: ${(weightBytes / 2 ** 30).toFixed(2)} GiB on the GPU (${unet.precision.description})`);

const own: GPUBuffer[] = [];
const f32 = (data: Float32Array, shape: number[], label: string): Tensor => ({ buffer: own[own.push(rt.upload(data, label)) - 1]!, shape, label });
const noise = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.9);

// Text: the guidance batch, [prompt, ""], 77 tokens each.
const T = 77;
const ids = uploadIds(rt, Array.from({ length: 2 * T }, (_, i) => (i % T === 0 ? 49406 : i % T < 9 ? 320 + i : 49407)), text.vocabSize, 'ids');
own.push(ids.buffer);
const gText = new Graph(rt, 'text-encoder');
const states = text.encode(gText, { ...ids, shape: [2, T] });
gText.finalize();
await compile(gText);
const textTime = stages.has('text') ? await time(gText) : skipped;

// One U-Net step of the guidance batch at the model's latent size.
const latent = size / vae.scaleFactor;
const gUnet = new Graph(rt, 'unet-step');
const sample = f32(noise(2 * 4 * latent * latent, 1), [2, 4, latent, latent], 'sample');
const tstep = f32(new Float32Array([500, 500]), [2], 'timestep');
unet.forward(gUnet, sample, { timesteps: tstep, broadcast: false }, states.lastHiddenState);
gUnet.finalize();
await compile(gUnet);
const unetTime = stages.has('unet') ? await time(gUnet) : skipped;
const profiles: Record<string, unknown> = {};
/** --profile: where a graph's GPU time goes, by kind of kernel and by dispatch. */
async function profile(g: Graph): Promise<void> {
  if (!process.argv.includes('--profile')) return;
  if (!gpu.features.has('timestamp-query')) throw new Error('--profile needs the timestamp-query feature, which this adapter lacks');
  const p = await profileGraph(rt, g, 3);
  const kinds = summarizeByKind(p);
  const top = [...p.ops].sort((a, b) => b.ms - a.ms).slice(0, 10);
  const rate = (v: number | null, unit: string) => (v === null ? '–' : `${v.toFixed(1)} ${unit}`);
  console.log(`\n${g.label}: ${p.ops.length} dispatches, ${p.totalMs.toFixed(2)} ms summed (each timed alone, median of ${p.runs})\n`);
  console.log('| kernel | dispatches | time | share | GFLOP/s | GB/s |\n|---|---:|---:|---:|---:|---:|');
  for (const k of kinds) console.log(`| ${k.kind} | ${k.ops} | ${k.ms.toFixed(2)} ms | ${(100 * k.share).toFixed(1)}% | ${rate(k.gflops, '')} | ${rate(k.gbps, '')} |`);
  console.log('\n| slowest dispatches | kind | time | GFLOP/s |\n|---|---|---:|---:|');
  for (const o of top) console.log(`| ${o.label} | ${o.kind} | ${o.ms.toFixed(3)} ms | ${o.cost?.flops ? (o.cost.flops / (o.ms * 1e6)).toFixed(1) : '–'} |`);
  profiles[g.label] = { totalMs: p.totalMs, kinds, top: top.map((o) => ({ label: o.label, kind: o.kind, ms: o.ms, flops: o.cost?.flops ?? null })) };
}
if (stages.has('unet')) await profile(gUnet);

// The decode of one image.
const gDec = new Graph(rt, 'vae-decode');
const z = f32(noise(4 * latent * latent, 2), [1, 4, latent, latent], 'latents');
const image = vae.decode(gDec, z);
gDec.finalize();
await compile(gDec);
const decodeTime = stages.has('decode') ? await time(gDec) : skipped;
if (stages.has('decode')) await profile(gDec);
if (stages.has('decode')) {
  const img = await rt.read(image.buffer, numel(image.shape) * 4);
  if (!img.every(Number.isFinite)) throw new Error('the decoded image has NaN/Inf values');
}

const result = {
  model: `${configName} (random weights, ${size}x${size})`,
  adapter: gpu.adapterName,
  date: new Date().toISOString(),
  precision: unet.precision.description,
  gemmFeed: feedName,
  weightBytes,
  peakBytes: rt.peakBytes,
  textEncodeMs: textTime,
  unetStepMs: unetTime,
  decodeMs: decodeTime,
  decodeLargestBindingBytes: gDec.stats.maxBindingBytes,
  pipelines,
  planLimits: rt.planLimits,
  profiles,
};
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
console.log(`| ${result.model}, ${result.precision}, GEMM feed ${feedName} | |\n|---|---|`);
console.log(`| text encoding, batch 2 × 77 tokens | ${s(textTime)} |`);
console.log(`| U-Net step, batch 2 (guidance), ${latent}x${latent} latents | ${s(unetTime)} |`);
console.log(`| VAE decode, 1 image ${size}x${size} | ${s(decodeTime)} |`);
console.log(`| pipelines made before the first run (text / U-Net / decode: new ones, all at once) | ${[gText, gUnet, gDec].map((g) => `${pipelines[g.label]!.count} in ${pipelines[g.label]!.ms.toFixed(0)} ms`).join(' / ')} |`);
console.log(`| weights / peak GPU memory | ${mib(weightBytes)} / ${mib(rt.peakBytes)} |`);
console.log(`| largest binding in the decode (limit ${mib(rt.planLimits.binding)}) | ${mib(gDec.stats.maxBindingBytes)} |`);
console.log(`\nadapter: ${gpu.adapterName}`);
const out = join(root, 'bench/results', `${configName}-${unet.precision.dtype}-${[...stages].join('_')}${feed.forced || gemmMath === 'f16' || winograd.forced ? `-${feedName.replace(/[^a-z0-9]+/g, '-')}` : ''}-${gpu.adapterName.replace(/[^a-z0-9]+/gi, '-').slice(0, 60).toLowerCase()}-${result.date.slice(0, 10)}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.error(`wrote ${out}`);
for (const g of [gText, gUnet, gDec]) g.destroy();
for (const b of own) rt.destroyBuffer(b);
text.destroy();
unet.destroy();
vae.destroy();
process.exit(0);
