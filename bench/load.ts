// `npm run bench:load`: how long loading a full-size model takes in Node, and in how much memory.
// Generates (or reuses) a Stable Diffusion 1.5-shaped pipeline folder with fp16 random weights
// (bench/core/model_gen.ts; --sdxl adds an SDXL-shaped U-Net, one 5.1 GB file), serves it over HTTP
// from this process (bench/core/count_server.ts, which counts the bytes it sends), and loads it in a
// fresh child process twice: from the folder path and from the http:// URL, with loadModel (the
// U-Net alone through bench/core/load_unet.ts). Each child reports the load's wall time, its peak
// RSS (VmHWM of /proc/self/status: the whole process's high-water mark, taken after the WebGPU device
// exists, so device setup is in the "before" figure too), and the GPU memory Fresco's Runtime
// accounted for (Runtime.peakBytes / liveBytes). On a CPU adapter (lavapipe) GPU buffers are host
// memory, so the RSS includes them.
//   npm run bench:load -- [--scale tiny|sd15] [--sdxl] [--no-sd] [--variant] [--models-dir DIR] [--precision auto|f16|f32] [--out DIR]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startCountServer, type TrafficCount } from './core/count_server.ts';
import { LOAD_USAGE, parseLoadArgs, prepareModels, secs, gib, table, writeResult, type BenchModel, type TargetRow, sourceState } from './core/load_report.ts';

interface ChildRequest {
  source: string;
  mode: 'pipeline' | 'unet';
  precision: 'auto' | 'f16' | 'f32';
}

interface ChildResult {
  ok: boolean;
  error?: string;
  adapter: string;
  precision?: string;
  loadMs: number;
  /** VmRSS once the device exists, before the load. */
  rssBeforeBytes: number;
  /** VmHWM after the load (peak of the whole process). */
  peakRssBytes: number;
  rssAfterBytes: number;
  gpuPeakBytes?: number;
  gpuLiveBytes?: number;
  node: string;
}

const MARK = '@@load-result ';

function procStatus(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The child: one load, its figures on stdout. */
async function child(req: ChildRequest): Promise<void> {
  const { getGpu } = await import('../src/gpu/device.ts');
  const { Runtime } = await import('../src/gpu/runtime.ts');
  const { loadModel } = await import('../src/api.ts');
  const { nodeFolderReader } = await import('../src/io/model_folder.ts');
  const { urlFolderReader } = await import('../src/io/url_reader.ts');
  const { loadUnetFrom } = await import('./core/load_unet.ts');
  const gpu = await getGpu();
  const rssBeforeBytes = procStatus('VmRSS');
  const base = { adapter: gpu.adapterName, rssBeforeBytes, node: process.version };
  const t0 = performance.now();
  let out: ChildResult;
  try {
    let rt: InstanceType<typeof Runtime>;
    let precision: string;
    if (req.mode === 'pipeline') {
      const model = await loadModel(req.source, { precision: req.precision });
      rt = model.rt;
      precision = model.precision;
    } else {
      rt = new Runtime(gpu);
      const reader = /^https?:\/\//.test(req.source) ? urlFolderReader(req.source) : nodeFolderReader(req.source);
      precision = (await loadUnetFrom(rt, reader, req.source, { precision: req.precision })).precision.description;
    }
    const loadMs = performance.now() - t0;
    out = { ...base, ok: true, loadMs, precision, peakRssBytes: procStatus('VmHWM'), rssAfterBytes: procStatus('VmRSS'), gpuPeakBytes: rt.peakBytes, gpuLiveBytes: rt.liveBytes };
  } catch (e) {
    const loadMs = performance.now() - t0;
    out = { ...base, ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e), loadMs, peakRssBytes: procStatus('VmHWM'), rssAfterBytes: procStatus('VmRSS') };
  }
  process.stdout.write(`${MARK}${JSON.stringify(out)}\n`);
  // dawn.node can keep the loop alive; the figures are out.
  process.exit(0);
}

/** Runs one load in a fresh Node process (its own RSS and device), passing stderr through. */
function runChild(req: ChildRequest): Promise<ChildResult> {
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(req)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', fail);
    p.on('close', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith(MARK));
      if (line) ok(JSON.parse(line.slice(MARK.length)) as ChildResult);
      else fail(new Error(`the load process ended (${signal ?? `exit ${code}`}) without a result${out ? `; its output: ${out.slice(-2000)}` : ''}`));
    });
  });
}

