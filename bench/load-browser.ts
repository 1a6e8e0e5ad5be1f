// `npm run bench:load:browser`: loading a full-size model in headless Chromium, first visit and
// second (a reload in the same profile, where the Cache API holds the files).
// Generates (or reuses) an SD 1.5-shaped pipeline folder with fp16 random weights (bench/core/
// model_gen.ts; --sdxl adds an SDXL-shaped U-Net, one 5.1 GB file), serves it and a page
// (bench/browser/load.html, built with Vite) from 127.0.0.1 with a server that counts the bytes it
// sends per file (bench/core/count_server.ts), and per visit:
//   1. opens the page (a reload after the first visit) and makes the WebGPU device;
//   2. idles --idle-ms (2000) while the Chromium processes are sampled: the renderer's idle level;
//   3. loads: loadModel('http://127.0.0.1:PORT/models/sd/') in the page (the U-Net alone for
//      --sdxl), timed in the page (device creation excluded), with Runtime.peakBytes (the GPU
//      memory Fresco accounted for: every buffer made through rt.createBuffer).
// VmRSS of every Chromium process is read every 100 ms from /proc and classed by its command line
// (--type=renderer, --type=gpu-process, --type=utility, ...; none: the browser process); the table
// gives each class's peak sum during the load, the renderer's idle level, and the peak of the sum
// over all of them. Chromium runs with --user-data-dir under /tmp, made fresh per model, so the
// first visit starts with an empty cache.
//   npm run bench:load:browser -- [--scale tiny|sd15] [--sdxl] [--no-sd] [--variant] [--visits 2]
//     [--idle-ms 2000] [--max-rss-gib 18] [--keep-profile] [--models-dir DIR] [--precision auto|f16|f32] [--out DIR]
// --max-rss-gib: the run is stopped (Chromium killed) when its processes hold more than this in all.
// CHROMIUM=/path picks the browser (default /usr/bin/chromium).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { build } from 'vite';
// @ts-expect-error plain ESM script without types
import { bundleShaders } from '../scripts/bundle-shaders.mjs';
import type { PageLoadRequest, PageLoadResult } from './browser/load_main.ts';
import { startCountServer, type TrafficCount } from './core/count_server.ts';
import { GIB, LOAD_USAGE, gib, parseLoadArgs, prepareModels, repoRoot, secs, table, writeResult, type BenchModel, type TargetRow, sourceState } from './core/load_report.ts';
import { TreeSampler, type PhaseStats } from './core/proc_rss.ts';

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  console.log(`npm run bench:load:browser -- [flags]\n${LOAD_USAGE}\n  --visits N            page visits per model (default 2: first, then a reload)\n  --idle-ms MS          idle sampling before each load (default 2000)\n  --max-rss-gib G       kill Chromium past this much RSS in all (default 18)\n  --keep-profile        keep the Chromium profile (its Cache API copy of the model) afterwards`);
  process.exit(0);
}
const a = parseLoadArgs(argv, ['--visits', '--idle-ms', '--max-rss-gib', '--keep-profile']);
const code = sourceState();
const num = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} needs a non-negative number, got ${JSON.stringify(argv[i + 1])}`);
  return v;
};
const visits = num('visits', 2);
const idleMs = num('idle-ms', 2000);
const maxRss = num('max-rss-gib', 18) * GIB;
const chromium = process.env.CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(chromium)) throw new Error(`${chromium}: Chromium not found (set CHROMIUM=/path/to/chrome)`);
const log = (m: string) => console.error(m);
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

const models = prepareModels(a, log);

// The page, built into a temporary folder (the repository's dist folders belong to other builds).
const pageDir = mkdtempSync(join(tmpdir(), 'fresco-load-page-'));
await build({
  root: join(repoRoot, 'bench/browser'),
  base: './',
  logLevel: 'warn',
  configFile: false,
  plugins: [{ name: 'fresco-wgsl-bundle', buildStart: () => bundleShaders() }],
  build: {
    outDir: pageDir,
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: join(repoRoot, 'bench/browser/load.html'), external: ['webgpu', /^node:/] },
  },
});

const server = await startCountServer([{ prefix: '/', dir: pageDir }, ...models.map((m) => ({ prefix: `/models/${m.name}/`, dir: m.folder.dir }))], { log });

interface VisitResult {
  visit: number;
  page: PageLoadResult | { ok: false; error: string };
  traffic: TrafficCount;
  /** The page's renderer: the renderer process that grew most during the load. */
  rendererPid: number | null;
  /** Its median over the idle window before the load. */
  rendererIdleBytes: number;
  /** Its peak during the load. */
  rendererPeakBytes: number;
  /** Every renderer process together (spare and WebUI renderers too): idle median, load peak. */
  renderersIdleBytes: number;
  renderersPeakBytes: number;
  gpuProcessPeakBytes: number;
  browserPeakBytes: number;
  /** Sum over all Chromium processes, peak during the load, and its median while idle. */
  totalPeakBytes: number;
  totalIdleBytes: number;
  /** The whole visit's phases (page open, idle, load). */
  phases: PhaseStats[];
}

interface ModelRun {
  model: BenchModel;
  visits: VisitResult[];
  processes: Record<string, string>;
  series: [number, number, number, number][];
  killed?: string;
  chromium: string;
}

async function runModel(model: BenchModel): Promise<ModelRun> {
  const profile = join(tmpdir(), `fresco-load-profile-${model.name}`);
  rmSync(profile, { recursive: true, force: true });
  const browser: Browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    protocolTimeout: 0,
    userDataDir: profile,
    args: ['--enable-unsafe-webgpu', '--no-sandbox'],
  });
  const version = await browser.version();
  const pid = browser.process()?.pid;
  if (!pid) throw new Error('puppeteer gave no browser process id');
  const sampler = new TreeSampler(pid).start('launch');
  let killed: string | undefined;
  // The guard: past --max-rss-gib, Chromium is killed and the visit records why.
  const guard = setInterval(() => {
    const last = sampler.samples[sampler.samples.length - 1];
    if (!killed && last && last.total > maxRss) {
      killed = `Chromium was killed at ${gib(last.total)} in all (over --max-rss-gib ${gib(maxRss)})`;
      log(killed);
      browser.process()?.kill('SIGKILL');
    }
  }, 100);
  const results: VisitResult[] = [];
  const url = `${server.origin}/models/${model.name}/`;
  try {
    const page: Page = await browser.newPage();
    page.setDefaultTimeout(0);
    page.on('console', (m) => m.text().startsWith('[load]') && log(`  page: ${m.text().slice(7)}`));
    page.on('pageerror', (e) => log(`  page error: ${(e as Error).message}`));
    for (let v = 1; v <= visits && !killed; v++) {
      log(`\n${model.name}, visit ${v}: ${url}`);
      server.reset();
      const first = sampler.stats().length;
      sampler.mark(`visit ${v}: page`);
      if (v === 1) await page.goto(`${server.origin}/load.html`);
      else await page.reload();
      await page.waitForFunction(() => typeof window.__load === 'function', { polling: 100 });
      const init = await page.evaluate(() => window.__loadInit!());
      sampler.mark(`visit ${v}: idle`);
      await sleep(idleMs);
      sampler.mark(`visit ${v}: load`);
      const req: PageLoadRequest = { url, mode: model.mode, precision: a.precision };
      let pageResult: VisitResult['page'];
      try {
        pageResult = await page.evaluate((r) => window.__load!(r), req);
      } catch (e) {
        pageResult = { ok: false, error: killed ?? `the page did not answer: ${(e as Error).message}` };
      }
      sampler.mark(`visit ${v}: after`);
      const phases = sampler.stats().slice(first);
      const idle = phases.find((p) => p.phase.endsWith('idle'))!;
      const load = phases.find((p) => p.phase.endsWith('load'))!;
      const traffic = server.traffic('/models/');
      // The page's renderer: of the renderers (not the browser UI's --top-chrome-webui one), the one
      // that grew most from its idle level during the load.
      const growth = (p: number) => (load.peakByPid[p] ?? 0) - (idle.medianByPid[p] ?? 0);
      const renderers = Object.keys(load.peakByPid)
        .map(Number)
        .filter((p) => sampler.classes.get(p) === 'renderer' && !sampler.commands.get(p)?.includes('--top-chrome-webui'));
      const rendererPid = renderers.length ? renderers.reduce((m, p) => (growth(p) > growth(m) ? p : m)) : null;
      const r: VisitResult = {
        visit: v,
        page: pageResult,
        traffic,
        rendererPid,
        rendererIdleBytes: rendererPid === null ? 0 : (idle.medianByPid[rendererPid] ?? 0),
        rendererPeakBytes: rendererPid === null ? 0 : (load.peakByPid[rendererPid] ?? 0),
        renderersIdleBytes: idle.medianByClass.renderer ?? 0,
        renderersPeakBytes: load.peakByClass.renderer ?? 0,
        gpuProcessPeakBytes: load.peakByClass['gpu-process'] ?? 0,
        browserPeakBytes: load.peakByClass.browser ?? 0,
        totalPeakBytes: load.peakTotal,
        totalIdleBytes: idle.medianTotal,
        phases: phases.filter((p) => !p.phase.endsWith('after')),
      };
      results.push(r);
      if (pageResult.ok) log(`  ${init.adapter}: ${secs(pageResult.loadMs)}, ${pageResult.precision}; renderer ${gib(r.rendererIdleBytes)} idle, ${gib(r.rendererPeakBytes)} peak; GPU process ${gib(r.gpuProcessPeakBytes)}; all ${gib(r.totalPeakBytes)}; fetched ${gib(traffic.weightBytes)} of weights${pageResult.cacheHits.length ? `, ${pageResult.cacheHits.length} files from the cache` : ''}`);
      else log(`  failed: ${pageResult.error}`);
    }
  } finally {
    clearInterval(guard);
    sampler.stop();
    await browser.close().catch(() => undefined);
    if (!argv.includes('--keep-profile')) rmSync(profile, { recursive: true, force: true });
  }
  const processes: Record<string, string> = {};
  for (const [p, c] of sampler.commands) processes[p] = c;
  return { model, visits: results, processes, series: sampler.series(500), ...(killed ? { killed } : {}), chromium: version };
}

const runs: ModelRun[] = [];
try {
  for (const m of models) runs.push(await runModel(m));
} finally {
  await server.close();
  rmSync(pageDir, { recursive: true, force: true });
}

// The table: each figure beside its target (issue 13; the targets are for --scale sd15).
const full = a.scale === 'sd15';
const rows: TargetRow[] = [];
for (const run of runs) {
  const sd = run.model.name === 'sd';
  if (run.killed) rows.push({ figure: `${run.model.name}: stopped`, value: run.killed, target: '', pass: false });
  for (const v of run.visits) {
    const w = `${run.model.name}, visit ${v.visit}`;
    const p = v.page;
    rows.push({ figure: `${w}: loads`, value: p.ok ? `yes (${p.precision})` : `no: ${p.error?.slice(0, 160)}`, target: sd ? '' : 'loads (SDXL-shaped 5.1 GB U-Net)', pass: !sd && full ? p.ok : null });
    if ('loadMs' in p) rows.push({ figure: `${w}: load time`, value: secs(p.loadMs), target: '', pass: null });
    const above = v.rendererPeakBytes - v.rendererIdleBytes;
    rows.push({ figure: `${w}: page's renderer RSS, peak above idle`, value: `${gib(above)} (${gib(v.rendererPeakBytes)} peak, ${gib(v.rendererIdleBytes)} idle)`, target: sd ? '≤ 1 GiB above idle' : '', pass: sd && full ? above <= GIB : null });
    rows.push({ figure: `${w}: all renderers, peak (idle)`, value: `${gib(v.renderersPeakBytes)} (${gib(v.renderersIdleBytes)})`, target: '', pass: null });
    rows.push({ figure: `${w}: GPU process RSS, peak`, value: gib(v.gpuProcessPeakBytes), target: '', pass: null });
    rows.push({ figure: `${w}: browser process RSS, peak`, value: gib(v.browserPeakBytes), target: '', pass: null });
    rows.push({ figure: `${w}: all Chromium processes, peak of the sum`, value: `${gib(v.totalPeakBytes)} (${gib(v.totalIdleBytes)} idle)`, target: sd ? '≤ 4.5 GiB' : '', pass: sd && full ? v.totalPeakBytes <= 4.5 * GIB : null });
    if (p.ok && 'gpuPeakBytes' in p) rows.push({ figure: `${w}: GPU memory, peak / after (Runtime)`, value: `${gib(p.gpuPeakBytes)} / ${gib(p.gpuLiveBytes)}`, target: '', pass: null });
    const t = v.traffic;
    const second = v.visit > 1;
    rows.push({
      figure: `${w}: bytes fetched, weights + small files`,
      value: `${gib(t.weightBytes)} (${t.weightBytes} B) + ${(t.smallBytes / 1024).toFixed(0)} KiB, ${t.requests} requests${p.ok && 'cacheHits' in p ? `; ${p.cacheHits.length} files from the Cache API` : ''}`,
      target: second && sd ? '0 weight bytes' : '',
      pass: second && sd && full ? t.weightBytes === 0 && p.ok : null,
    });
  }
}
const adapter = runs.flatMap((r) => r.visits).map((v) => ('adapter' in v.page ? v.page.adapter : null)).find(Boolean) ?? 'unknown adapter';
const chromiumVersion = runs[0]?.chromium ?? 'unknown';
const day = new Date().toISOString();
console.log(`\n**${adapter}**, ${chromiumVersion} headless, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${day.slice(0, 10)}, --scale ${a.scale}${full ? '' : ' (targets apply at --scale sd15)'}\n`);
console.log(table(rows));
writeResult(
  a,
  'browser',
  adapter,
  {
    bench: 'load (Chromium)',
    adapter,
    date: day,
    chromium: chromiumVersion,
    flags: ['--enable-unsafe-webgpu', '--no-sandbox'],
    host: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
    scale: a.scale,
    variant: a.variant,
    code,
    precision: a.precision,
    idleMs,
    sampleEveryMs: 100,
    models: runs.map((r) => ({
      name: r.model.name,
      mode: r.model.mode,
      folder: r.model.folder.dir,
      weightBytes: r.model.folder.weightBytes,
      params: r.model.folder.params,
      files: r.model.folder.files,
      ...(r.killed ? { killed: r.killed } : {}),
      visits: r.visits,
      processes: r.processes,
      seriesColumns: ['t s', 'renderer MiB', 'gpu-process MiB', 'all MiB'],
      series: r.series,
    })),
    targets: rows.filter((r) => r.pass !== null),
  },
  log,
);
