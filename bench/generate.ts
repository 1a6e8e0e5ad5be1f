// End-to-end timings of the shipped model in Node (Dawn) on whatever adapter is there: see
// bench/core/generate_bench.ts for what is measured; bench/browser.ts runs the same in Chromium.
// Prints a markdown table and writes bench/results/<adapter>-<date>.json. Nothing here expects a
// speed: it runs on any adapter.
//   node scripts/bundle-shaders.mjs && npx tsx bench/generate.ts [--steps 25] [--batch 1] [--repeat 10]
//   (or: npm run bench -- [options]; more: --gen-repeat N, --gemm-feed auto|direct|tiled|sized
//   (bench/core/gemm_feed.ts), --winograd on|off|auto, --profile-runs N (0: no per-kernel
//   profile), --guidance G, --class N, --seed N, --model DIR)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { Runtime } from '../src/gpu/runtime.ts';
import { applyGemmFeedArg, applyWinogradArg } from './core/gemm_feed.ts';
import { readJson } from '../src/io/model_folder.ts';
import { loadLdmFolder } from '../src/pipelines/ldm_folder.ts';
import { adapterSlug, markdown, ortStepMs, roundJson, runGenerateBench } from './core/generate_bench.ts';

// A cold first run must compile every shader. Mesa drivers (lavapipe, RADV, ANV) keep compiled
// shaders on disk across processes, which would make a second launch "cold" in name only. The
// driver reads this when the device is created, so setting it before getGpu() is enough.
const driverCacheNote = process.env.MESA_SHADER_CACHE_DISABLE === undefined ? 'disabled (MESA_SHADER_CACHE_DISABLE)' : `MESA_SHADER_CACHE_DISABLE=${process.env.MESA_SHADER_CACHE_DISABLE}`;
process.env.MESA_SHADER_CACHE_DISABLE ??= 'true';
// Dawn rounds timestamps down to 65.536 µs by default (a timing side-channel guard), which would
// swamp the per-kernel profile of small dispatches; a local bench has nothing to guard.
process.env.FRESCO_DAWN_FLAGS ??= 'disable-dawn-features=timestamp_quantization';

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
const opts = {
  steps: option('steps', 25),
  batch: option('batch', 1),
  repeat: option('repeat', 10),
  genRepeat: option('gen-repeat', 3),
  guidance: option('guidance', 3),
  classLabel: option('class', 7),
  seed: option('seed', 3),
  profileRuns: option('profile-runs', 5),
};
for (const [k, v] of Object.entries({ steps: opts.steps, batch: opts.batch, repeat: opts.repeat, 'gen-repeat': opts.genRepeat })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
}
if (!Number.isInteger(opts.profileRuns) || opts.profileRuns < 0) throw new Error(`--profile-runs must be a non-negative integer, got ${opts.profileRuns}`);

const cardPath = join(modelDir, 'fresco.json');
const card = (existsSync(cardPath) ? await readJson(cardPath) : {}) as { class_names?: string[]; null_class?: number };

const tStart = performance.now();
const gpu = await getGpu();
const deviceMs = performance.now() - tStart;
const rt = new Runtime(gpu);
const feed = applyGemmFeedArg(rt);
const winograd = applyWinogradArg(rt);
console.error(`adapter: ${gpu.adapterName}; GEMM feed: ${feed.name}; Winograd convs: ${winograd.on ? 'on' : 'off'}`);

const core = await runGenerateBench(
  {
    rt,
    gpu,
    deviceMs,
    load: () => loadLdmFolder(rt, modelDir),
    model: relative(root, modelDir) || modelDir,
    card,
    runtimeName: `Node ${process.version} (Dawn, npm webgpu)`,
    log: (m) => console.error(m),
  },
  opts,
);
const host = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, platform: `${process.platform}-${process.arch}` };
const result = { ...core, node: process.version, config: { ...core.config, gemmFeed: feed.name, winograd: winograd.on, driverShaderCache: driverCacheNote, dawnFlags: process.env.FRESCO_DAWN_FLAGS, host } };

const slug = adapterSlug(gpu.adapterName);
const day = result.date.slice(0, 10);
const outDir = join(root, 'bench', 'results');
// The onnxruntime-web comparison (bench/ort) writes its own file for the same adapter and day.
const ortFile = join(outDir, `ort-${slug}-${day}.json`);
if (existsSync(ortFile)) {
  result.ortUnetStepMs = ortStepMs(JSON.parse(readFileSync(ortFile, 'utf8')));
  result.ortSource = relative(root, ortFile);
}

console.log(markdown(result, `${host.cores} × ${host.cpu}; driver shader cache ${driverCacheNote}`));
mkdirSync(outDir, { recursive: true });
// A forced --gemm-feed is a comparison run: it must not replace the adapter's default result.
const outFile = join(outDir, `${slug}-${day}${feed.forced ? `-${feed.name}` : ''}${winograd.forced ? `-winograd-${winograd.on ? 'on' : 'off'}` : ''}.json`);
writeFileSync(outFile, `${JSON.stringify(result, roundJson, 2)}\n`);
console.error(`wrote ${relative(process.cwd(), outFile)}`);
process.exit(0);