interface SourceRun {
  source: 'folder' | 'url';
  location: string;
  result: ChildResult | { ok: false; error: string };
  traffic?: TrafficCount;
}

async function main(): Promise<void> {
  const ci = process.argv.indexOf('--child');
  if (ci >= 0) return child(JSON.parse(process.argv[ci + 1]!) as ChildRequest);
  if (process.argv.includes('--help')) {
    console.log(`npm run bench:load -- [flags]\n${LOAD_USAGE}`);
    return;
  }
  const a = parseLoadArgs(process.argv.slice(2));
  const code = sourceState();
  const log = (m: string) => console.error(m);
  const models = prepareModels(a, log);
  const server = await startCountServer(models.map((m) => ({ prefix: `/models/${m.name}/`, dir: m.folder.dir })), { log });
  const runs: { model: BenchModel; sources: SourceRun[] }[] = [];
  try {
    for (const model of models) {
      const sources: SourceRun[] = [];
      for (const source of ['folder', 'url'] as const) {
        const prefix = `/models/${model.name}/`;
        const location = source === 'folder' ? model.folder.dir : `${server.origin}${prefix}`;
        log(`\n${model.name} from the ${source}: ${location}`);
        server.reset();
        let result: SourceRun['result'];
        try {
          result = await runChild({ source: location, mode: model.mode, precision: a.precision });
        } catch (e) {
          result = { ok: false, error: (e as Error).message };
        }
        const traffic = source === 'url' ? server.traffic(prefix) : undefined;
        if (result.ok) log(`  ${secs(result.loadMs)}, peak RSS ${gib(result.peakRssBytes)} (${gib(result.rssBeforeBytes)} before), GPU peak ${gib(result.gpuPeakBytes)} (${result.precision})`);
        else log(`  failed: ${result.error}`);
        sources.push({ source, location, result, ...(traffic ? { traffic } : {}) });
      }
      runs.push({ model, sources });
    }
  } finally {
    await server.close();
  }

  const adapter = runs.flatMap((r) => r.sources).map((s) => ('adapter' in s.result ? s.result.adapter : null)).find(Boolean) ?? 'unknown adapter';
  const rows: TargetRow[] = [];
  for (const { model, sources } of runs) {
    for (const s of sources) {
      const r = s.result;
      const what = `${model.name} from ${s.source}`;
      const isSdxl = model.name === 'sdxl-unet';
      const full = a.scale === 'sd15';
      rows.push({ figure: `${what}: loads`, value: r.ok ? 'yes' : `no: ${r.error!.slice(0, 160)}`, target: isSdxl ? 'loads (SDXL-shaped 5.1 GB U-Net)' : '', pass: isSdxl && full ? r.ok : null });
      if (!('loadMs' in r)) continue;
      rows.push({ figure: `${what}: load time`, value: secs(r.loadMs), target: '', pass: null });
      rows.push({ figure: `${what}: peak RSS (VmHWM)`, value: `${gib(r.peakRssBytes)} (${gib(r.rssBeforeBytes)} before the load)`, target: '', pass: null });
      if (r.ok) rows.push({ figure: `${what}: GPU memory, peak / after (Runtime)`, value: `${gib(r.gpuPeakBytes)} / ${gib(r.gpuLiveBytes)}`, target: '', pass: null });
      if (s.traffic) rows.push({ figure: `${what}: bytes fetched, weights + small files`, value: `${gib(s.traffic.weightBytes)} + ${(s.traffic.smallBytes / 1024).toFixed(0)} KiB in ${s.traffic.requests} requests`, target: '', pass: null });
    }
  }
  const day = new Date().toISOString();
  console.log(`\n**${adapter}**, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${day.slice(0, 10)}, --scale ${a.scale}${a.scale === 'sd15' ? '' : ' (targets apply at --scale sd15)'}\n`);
  console.log(table(rows));
  const result = {
    bench: 'load (Node)',
    adapter,
    date: day,
    node: process.version,
    host: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length },
    scale: a.scale,
    variant: a.variant,
    code,
    precision: a.precision,
    models: runs.map(({ model, sources }) => ({
      name: model.name,
      mode: model.mode,
      folder: model.folder.dir,
      weightBytes: model.folder.weightBytes,
      params: model.folder.params,
      files: model.folder.files,
      sources,
    })),
    targets: rows.filter((r) => r.pass !== null),
  };
  writeResult(a, 'node', adapter, result, log);
}

await main();
