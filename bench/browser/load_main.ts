// The browser side of `npm run bench:load:browser` (bench/load-browser.ts): the driver calls
// window.__loadInit() (the WebGPU device, outside the timed load), samples the idle renderer, then
// window.__load(): loadModel(url) for a pipeline, or a U-Net folder alone (bench/core/load_unet.ts),
// timed, with the GPU memory the runtime accounted for (Runtime.peakBytes: every buffer made through
// rt.createBuffer). The Cache API is on (loadModel's default), so a reload loads from it.
import { getGpu, loadModel, Runtime, urlFolderReader, type GpuContext } from '../../src/index.ts';
import { loadUnetFrom } from '../core/load_unet.ts';
import type { Precision } from '../../src/models/precision.ts';

export interface PageLoadRequest {
  url: string;
  mode: 'pipeline' | 'unet';
  precision: Precision;
}

export interface PageLoadResult {
  ok: boolean;
  error?: string;
  loadMs: number;
  adapter: string;
  precision?: string;
  /** Runtime.peakBytes after the load (weights and anything transient the load made). */
  gpuPeakBytes?: number;
  /** Runtime.liveBytes after the load (the weights). */
  gpuLiveBytes?: number;
  cacheHits: string[];
  /** Files onProgress reported, with their last (loaded, total). */
  progress: Record<string, [number, number]>;
  /** navigator.storage.estimate() after the load. */
  storage?: { usage?: number; quota?: number };
  userAgent: string;
}

declare global {
  interface Window {
    __loadInit?: () => Promise<{ adapter: string; features: string[] }>;
    __load?: (r: PageLoadRequest) => Promise<PageLoadResult>;
  }
}

const log = (m: string) => {
  console.log(`[load] ${m}`);
  document.getElementById('log')!.textContent += `\n${m}`;
};
const message = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

let gpu: GpuContext | null = null;

window.__loadInit = async () => {
  gpu = await getGpu();
  log(`adapter: ${gpu.adapterName}`);
  return { adapter: gpu.adapterName, features: [...gpu.features] };
};

window.__load = async (r) => {
  gpu ??= await getGpu();
  const cacheHits: string[] = [];
  const progress: Record<string, [number, number]> = {};
  const reported = new Set<string>();
  const onProgress = (loaded: number, total: number, file: string) => {
    progress[file] = [loaded, total];
    if (!reported.has(file)) {
      reported.add(file);
      log(`reading ${file} (${total} bytes)`);
    }
  };
  const onCacheHit = (file: string) => cacheHits.push(file);
  const base = { adapter: gpu.adapterName, cacheHits, progress, userAgent: navigator.userAgent };
  const t0 = performance.now();
  try {
    let precision: string;
    let rt: Runtime;
    if (r.mode === 'pipeline') {
      const model = await loadModel(r.url, { precision: r.precision, onProgress, onCacheHit });
      precision = model.precision;
      rt = model.rt;
    } else {
      rt = new Runtime(gpu);
      const unet = await loadUnetFrom(rt, urlFolderReader(r.url, { onProgress, onCacheHit }), r.url, { precision: r.precision, onProgress });
      precision = unet.precision.description;
    }
    const loadMs = performance.now() - t0;
    log(`loaded in ${(loadMs / 1000).toFixed(1)} s (${precision})`);
    const storage = await navigator.storage?.estimate?.().catch(() => undefined);
    return { ...base, ok: true, loadMs, precision, gpuPeakBytes: rt.peakBytes, gpuLiveBytes: rt.liveBytes, storage: storage ? { usage: storage.usage, quota: storage.quota } : undefined };
  } catch (e) {
    const loadMs = performance.now() - t0;
    log(`failed after ${(loadMs / 1000).toFixed(1)} s: ${message(e)}`);
    return { ...base, ok: false, error: message(e), loadMs };
  }
};

log('ready');
