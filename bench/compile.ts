// What a cold first run spends compiling, pipeline by pipeline: a child process generates with the
// shipped model (or --model) and lists the kernels it compiled; this process then compiles each on
// a fresh device with the driver's disk cache off and runs it once on one workgroup, timing the
// pipeline creation (where SwiftShader compiles) and the first dispatch (where lavapipe's LLVM
// does) apart. Prints a markdown table, biggest first, and writes bench/results/compile-<adapter>-<date>.json.
//   node scripts/bundle-shaders.mjs && npx tsx bench/compile.ts [--batch 2] [--winograd on|off|auto]
//   [--gemm-feed auto|direct|tiled|sized] [--model DIR] [--top 20]
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu, type GpuContext } from '../src/gpu/device.ts';
import { kernelKey, type KernelSpec, Runtime } from '../src/gpu/runtime.ts';
import { loadLdmFolder } from '../src/pipelines/ldm_folder.ts';
import { generateClassConditional } from '../src/pipelines/class_conditional.ts';
import { applyGemmFeedArg, applyWinogradArg } from './core/gemm_feed.ts';
import { adapterSlug } from './core/generate_bench.ts';

// Set before any device exists (see bench/generate.ts): Mesa drivers would otherwise answer from
// the disk cache that the child's run, or any earlier one, filled.
process.env.MESA_SHADER_CACHE_DISABLE ??= 'true';
// NVIDIA's driver keeps one too (its Vulkan pipelines included).
process.env.__GL_SHADER_DISK_CACHE ??= '0';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const modelDir = resolve(arg('model') ?? join(root, 'weights/fashion-ldm'));
const batch = Number(arg('batch') ?? 2);
const top = Number(arg('top') ?? 20);
if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got ${arg('batch')}`);
if (!Number.isInteger(top) || top < 1) throw new Error(`--top must be a positive integer, got ${arg('top')}`);

/** Runtime choices the flags make, applied the same way in the child and here. */
function runtimeFor(gpu: GpuContext): Runtime {
  const rt = new Runtime(gpu);
  applyGemmFeedArg(rt);
  applyWinogradArg(rt);
  return rt;
}

const captureTo = arg('capture');
if (captureTo) {
  // The child: two DDIM steps and the decode compile everything a generation of any length does.
  const rt = runtimeFor(await getGpu());
  const specs = new Map<string, KernelSpec>();
  const kernel = rt.kernel.bind(rt);
  rt.kernel = (spec) => {
    specs.set(kernelKey(spec), spec);
    return kernel(spec);
  };
  const model = await loadLdmFolder(rt, modelDir);
  const classes = model.unet.numClasses ?? 1;
  await generateClassConditional(rt, model, { classLabels: new Array<number>(batch).fill(0), nullClass: classes - 1, guidanceScale: classes > 1 ? 3 : 1, steps: 2, scheduler: 'ddim', seed: 1 });
  writeFileSync(captureTo, JSON.stringify([...specs.values()]));
  process.exit(0);
}

const listFile = join(tmpdir(), `fresco-compile-${process.pid}.json`);
execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--capture', listFile], { stdio: ['ignore', 'ignore', 'inherit'] });
const specs = JSON.parse(readFileSync(listFile, 'utf8')) as KernelSpec[];
rmSync(listFile);

const gpu = await getGpu();
const rt = runtimeFor(gpu);
const { device } = rt;
console.error(`adapter: ${gpu.adapterName}; ${specs.length} pipelines from a ${batch}-image generation of ${modelDir}`);

interface Row {
  key: string;
  wgslChars: number;
  createMs: number;
  firstDispatchMs: number;
}
const rows: Row[] = [];
const scratch: GPUBuffer[] = [];
for (const spec of specs) {
  const t0 = performance.now();
  const k = rt.kernel(spec);
  // Made at first use (Runtime.compilePending makes them all at once): here, one at a time.
  void k.pipeline;
  const createMs = performance.now() - t0;
  // Zero uniforms: every loop bound is a shape, so one workgroup does (next to) nothing but make
  // the driver finish the pipeline.
  const entries = k.bindings.map((b) => {
    const uniform = b.kind === 'uniform';
    const buffer = device.createBuffer({ size: uniform ? k.uniform!.size : 1 << 16, usage: uniform ? GPUBufferUsage.UNIFORM : GPUBufferUsage.STORAGE });
    scratch.push(buffer);
    return { binding: b.binding, resource: { buffer } };
  });
  const bindGroup = device.createBindGroup({ layout: k.layout, entries });
  const t1 = performance.now();
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(k.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([enc.finish()]);
  await rt.queueDone();
  rows.push({ key: k.key, wgslChars: k.code.length, createMs, firstDispatchMs: performance.now() - t1 });
}
await rt.assertHealthy();
for (const b of scratch) b.destroy();

const total = (r: Row) => r.createMs + r.firstDispatchMs;
rows.sort((a, b) => total(b) - total(a));
const sum = (f: (r: Row) => number) => rows.reduce((s, r) => s + f(r), 0);
const byShader = new Map<string, { n: number; ms: number }>();
for (const r of rows) {
  const s = r.key.split(':')[0]!;
  const e = byShader.get(s) ?? { n: 0, ms: 0 };
  byShader.set(s, { n: e.n + 1, ms: e.ms + total(r) });
}
const ms = (v: number) => v.toFixed(0);
const date = new Date().toISOString().slice(0, 10);
const lines = [
  `**${gpu.adapterName}**, ${date}: ${rows.length} pipelines, ${ms(sum(total))} ms (creation ${ms(sum((r) => r.createMs))} ms, first dispatch ${ms(sum((r) => r.firstDispatchMs))} ms)`,
  '',
  '| shader | pipelines | ms |',
  '|---|---:|---:|',
  ...[...byShader].sort((a, b) => b[1].ms - a[1].ms).map(([s, e]) => `| ${s} | ${e.n} | ${ms(e.ms)} |`),
  '',
  '| pipeline | WGSL chars | creation ms | first dispatch ms |',
  '|---|---:|---:|---:|',
  ...rows.slice(0, top).map((r) => `| \`${r.key}\` | ${r.wgslChars} | ${ms(r.createMs)} | ${ms(r.firstDispatchMs)} |`),
];
console.log(lines.join('\n'));
const outDir = join(root, 'bench/results');
mkdirSync(outDir, { recursive: true });
const out = join(outDir, `compile-${adapterSlug(gpu.adapterName)}-${date}.json`);
writeFileSync(out, JSON.stringify({ adapter: gpu.adapterName, model: modelDir.startsWith(root) ? modelDir.slice(root.length + 1) : modelDir, batch, winograd: rt.winograd, gemmFeed: rt.gemmFeed, rows }, null, 1));
console.error(`wrote ${out}`);
process.exit(0);
