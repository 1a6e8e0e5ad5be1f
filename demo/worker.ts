// The demo's generation worker: the library runs here unchanged (no DOM, no window), so the page
// stays responsive while the GPU works and only previews and results cross over.
import { generate, loadModel, type Model } from '../src/index.ts';
import { parseSafetensors } from '../src/io/safetensors.ts';
import { readInversion } from '../src/io/textual_inversion.ts';
import { gridColumns } from './grid.ts';
import type { AdapterRequest, FromWorker, ToWorker } from './protocol.ts';

let model: Model | null = null;
let running: AbortController | null = null;

function post(msg: FromWorker, transfer: Transferable[] = []): void {
  (self as unknown as Worker).postMessage(msg, transfer);
}

function fail(e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  post(err.name === 'CancelledError' ? { type: 'cancelled' } : { type: 'error', name: err.name, message: err.message });
}

/**
 * A LoRA or embedding change, answered by one 'adapter-done'. A failure is reported there rather
 * than as a page-wide error, since the model stays loaded and usable (the library checks a file's
 * layers against the model before it merges any). Nothing is said about a model replaced since.
 */
async function adapter(msg: AdapterRequest): Promise<void> {
  const m = model;
  let tokens: string[] | undefined;
  let error: { name: string; message: string } | undefined;
  try {
    if (!m) throw new Error('no model loaded');
    if (msg.type === 'lora-load') await m.loadLora(msg.bytes, { name: msg.name, scale: msg.scale });
    else if (msg.type === 'lora-scales') await m.setLoraScales(msg.scales);
    else if (msg.type === 'lora-unload') await m.unloadLora(msg.name);
    else {
      // Bytes carry no file name, so the library would name a token-less file (A1111's
      // emb_params, SDXL's clip_l + clip_g) 'lora'; A1111 names it after the file, as here.
      const bytes = new Uint8Array(msg.bytes);
      const own = readInversion(parseSafetensors(bytes, msg.file), msg.file).token;
      const token = msg.token || (own ?? msg.file.replace(/\.safetensors$/i, ''));
      tokens = await m.loadTextualInversion(bytes, { token });
    }
  } catch (e) {
    error = e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) };
  }
  if (m !== model) return;
  post({ type: 'adapter-done', id: msg.id, loras: m?.loraAdapters ?? [], ...(tokens ? { tokens } : {}), ...(error ? { error } : {}) });
}

async function handle(msg: ToWorker): Promise<void> {
  if (msg.type === 'cancel') return void running?.abort();
  if (msg.type === 'lora-load' || msg.type === 'lora-scales' || msg.type === 'lora-unload' || msg.type === 'embedding-load') return adapter(msg);
  if (msg.type === 'load') {
    running?.abort();
    model?.destroy();
    model = null;
    const cacheHits: string[] = [];
    model = await loadModel(msg.url, {
      precision: msg.precision,
      ...(msg.weights ? { weights: msg.weights } : {}),
      ...(msg.preset !== undefined ? { preset: msg.preset } : {}),
      ...(msg.controlnet?.length ? { controlnet: msg.controlnet } : {}),
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
    const controlnets = model.info.controlnets ?? 0;
    return post({ type: 'loaded', info: { kind, classNames, numClasses, adapterName, precision, defaults, imageSize, preset, cacheHits, weightBytes, controlnets } });
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
      onCompile: (e) => post({ type: 'compile', ...e }),
    });
    post({ type: 'done', image: r.image, steps: r.steps, stepMs: r.stepMs, totalMs: r.totalMs, seed: r.seed }, [r.image.data.buffer as ArrayBuffer]);
  } finally {
    if (running === ctl) running = null;
  }
}

self.onmessage = (ev: MessageEvent<ToWorker>) => void handle(ev.data).catch(fail);
