// The figures users ask for first: a Stable Diffusion-sized text encoding, U-Net step and VAE decode,
// with random weights in the real component shapes (bench/sd-configs/), within WebGPU's default
// limits (the 512×512 decode holds 256 MiB activations; the plan splits them into chunks).
//   npx tsx bench/sd.ts [--config sd15|sd21] [--precision auto|f16|f32] [--runs 3] [--size 512]
//                       [--stages text,unet,decode] [--gemm-feed auto|direct|tiled]
// --gemm-feed overrides how the GEMM core is fed (Runtime.gemmFeed; auto: tiled on GPUs, direct on
// CPU adapters), so one machine can time both.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { Runtime, type GemmFeed } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/graph.ts';
import { numel, type Tensor } from '../src/graph/tensor.ts';
import { RandomWeightStore } from '../src/io/random_weights.ts';
import { uploadIds } from '../src/kernels/embedding.ts';
import { AutoencoderKL } from '../src/models/autoencoder_kl.ts';
import { CLIPTextModel } from '../src/models/clip_text_model.ts';
import { PRECISIONS, type Precision } from '../src/models/precision.ts';
import { UNet2DConditionModel } from '../src/models/unet_2d_condition.ts';
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

const gpu = await getGpu({ wantF16: precision !== 'f32' });
const rt = new Runtime(gpu);
const feedArg = arg('gemm-feed', 'auto');
if (!['auto', 'direct', 'tiled'].includes(feedArg)) throw new Error('--gemm-feed must be auto, direct or tiled');
if (feedArg !== 'auto') rt.gemmFeed = feedArg as GemmFeed;
console.error(`adapter: ${gpu.adapterName}; GEMM feed: ${rt.gemmFeed}`);
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

const stages = new Set(arg('stages', 'text,unet,decode').split(','));
for (const st of stages) if (!['text', 'unet', 'decode'].includes(st)) throw new Error(`--stages takes text, unet, decode; got ${st}`);
const skipped = { firstMs: NaN, ms: null };
const store = new RandomWeightStore(1);
let t = performance.now();
const text = new CLIPTextModel(rt, store, configs.text_encoder!, { precision, where: `${configName}/text_encoder` });
const unet = new UNet2DConditionModel(rt, store, configs.unet!, `${configName}/unet`, { precision });
const vae = new AutoencoderKL(rt, store, configs.vae!, `${configName}/vae`, { precision });
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
const textTime = stages.has('text') ? await time(gText) : skipped;

// One U-Net step of the guidance batch at the model's latent size.
const latent = size / vae.scaleFactor;
const gUnet = new Graph(rt, 'unet-step');
const sample = f32(noise(2 * 4 * latent * latent, 1), [2, 4, latent, latent], 'sample');
const tstep = f32(new Float32Array([500, 500]), [2], 'timestep');
unet.forward(gUnet, sample, { timesteps: tstep, broadcast: false }, states.lastHiddenState);
gUnet.finalize();
const unetTime = stages.has('unet') ? await time(gUnet) : skipped;

// The decode of one image.
const gDec = new Graph(rt, 'vae-decode');
const z = f32(noise(4 * latent * latent, 2), [1, 4, latent, latent], 'latents');
const image = vae.decode(gDec, z);
gDec.finalize();
const decodeTime = stages.has('decode') ? await time(gDec) : skipped;
if (stages.has('decode')) {
  const img = await rt.read(image.buffer, numel(image.shape) * 4);
  if (!img.every(Number.isFinite)) throw new Error('the decoded image has NaN/Inf values');
}

const result = {
  model: `${configName} (random weights, ${size}x${size})`,
  adapter: gpu.adapterName,
  date: new Date().toISOString(),
  precision: unet.precision.description,
  gemmFeed: rt.gemmFeed,
  weightBytes,
  peakBytes: rt.peakBytes,
  textEncodeMs: textTime,
  unetStepMs: unetTime,
  decodeMs: decodeTime,
  decodeLargestBindingBytes: gDec.stats.maxBindingBytes,
  planLimits: rt.planLimits,
};
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
console.log(`| ${result.model}, ${result.precision}, GEMM feed ${rt.gemmFeed} | |\n|---|---|`);
console.log(`| text encoding, batch 2 × 77 tokens | ${s(textTime)} |`);
console.log(`| U-Net step, batch 2 (guidance), ${latent}x${latent} latents | ${s(unetTime)} |`);
console.log(`| VAE decode, 1 image ${size}x${size} | ${s(decodeTime)} |`);
console.log(`| weights / peak GPU memory | ${mib(weightBytes)} / ${mib(rt.peakBytes)} |`);
console.log(`| largest binding in the decode (limit ${mib(rt.planLimits.binding)}) | ${mib(gDec.stats.maxBindingBytes)} |`);
console.log(`\nadapter: ${gpu.adapterName}`);
const out = join(root, 'bench/results', `${configName}-${unet.precision.dtype}-${[...stages].join('+')}${feedArg === 'auto' ? '' : `-${feedArg}`}-${gpu.adapterName.replace(/[^a-z0-9]+/gi, '-').slice(0, 60).toLowerCase()}-${result.date.slice(0, 10)}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.error(`wrote ${out}`);
for (const g of [gText, gUnet, gDec]) g.destroy();
for (const b of own) rt.destroyBuffer(b);
text.destroy();
unet.destroy();
vae.destroy();
process.exit(0);
