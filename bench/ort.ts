// Fresco's U-Net step against ONNX Runtime Web's WebGPU EP on the same model, adapter, input, batch
// and number of runs, in one headless Chromium session (the page is bench/ort/main.ts). Writes
// bench/results/ort-<adapter>-<date>.json and prints one markdown line per batch.
//   npm run bench:ort -- [--batches 1,2] [--runs 5] [--warmup 2] [--profile] [--precision f32|auto|f16] [--weights q8|q4] [--layout auto|rows|n4]
//   npm run bench:ort -- --ab [bench/ort/gemm.v1.wgsl]   (Fresco only: a GEMM shader variant
//   against shaders/gemm.wgsl, see bench/ort/ab.ts; prints JSON, writes nothing)
// Needs Chromium (CHROMIUM=/path, default /usr/bin/chromium) and ../shared/models/fashion-ldm/onnx/unet.onnx
// (ORT_MODEL_DIR=/path to override).
import { createReadStream, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { adapterSlug } from './core/generate_bench.ts';
import { pageResult, type BatchResult } from './ort/page_result.ts';
import { build } from 'vite';
// @ts-expect-error plain ESM script without types
import { bundleShaders } from '../scripts/bundle-shaders.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const batches = arg('batches') ?? '1,2';
const runs = Number(arg('runs') ?? 5);
const warmup = Number(arg('warmup') ?? 2);
const profile = process.argv.includes('--profile');
// Fresco's storage: f32 by default, as the ONNX export runs; 'auto' is what loadModel gives users
// (f16 weights; packed words where the adapter has no shader-f16), --weights q8|q4 quantized.
const precision = arg('precision') ?? 'f32';
const weights = arg('weights') ?? null;
if (!['f32', 'auto', 'f16'].includes(precision)) throw new Error(`--precision must be f32, auto or f16, got ${JSON.stringify(precision)}`);
if (weights !== null && !['q8', 'q4'].includes(weights)) throw new Error(`--weights must be q8 or q4, got ${JSON.stringify(weights)}`);
// --layout rows: Fresco's GEMM weights row-major where the loader would interleave them ('n4', the
// direct feed's layout; WeightLoader.gemmLayout): the layout's A/B, written to its own file.
const layout = arg('layout') ?? 'auto';
if (!['auto', 'rows', 'n4'].includes(layout)) throw new Error(`--layout must be auto, rows or n4, got ${JSON.stringify(layout)}`);
const storage = `${precision}${weights ? `-${weights}` : ''}${layout === 'auto' ? '' : `-${layout}`}`;
const ab = process.argv.includes('--ab') ? (arg('ab')?.startsWith('--') ? undefined : arg('ab')) ?? 'bench/ort/gemm.v1.wgsl' : null;
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';
const onnxDir = resolve(process.env.ORT_MODEL_DIR ?? join(root, '../shared/models/fashion-ldm/onnx'));
for (const [k, v] of Object.entries({ runs, warmup })) {
  if (!Number.isInteger(v) || v < 0 || (k === 'runs' && v < 1)) throw new Error(`--${k} must be a ${k === 'runs' ? 'positive' : 'non-negative'} integer, got ${v}`);
}
if (!/^\d+(,\d+)*$/.test(batches)) throw new Error(`--batches must be a comma-separated list of batch sizes, got ${JSON.stringify(batches)}`);
if (!existsSync(join(onnxDir, 'unet.onnx'))) throw new Error(`${join(onnxDir, 'unet.onnx')}: not found (set ORT_MODEL_DIR)`);
if (!existsSync(chromium)) throw new Error(`${chromium}: Chromium not found (set CHROMIUM)`);

bundleShaders();
const pageDir = join(root, 'bench/ort');
const distDir = join(pageDir, 'dist');
await build({
  configFile: false,
  root: pageDir,
  logLevel: 'warn',
  build: {
    outDir: distDir,
    emptyOutDir: true,
    target: 'es2022',
    // Fresco's Node-only branches (Dawn, the file system) are dynamic imports the page never takes.
    rollupOptions: { external: ['webgpu', /^node:/], input: { main: join(pageDir, 'index.html'), ab: join(pageDir, 'ab.html') } },
  },
});

// URL prefix → folder. ORT loads its wasm from /ort/ (env.wasm.wasmPaths), so its files are served as shipped.
const mounts: [string, string][] = [
  ['/ort/', join(root, 'node_modules/onnxruntime-web/dist')],
  ['/onnx/', onnxDir],
  ['/weights/', join(root, 'weights')],
  ['/bench-ort/', pageDir],
  ['/', distDir],
];
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const ortFiles = new Set<string>();
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  if (path === '/favicon.ico') {
    res.writeHead(204).end();
    return;
  }
  const [prefix, dir] = mounts.find(([p]) => path.startsWith(p))!;
  const file = normalize(join(dir, path === '/' ? 'index.html' : path.slice(prefix.length)));
  if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  if (prefix === '/ort/') ortFiles.add(path.slice(prefix.length));
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size });
  createReadStream(file).pipe(res);
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as AddressInfo).port;

