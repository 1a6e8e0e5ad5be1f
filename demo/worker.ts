// The demo's generation worker: the library runs here unchanged (no DOM, no window), so the page
// stays responsive while the GPU works and only previews and results cross over.
import { generate, loadModel, type Model } from '../src/index.ts';
import { gridColumns } from './grid.ts';
import type { FromWorker, ToWorker } from './protocol.ts';

let model: Model | null = null;
let running: AbortController | null = null;

function post(msg: FromWorker, transfer: Transferable[] = []): void {
  (self as unknown as Worker).postMessage(msg, transfer);
}

function fail(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  post(err.name === 'CancelledError' ? { type: 'cancelled' } : { type: 'error', name: err.name, message: err.message });
}

async function handle(msg: ToWorker): Promise<void> {
  if (msg.type === 'cancel') return void running?.abort();
  if (msg.type === 'load') {
    running?.abort();
    model?.destroy();
    model = null;
    const cacheHits: string[] = [];
    model = await loadModel(msg.url, {
      precision: msg.precision,
      ...(msg.preset !== undefined ? { preset: msg.preset } : {}),
      onProgress: (loaded, total, file) => post({ type: 'progress', loaded, total, file }),
      onCacheHit: (file) => {
        cacheHits.push(file);
        post({ type: 'cache-hit', file });
      },
      // The page shows these: a file that is not kept is downloaded again on every visit, which
      // the user should hear about rather than find out. (The StorageError itself does not
      // survive structured cloning as its class, so its message travels.)
      onStorageWarning: ({ file, url, bytesNeeded, usage, quota, error }) =>
        post({ type: 'storage-warning', warning: { file, url, bytesNeeded, usage, quota, message: error.message } }),
      // No onPersist: navigator.storage.persist() exists only in a window, so the page asks it.
    });
    const { kind, classNames, numClasses, adapterName, precision, defaults, imageSize, weightBytes } = model;
    const preset = model.info.preset?.name ?? null;
    return post({ type: 'loaded', info: { kind, classNames, numClasses, adapterName, precision, defaults, imageSize, preset, cacheHits, weightBytes } });
  }
  if (!model) throw new Error('no model loaded');
  const ctl = (running = new AbortController());
  // The page asks for one class or prompt, so the batch is the count: a near-square grid (2x2 for
  // 4) shows each image larger than one long row.
  const columns = gridColumns(msg.options.count ?? 1);
  try {
    const r = await generate(model, {
      ...msg.options,
      columns,
      signal: ctl.signal,
      onStep: (e) => post({ type: 'step', ...e }, e.preview ? [e.preview.data.buffer as ArrayBuffer] : []),
    });
    post({ type: 'done', image: r.image, steps: r.steps, stepMs: r.stepMs, totalMs: r.totalMs, seed: r.seed }, [r.image.data.buffer as ArrayBuffer]);
  } finally {
    if (running === ctl) running = null;
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => void handle(ev.data).catch(fail);
