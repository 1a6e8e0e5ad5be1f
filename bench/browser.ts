// `npm run bench:browser`: builds the bench page (bench/browser/), serves it and the shipped model
// from 127.0.0.1, runs it in headless Chromium with WebGPU (SwiftShader where there is no GPU) and
// writes bench/results/<adapter>-<date>.json like the Node bench. SwiftShader takes seconds per
// U-Net step, so the defaults are small; nothing here assumes a speed (no page timeouts).
//   npm run bench:browser -- [--steps 5] [--repeat 3] [--gen-repeat 1] [--profile-runs 2] [--quantized]
//   --quantized keeps Chrome's 100 µs timestamp quantization (the default turns it off with
//   --enable-webgpu-developer-features). CHROMIUM=/path picks the browser (default /usr/bin/chromium).
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { dirname, extname, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { adapterSlug, markdown, ortStepMs, roundJson, type GenerateBenchResult } from './core/generate_bench.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(chromium)) throw new Error(`${chromium}: Chromium not found (set CHROMIUM=/path/to/chrome)`);

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} needs a non-negative integer, got ${JSON.stringify(process.argv[i + 1])}`);
  return v;
}
const query = new URLSearchParams({
  steps: String(option('steps', 5)),
  repeat: String(option('repeat', 3)),
  genRepeat: String(option('gen-repeat', 1)),
  profileRuns: String(option('profile-runs', 2)),
  model: '/weights/fashion-ldm/',
});
const quantized = process.argv.includes('--quantized');

execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', join(root, 'bench/browser/vite.config.ts')], { stdio: 'inherit', cwd: root });

// The page at /, the model files under /weights/; nothing outside those two folders is served.
const mounts: [string, string][] = [
  ['/weights/', join(root, 'weights')],
  ['/', join(root, 'bench/browser/dist')],
];
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json' };
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const mount = mounts.find(([prefix]) => path.startsWith(prefix));
  const file = mount ? normalize(join(mount[1], path.slice(mount[0].length) || 'index.html')) : null;
  if (!mount || !file || !(file === mount[1] || file.startsWith(mount[1] + sep)) || !existsSync(file) || !statSync(file).isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size });
  createReadStream(file).pipe(res);
});
await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?${query}`;

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  protocolTimeout: 0,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', ...(quantized ? [] : ['--enable-webgpu-developer-features'])],
});
let result: GenerateBenchResult;
let version: string;
try {
  version = await browser.version();
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  page.on('console', (m) => m.text().startsWith('[bench]') && console.error(m.text().slice(8)));
  page.on('pageerror', (e) => console.error(`page error: ${(e as Error).message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.__benchResult !== undefined || window.__benchError !== undefined, { timeout: 0, polling: 500 });
  const error = await page.evaluate(() => window.__benchError);
  if (error) throw new Error(`the bench page failed: ${error}`);
  result = (await page.evaluate(() => window.__benchResult))!;
} finally {
  await browser.close();
  server.close();
}

const host = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, platform: `${process.platform}-${process.arch}` };
const out = {
  ...result,
  runtime: `${version} headless, ${result.runtime}`,
  config: { ...result.config, chromium: version, flags: quantized ? 'default (timestamps quantized)' : '--enable-webgpu-developer-features (timestamps not quantized)', host },
};
const slug = adapterSlug(out.adapter);
const day = out.date.slice(0, 10);
const outDir = join(root, 'bench', 'results');
const ortFile = join(outDir, `ort-${slug}-${day}.json`);
if (existsSync(ortFile)) {
  out.ortUnetStepMs = ortStepMs(JSON.parse(readFileSync(ortFile, 'utf8')));
  out.ortSource = relative(root, ortFile);
}
console.log(markdown(out, `${host.cores} × ${host.cpu}`));
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, `${slug}-${day}.json`);
writeFileSync(outFile, `${JSON.stringify(out, roundJson, 2)}\n`);
console.error(`wrote ${relative(process.cwd(), outFile)}`);