// 127.0.0.1 is a secure context, which WebGPU needs. Developer features lift Chrome's 100 µs
// timestamp quantization (for the profile) and fill adapterInfo's device and description, which
// is what shows that both engines got the same physical adapter.
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  protocolTimeout: 0,
  args: ['--enable-unsafe-webgpu', '--enable-webgpu-developer-features', '--no-sandbox'],
});
interface PageResult {
  adapter: string;
  frescoAdapter: Record<string, string>;
  ortAdapter: Record<string, string>;
  ortVersion: string;
  userAgent: string;
  timestampQuery: boolean;
  results: BatchResult[];
  profiles: Record<string, unknown>;
}
if (ab !== null) {
  try {
    const tab = await browser.newPage();
    tab.on('console', (m) => console.error(`[page] ${m.text()}`));
    const variant = `/bench-ort/${relative(pageDir, resolve(ab))}`;
    const result = await pageResult<unknown>(tab, `http://127.0.0.1:${port}/ab.html?variant=${encodeURIComponent(variant)}&batches=${batches}&runs=${runs}&warmup=${warmup}`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await browser.close();
    server.close();
  }
  process.exit(0);
}
let page: PageResult;
try {
  const tab = await browser.newPage();
  tab.on('console', (m) => console.error(`[page] ${m.text()}`));
  tab.on('pageerror', (e) => console.error(`[page error] ${(e as Error).message}`));
  page = await pageResult<PageResult>(tab, `http://127.0.0.1:${port}/?batches=${batches}&runs=${runs}&warmup=${warmup}&profile=${profile ? 1 : 0}&precision=${precision}${weights ? `&weights=${weights}` : ''}&layout=${layout}`);
} finally {
  await browser.close();
  server.close();
}

const same = JSON.stringify(page.frescoAdapter) === JSON.stringify(page.ortAdapter);
const first = page.results[0]!;
const notes = [
  `headless Chromium (${page.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? page.userAgent}), onnxruntime-web ${page.ortVersion} WebGPU EP alone (no wasm fallback)`,
  `adapters: Fresco ${JSON.stringify(page.frescoAdapter)}, ORT ${JSON.stringify(page.ortAdapter)}${same ? ' (the same)' : ' (DIFFERENT)'}`,
  `Fresco's storage: precision ${precision}${weights ? `, ${weights} weights` : ''}${layout === 'auto' ? '' : `, GEMM weights ${layout}`} (ORT: the f32 ONNX export)`,
  `one U-Net step, timestep 500, class 7 (guidance batch: [7, null 10]); median of ${runs} runs after ${warmup} warm-ups, ORT and Fresco runs alternating`,
  'readback excluded on both sides: ORT output in a GPU buffer (preferredOutputLocation gpu-buffer), each run ends at onSubmittedWorkDone; ORT inputs are CPU tensors (a few KiB uploaded per run)',
  'maxAbsDiff: max |ORT − Fresco| over the outputs of every batch for the same input; maxRelDiff: that over max |ORT output|',
  `ORT wasm files loaded: ${[...ortFiles].join(', ')}`,
];
const result = {
  adapter: page.adapter,
  frescoStorage: storage,
  batch: first.batch,
  runs,
  ortUnetStepMs: first.ortUnetStepMs,
  frescoUnetStepMs: first.frescoUnetStepMs,
  ratio: first.ratio,
  maxAbsDiff: Math.max(...page.results.map((r) => r.maxAbsDiff)),
  maxRelDiff: Math.max(...page.results.map((r) => r.maxRelDiff)),
  notes: notes.join('; '),
  date: new Date().toISOString(),
  warmup,
  sameAdapter: same,
  frescoAdapter: page.frescoAdapter,
  ortAdapter: page.ortAdapter,
  ortVersion: page.ortVersion,
  byBatch: page.results,
  ...(profile ? { profiles: page.profiles } : {}),
};

const slug = adapterSlug(page.adapter);
const outDir = join(root, 'bench/results');
mkdirSync(outDir, { recursive: true });
// A profiled run times hooked WebGPU calls, so it gets its own file and leaves the timing one alone.
// Storage other than f32 is a variant run: its own file too.
const outFile = join(outDir, `ort-${profile ? 'profile-' : ''}${storage === 'f32' ? '' : `${storage}-`}${slug}-${result.date.slice(0, 10)}.json`);
// Six significant digits: timings need no more, and the output differences are ~1e-5.
const round = (_: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v);
writeFileSync(outFile, `${JSON.stringify(result, round, 2)}\n`);
for (const r of page.results) {
  console.log(
    `| ${page.adapter} | ${storage} | batch ${r.batch} | ORT ${r.ortUnetStepMs.toFixed(1)} ms | Fresco ${r.frescoUnetStepMs.toFixed(1)} ms | ORT/Fresco ${r.ratio.toFixed(2)}× | max abs diff ${r.maxAbsDiff.toExponential(2)} (${r.maxRelDiff.toExponential(2)} of max |out|) |`,
  );
}
console.error(`wrote ${relative(process.cwd(), outFile)}`);
