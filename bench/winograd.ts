// Winograd F(2x2, 3x3) convs against the implicit-GEMM conv on the same shapes: 3x3 stride-1 convs
// at the fashion-ldm U-Net's channel counts and latent sizes (8x8 down to 2x2), batch 1 and 2 (the
// guidance batch), each timed both ways on one weight (stored as models load it for this adapter's
// feed), with GPU timestamps where the adapter has them, and which way conv2d() takes by default
// (Runtime.winogradMinWork, src/kernels/winograd.ts). Prints a table; writes
// bench/results/winograd-<adapter>-<date>.json.
//   node scripts/bundle-shaders.mjs && npx tsx bench/winograd.ts [--channels 64,128,256] [--sizes 8,4,2]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { Runtime } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/graph.ts';
import type { Tensor } from '../src/graph/tensor.ts';
import { conv2d } from '../src/kernels/gemm.ts';
import { uploadTensor } from '../src/kernels/cast.ts';
import { registerDerived, transformOnce, winogradPlan } from '../src/kernels/winograd.ts';
import { randn } from '../tests/helpers/gpu.ts';
import { adapterSlug, roundJson } from './core/generate_bench.ts';
import { gemmFeedName } from './core/gemm_feed.ts';
import { timeGraph } from './core/time_graph.ts';

process.env.FRESCO_DAWN_FLAGS ??= 'disable-dawn-features=timestamp_quantization';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const list = (name: string, fallback: number[]) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]!.split(',').map(Number) : fallback;
};
const channels = list('channels', [64, 128, 256]);
const sizes = list('sizes', [8, 4, 2]);

const gpu = await getGpu();
const rt = new Runtime(gpu);
const gpuTime = gpu.features.has('timestamp-query');
console.error(`adapter: ${gpu.adapterName}; GEMM feed: ${gemmFeedName(rt)}; timing: ${gpuTime ? 'GPU timestamps' : 'wall time'}`);

/** A [C, C, 3, 3] weight stored as WeightLoader.gemmWeight would on this runtime, registered for Winograd convs. */
function convWeight(C: number, seed: number): Tensor {
  const v = randn(C * C * 9, seed, 0.05);
  const w = uploadTensor(rt, v, [C, C, 3, 3], 'weight', 'f32', rt.gemmFeed === 'direct' ? 'n4' : undefined);
  registerDerived(w, transformOnce(rt));
  return w;
}

async function time(g: Graph): Promise<number> {
  const probe = await timeGraph(rt, g, 1, 1);
  const ms = (t: typeof probe) => (gpuTime && t.gpuMedianMs !== null ? t.gpuMedianMs : t.medianMs);
  const repeat = Math.max(3, Math.min(20, Math.ceil(100 / Math.max(ms(probe), 1e-3))));
  return ms(await timeGraph(rt, g, repeat, 1));
}

const minWork = rt.winogradMinWork;
const rows: { B: number; C: number; H: number; im2colMs: number; winogradMs: number; taken: boolean }[] = [];
console.log('| conv | implicit GEMM | Winograd | speed-up | conv2d() takes by default |\n|---|---:|---:|---:|---|');
for (const H of sizes) for (const C of channels) for (const B of [1, 2]) {
  const x = uploadTensor(rt, randn(B * C * H * H, H * 1000 + C + B), [B, C, H, H], 'x');
  const w = convWeight(C, C + H);
  const ms: number[] = [];
  let taken = false;
  for (const on of [false, true]) {
    rt.winograd = on;
    const g = new Graph(rt, 'conv');
    // Whether conv2d() takes the Winograd path by default (Runtime.winogradMinWork), then time it forced.
    if (on) taken = winogradPlan(g, w, { stride: 1, B, Hout: H, Wout: H, dtype: 'f32' }) !== null;
    rt.winogradMinWork = on ? 0 : minWork;
    conv2d(g, 'conv', x, w, { padding: 1 });
    g.finalize();
    ms.push(await time(g));
    g.destroy();
  }
  rows.push({ B, C, H, im2colMs: ms[0]!, winogradMs: ms[1]!, taken });
  console.log(`| B${B} ${C}->${C} ${H}x${H} | ${ms[0]!.toFixed(3)} ms | ${ms[1]!.toFixed(3)} ms | ${(ms[0]! / ms[1]!).toFixed(2)}x | ${taken ? 'Winograd' : 'implicit GEMM'} |`);
}

const date = new Date().toISOString();
const out = join(root, 'bench/results', `winograd-${adapterSlug(gpu.adapterName)}-${date.slice(0, 10)}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ adapter: gpu.adapterName, date, gemmFeed: gemmFeedName(rt), timing: gpuTime ? 'gpu' : 'wall', rows }, roundJson, 2)}\n`);
console.error(`wrote ${out}`);
