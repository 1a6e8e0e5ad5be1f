// The browser side of `npm run bench:browser`: the same bench as bench/generate.ts, with the model
// read by URL. Options come from the query string; the result is left on window.__benchResult (or
// the failure on window.__benchError) for the driver, and progress goes to the console.
import { getGpu } from '../../src/gpu/device.ts';
import { Runtime } from '../../src/gpu/runtime.ts';
import { urlFolderReader } from '../../src/io/url_reader.ts';
import { loadLdmFrom } from '../../src/pipelines/ldm_folder.ts';
import { runGenerateBench, type GenerateBenchResult } from '../core/generate_bench.ts';

declare global {
  interface Window {
    __benchResult?: GenerateBenchResult;
    __benchError?: string;
  }
}

const q = new URLSearchParams(location.search);
const num = (name: string, fallback: number) => {
  const v = q.get(name);
  return v === null ? fallback : Number(v);
};
const log = (m: string) => {
  console.log(`[bench] ${m}`);
  document.getElementById('log')!.textContent += `\n${m}`;
};

async function main(): Promise<void> {
  const modelUrl = q.get('model') ?? '/weights/fashion-ldm/';
  const tStart = performance.now();
  const gpu = await getGpu();
  const deviceMs = performance.now() - tStart;
  const rt = new Runtime(gpu);
  log(`adapter: ${gpu.adapterName}`);
  const cardRes = await fetch(new URL('fresco.json', new URL(modelUrl, location.href)));
  const card = cardRes.ok ? ((await cardRes.json()) as { class_names?: string[]; null_class?: number }) : {};
  const ua = navigator.userAgent.match(/(?:Headless)?Chrom(?:e|ium)\/[\d.]+/)?.[0] ?? navigator.userAgent;
  // The Cache API would make a second run's load a cache read; the bench wants the download.
  const reader = urlFolderReader(modelUrl, { cache: false });
  window.__benchResult = await runGenerateBench(
    {
      rt,
      gpu,
      deviceMs,
      load: () => loadLdmFrom(rt, reader, modelUrl.replace(/^\/+|\/+$/g, '')),
      model: modelUrl.replace(/^\/+|\/+$/g, ''),
      card,
      runtimeName: `${ua} (browser WebGPU)`,
      log,
    },
    {
      steps: num('steps', 5),
      batch: num('batch', 1),
      repeat: num('repeat', 3),
      genRepeat: num('genRepeat', 1),
      guidance: num('guidance', 3),
      classLabel: num('class', 7),
      seed: num('seed', 3),
      profileRuns: num('profileRuns', 2),
    },
  );
  log('done');
}

main().catch((e: unknown) => {
  window.__benchError = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
  log(`failed: ${window.__benchError}`);
});
