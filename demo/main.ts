// The demo page: controls, a WebGPU check, and a worker that runs the library. The page itself
// never touches the GPU beyond asking whether an adapter exists, so a long generation cannot
// freeze it. Tests drive it through the same controls and read body[data-state] and
// window.frescoDemo.
//
// The stored-models panel calls the library's Cache API functions here, in the page: the page
// and its worker share one CacheStorage, so what the worker stores while loading is listed here,
// and what is deleted here is fetched again by the worker's next load.
import { SCHEDULER_NAMES, clearStoredModels, deleteStoredModel, listStoredModels, type RgbaImage, type StoredModel, type WeightFormat } from '../src/index.ts';
import { gridColumns } from './grid.ts';
import type { AdapterRequest, FromWorker, LoraInfo, ModelInfo, StorageWarningInfo, ToWorker } from './protocol.ts';
import { isPresetName, type PresetName } from '../src/pipelines/presets.ts';

type State = 'starting' | 'nogpu' | 'loading' | 'ready' | 'running' | 'done' | 'cancelled' | 'error';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'),
  customRow: $<HTMLFieldSetElement>('custom-row'),
  customModel: $<HTMLInputElement>('custom-model'),
  customControlnet: $<HTMLInputElement>('custom-controlnet'),
  preset: $<HTMLSelectElement>('preset'),
  customLoad: $<HTMLButtonElement>('custom-load'),
  cls: $<HTMLSelectElement>('class'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  negative: $<HTMLInputElement>('negative'),
  seed: $<HTMLInputElement>('seed'),
  count: $<HTMLInputElement>('count'),
  steps: $<HTMLInputElement>('steps'),
  guidance: $<HTMLInputElement>('guidance'),
  scheduler: $<HTMLSelectElement>('scheduler'),
  previewEvery: $<HTMLInputElement>('preview-every'),
  form: $<HTMLFormElement>('controls'),
  generate: $<HTMLButtonElement>('generate'),
  cancel: $<HTMLButtonElement>('cancel'),
  image: $<HTMLCanvasElement>('image'),
  caption: $('caption'),
  download: $<HTMLButtonElement>('download'),
  output: $('output'),
  progress: $<HTMLProgressElement>('progress'),
  status: $('status'),
  adapter: $('adapter'),
  precision: $('precision'),
  stepMs: $('step-ms'),
  totalMs: $('total-ms'),
  weightBytes: $('weight-bytes'),
  nogpu: $('nogpu'),
  warnings: $<HTMLUListElement>('storage-warnings'),
  persist: $('persist'),
  storedList: $<HTMLUListElement>('stored-list'),
  storedNote: $('stored-note'),
  storedClear: $<HTMLButtonElement>('stored-clear'),
  loraRow: $<HTMLFieldSetElement>('lora-row'),
  loraScale: $<HTMLInputElement>('lora-scale'),
  loraScaleRange: $<HTMLInputElement>('lora-scale-range'),
  loraFile: $<HTMLInputElement>('lora-file'),
  loraList: $<HTMLUListElement>('lora-list'),
  loraNote: $('lora-note'),
  loraError: $('lora-error'),
  embeddingRow: $<HTMLFieldSetElement>('embedding-row'),
  embeddingToken: $<HTMLInputElement>('embedding-token'),
  embeddingFile: $<HTMLInputElement>('embedding-file'),
  embeddingList: $<HTMLUListElement>('embedding-list'),
  embeddingNote: $('embedding-note'),
  embeddingError: $('embedding-error'),
  controlRow: $<HTMLFieldSetElement>('control-row'),
  controlFile: $<HTMLInputElement>('control-file'),
  controlPreview: $<HTMLCanvasElement>('control-preview'),
  controlNote: $('control-note'),
  controlScale: $<HTMLInputElement>('control-scale'),
  controlStart: $<HTMLInputElement>('control-start'),
  controlEnd: $<HTMLInputElement>('control-end'),
};

/**
 * What tests read: counts, the last error and download, next to body[data-state]; the storage
 * warnings of the last load, the answer to persist(), and the stored models last listed; the
 * LoRAs merged and the embedding tokens added to the loaded model.
 */
const demo = {
  previews: 0,
  steps: 0,
  cacheHits: [] as string[],
  error: null as string | null,
  info: null as ModelInfo | null,
  download: null as string | null,
  storageWarnings: [] as StorageWarningInfo[],
  persisted: null as boolean | null,
  stored: null as StoredModel[] | null,
  loras: [] as LoraInfo[],
  tokens: [] as string[],
  /** The control image picked ([width, height]), or null. */
  controlImage: null as [number, number] | null,
};
(window as unknown as { frescoDemo: typeof demo }).frescoDemo = demo;

const params = new URLSearchParams(location.search);
const precision = (params.get('precision') ?? 'auto') as 'auto' | 'f16' | 'f32';
// The U-Net's weights quantized at load (?weights=q8 or q4); loadModel names a bad value.
const weights = (params.get('weights') ?? undefined) as WeightFormat | undefined;

function setState(s: State, message?: string): void {
  document.body.dataset.state = s;
  if (message !== undefined) ui.status.textContent = message;
  ui.generate.disabled = s !== 'ready' && s !== 'done' && s !== 'cancelled' && s !== 'error';
  ui.cancel.disabled = s !== 'running';
  // Only a finished image: mid-run or after a cancel the canvas holds a preview.
  ui.download.disabled = s !== 'done';
  ui.model.disabled = s === 'running' || s === 'loading' || s === 'nogpu';
  ui.customRow.disabled = ui.model.disabled;
  syncStoredButtons();
  syncAdapters();
}

function showNoGpu(why: string): void {
  ui.nogpu.hidden = false;
  ui.nogpu.textContent = `WebGPU is not available: ${why} Fresco needs a browser with WebGPU, such as a recent Chrome or Edge (Chromium: start it with --enable-unsafe-webgpu). Safari and Firefox have it behind flags in some versions.`;
  setState('nogpu', 'WebGPU is not available in this browser.');
}

const imageData = (img: RgbaImage) => new ImageData(img.data as Uint8ClampedArray<ArrayBuffer>, img.width, img.height);

/** The largest size, in CSS pixels, the image grid is scaled up to. */
const MAX_SHOWN = 512;

/**
 * Sizes the canvas to `n` images at their native size, laid out as the worker sends them, and
 * clears it (the grey background shows until a preview arrives).
 */
function layout(n: number): void {
  const [h, w] = demo.info!.imageSize;
  const cols = gridColumns(n);
  ui.image.width = cols * w;
  ui.image.height = Math.ceil(n / cols) * h;
  fit();
}

/**
 * Scales the canvas up by the largest whole factor that fits the column, so 28 or 32 px images
 * stay crisp (image-rendering: pixelated) and even; a grid wider than the column is shown 1:1
 * and scrolls rather than shrinking below its native size.
 */
function fit(): number {
  const room = Math.min(MAX_SHOWN, ui.output.clientWidth);
  const k = Math.max(1, Math.floor(Math.min(room / ui.image.width, MAX_SHOWN / ui.image.height)));
  ui.image.style.width = `${ui.image.width * k}px`;
  return k;
}

const scratch = document.createElement('canvas');

/** A preview is latent-sized (1/4 to 1/8 of the image): stretched over the canvas, hard-edged like the images. */
function drawPreview(img: RgbaImage): void {
  scratch.width = img.width;
  scratch.height = img.height;
  scratch.getContext('2d')!.putImageData(imageData(img), 0, 0);
  const ctx = ui.image.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, ui.image.width, ui.image.height);
  ctx.drawImage(scratch, 0, 0, ui.image.width, ui.image.height);
}

/**
 * Bytes in decimal units, as browsers' storage settings and download sizes show them: 850 kB,
 * 27.3 MB, 1.7 GB, 11 GB. '?' where a size is unknown.
 */
function size(b: number | null): string {
  if (b === null) return '?';
  const [n, unit] = b >= 1e9 ? [b / 1e9, 'GB'] : b >= 1e6 ? [b / 1e6, 'MB'] : b >= 1e3 ? [b / 1e3, 'kB'] : [b, 'B'];
  return `${unit === 'B' ? n : n < 100 ? n.toFixed(1).replace(/\.0$/, '') : n.toFixed(0)} ${unit}`;
}

const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

function applyModel(info: ModelInfo): void {
  demo.info = info;
  ui.adapter.textContent = info.adapterName;
  ui.precision.textContent = info.precision;
  ui.weightBytes.textContent = size(info.weightBytes);
  const text = info.kind === 'text';
  $('prompt-row').hidden = !text;
  $('negative-row').hidden = !text;
  $('class-row').hidden = text;
  ui.controlRow.hidden = ui.controlRow.disabled = !info.controlnets;
  ui.cls.replaceChildren(
    ...(info.classNames ?? Array.from({ length: (info.numClasses ?? 1) - 1 }, (_, i) => String(i))).map((name, i) => new Option(`${i} ${name}`, String(i))),
  );
  ui.steps.value = String(info.defaults.steps);
  ui.guidance.value = String(info.defaults.guidance);
  // What an emptied field stands for.
  ui.steps.placeholder = String(info.defaults.steps);
  ui.guidance.placeholder = String(info.defaults.guidance);
  ui.scheduler.value = info.defaults.scheduler;
  layout(1);
  ui.caption.textContent = 'Image';
}

/** What the canvas shows, for the progress text and the download's file name. */
let run: { model: string; subject: string; count: number; steps: number; seed?: number } | null = null;

/** A file-name-safe fragment: lower-case words joined by dashes, a few words at most. */
function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40).replace(/^-+|-+$/g, '') || 'image';
}

function download(): void {
  if (!run || run.seed === undefined) return;
  const name = `fresco-${run.model}-${slug(run.subject)}-seed${run.seed}${run.count > 1 ? `-x${run.count}` : ''}.png`;
  ui.image.toBlob((blob) => {
    if (!blob) return void (ui.status.textContent = 'Could not encode the PNG.');
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.click();
    // The browser has taken the blob once the click's download starts; a minute is ample.
    setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    demo.download = name;
  }, 'image/png');
}

let worker: Worker;

function send(msg: ToWorker, transfer: Transferable[] = []): void {
  worker.postMessage(msg, transfer);
}

/**
 * What the picker names: a model served with the demo (models/<name>/), a Hub repository
 * (hf:owner/name, from the list or typed), or any URL typed in the custom field, which the
 * library resolves against this page.
 */
function chosenModel(): { source: string; name: string; preset?: PresetName | null; controlnet?: string[] } | null {
  const v = ui.model.value;
  // A relative URL is the page's, not the worker script's.
  const resolveSource = (s: string) => (/^hf:/i.test(s) ? s : new URL(s, location.href).href);
  if (v !== 'custom') {
    // 'model+controlnet': a served model with a served ControlNet.
    const [base, net] = v.split('+');
    const served = (name: string) => (name.startsWith('hf:') ? name : new URL(`models/${name}/`, location.href).href);
    return { source: served(base!), name: base!, ...(net ? { controlnet: [served(net)] } : {}) };
  }
  const typed = ui.customModel.value.trim();
  if (!typed) return null;
  const source = resolveSource(typed);
  const p = ui.preset.value;
  const net = ui.customControlnet.value.trim();
  return { source, name: typed, ...(p === 'none' ? { preset: null } : isPresetName(p) ? { preset: p } : {}), ...(net ? { controlnet: [resolveSource(net)] } : {}) };
}

/** The control image picked, as RGBA pixels (kept in the page; a copy goes with each generation). */
let controlPixels: { width: number; height: number; data: Uint8ClampedArray } | null = null;

/** Reads the picked image file into pixels (any format the browser decodes) and shows it. */
async function pickControlImage(): Promise<void> {
  const file = ui.controlFile.files?.[0];
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    const c = ui.controlPreview;
    c.width = bitmap.width;
    c.height = bitmap.height;
    const ctx = c.getContext('2d', { willReadFrequently: true })!;
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const d = ctx.getImageData(0, 0, c.width, c.height);
    controlPixels = { width: d.width, height: d.height, data: d.data };
    demo.controlImage = [d.width, d.height];
    c.hidden = false;
    ui.controlNote.textContent = `${file.name}: ${d.width}×${d.height} px`;
  } catch (e) {
    controlPixels = null;
    demo.controlImage = null;
    ui.controlPreview.hidden = true;
    ui.controlNote.textContent = `Could not read ${file.name} as an image (${errText(e)}).`;
  }
}

/** The name of the model last asked for, for the download's file name. */
let loadedName = '';

/** The current load's files as the worker reports them: bytes delivered of each, of its size (0: unknown). */
const loadFiles = new Map<string, { loaded: number; total: number }>();
/** Files of the current load read from browser storage instead of the network. */
const fromStorage = new Set<string>();

/** The sum over the files reported so far (a file of unknown size counts what has arrived). */
function loadTotals(): { loaded: number; total: number } {
  let loaded = 0;
  let total = 0;
  for (const f of loadFiles.values()) {
    loaded += f.loaded;
    total += f.total || f.loaded;
  }
  return { loaded, total };
}

let persistAsked = false;

/**
 * Asks once, before the first load, that the browser keep this site's storage (models are GBs,
 * and best-effort storage may be evicted under pressure). Only a window can ask: the worker's
 * navigator.storage has no persist(). The load does not wait for the answer, since a browser may
 * put the question to the user (Firefox) and leave it open; Chromium answers at once.
 */
function askPersist(): void {
  if (persistAsked) return;
  persistAsked = true;
  const storage = navigator.storage as StorageManager | undefined;
  if (!storage?.persist) return void (ui.persist.textContent = 'storage may be evicted (this browser cannot make it persistent)');
  ui.persist.textContent = 'storage: asking the browser to keep it…';
  storage.persist().then(
    (granted) => {
      demo.persisted = granted;
      ui.persist.textContent = granted ? 'storage: persistent' : 'storage may be evicted (the browser did not make it persistent)';
    },
    (e) => void (ui.persist.textContent = `storage may be evicted (persist() failed: ${errText(e)})`),
  );
}

/**
 * One line per file that could not be stored, with the sizes. A file read twice in a load (a
 * config) is warned about twice: its line is replaced, not repeated.
 */
function showStorageWarning(w: StorageWarningInfo): void {
  demo.storageWarnings.push(w);
  console.warn(`Fresco demo: ${w.message}`);
  const used = w.usage !== null && w.quota !== null ? `${size(w.usage)} of ${size(w.quota)} used` : 'storage use unknown';
  const li = document.createElement('li');
  li.dataset.url = w.url;
  li.dataset.file = w.file;
  const why = document.createElement('details');
  const summary = document.createElement('summary');
  summary.textContent = 'details';
  why.append(summary, w.message);
  li.append(`Could not store ${w.file}: needs ${size(w.bytesNeeded)}, ${used}. `, why);
  const earlier = [...ui.warnings.children].find((el) => (el as HTMLElement).dataset.url === w.url);
  if (earlier) earlier.replaceWith(li);
  else ui.warnings.append(li);
  ui.warnings.hidden = false;
}

// ---------------------------------------------------------------- the stored-models panel

const hasCacheApi = typeof caches !== 'undefined';
/** A deletion in flight. */
let storageBusy = false;
/** Each refresh's number: a slower, older listing never overwrites a newer one. */
let listing = 0;

/**
 * Delete and Clear all wait while a model loads: the worker is writing that model's entries, and
 * a delete in the middle would leave it half stored until its next load repairs it.
 */
function syncStoredButtons(): void {
  const off = storageBusy || document.body.dataset.state === 'loading';
  for (const b of ui.storedList.querySelectorAll('button')) b.disabled = off;
  ui.storedClear.disabled = off || ui.storedList.childElementCount === 0;
}

/** A model's folder URL as listed: relative to this page where it lies below it, else without the scheme. */
function shortBase(base: string): string {
  const here = new URL('.', location.href).href;
  return base.startsWith(here) ? base.slice(here.length) || './' : base.replace(/^https?:\/\//, '');
}

function storedRow(m: StoredModel): HTMLLIElement {
  const complete = m.files.length > 0 && m.files.every((f) => f.complete);
  const li = document.createElement('li');
  li.dataset.base = m.base;
  li.dataset.bytes = String(m.bytes);
  li.dataset.complete = String(complete);
  const span = (cls: string, text: string) => Object.assign(document.createElement('span'), { className: cls, textContent: text });
  const name = span('base', shortBase(m.base));
  name.title = m.base;
  const files = `${m.files.length} file${m.files.length === 1 ? '' : 's'}`;
  const state = complete ? 'complete' : `partial (${m.files.filter((f) => f.complete).length} of ${m.files.length} files complete)`;
  const del = Object.assign(document.createElement('button'), { type: 'button', className: 'delete', textContent: 'Delete' });
  del.onclick = () => void storageAction(`Deleting ${shortBase(m.base)}`, () => deleteStoredModel(m.base));
  li.append(name, span('size', size(m.bytes)), span('files', files), span('state', state), del);
  return li;
}

async function refreshStored(): Promise<void> {
  if (!hasCacheApi) {
    ui.storedNote.textContent = 'This page cannot store models: the Cache API needs https or localhost.';
    return;
  }
  const n = ++listing;
  try {
    const models = await listStoredModels();
    if (n !== listing) return;
    demo.stored = models;
    ui.storedList.replaceChildren(...models.map(storedRow));
    ui.storedNote.textContent = models.length ? '' : 'No models stored in this browser.';
  } catch (e) {
    if (n !== listing) return;
    ui.storedNote.textContent = `Could not list the stored models: ${errText(e)}`;
  }
  syncStoredButtons();
}

/** Runs a delete, then lists again; a failure stays on screen under the list. */
async function storageAction(what: string, act: () => Promise<unknown>): Promise<void> {
  storageBusy = true;
  syncStoredButtons();
  let failed: string | null = null;
  try {
    await act();
  } catch (e) {
    failed = `${what} failed: ${errText(e)}`;
  }
  storageBusy = false;
  await refreshStored();
  if (failed) ui.storedNote.textContent = failed;
}

// ---------------------------------------------------------------- LoRAs and embeddings

/**
 * Whether the loaded model takes LoRAs and embeddings here: a text-to-image model. (The library
 * would merge a LoRA into a class-conditional U-Net too, but LoRAs are made for text models.)
 */
let adaptable = false;
/** Requests sent and not yet answered, by id, with what the note says meanwhile. */
const adapterOps = new Map<number, { req: AdapterRequest; doing: string }>();
let nextOp = 1;
/** Scale edits in the list not sent yet (debounced), by LoRA name. */
let scaleEdits: Record<string, number> = {};
let scaleTimer: ReturnType<typeof setTimeout> | undefined;
/** A scale slider sends its value this long after the last change, so a drag is one merge. */
const SCALE_DEBOUNCE_MS = 300;

/** Shown only for a text model; usable only while a model is loaded (a load replaces it). */
function syncAdapters(): void {
  const s = document.body.dataset.state;
  const off = !adaptable || s === 'loading' || s === 'nogpu' || s === 'starting';
  for (const row of [ui.loraRow, ui.embeddingRow]) {
    row.hidden = !adaptable;
    row.disabled = off;
  }
}

/** Forgets the LoRAs and embeddings: the worker is loading another model (or the same again). */
function resetAdapters(): void {
  adaptable = false;
  adapterOps.clear();
  scaleEdits = {};
  clearTimeout(scaleTimer);
  demo.loras = [];
  demo.tokens = [];
  ui.loraList.replaceChildren();
  ui.embeddingList.replaceChildren();
  for (const el of [ui.loraNote, ui.embeddingNote, ui.loraError, ui.embeddingError]) el.textContent = '';
  ui.loraError.hidden = ui.embeddingError.hidden = true;
}

const isLoraOp = (req: AdapterRequest) => req.type !== 'embedding-load';

/** Each section's note: what is under way there (the latest request), or nothing. */
function showAdapterNotes(): void {
  const ops = [...adapterOps.values()];
  ui.loraNote.textContent = ops.filter((o) => isLoraOp(o.req)).at(-1)?.doing ?? '';
  ui.embeddingNote.textContent = ops.filter((o) => !isLoraOp(o.req)).at(-1)?.doing ?? '';
}

function showAdapterError(lora: boolean, text: string | null): void {
  const el = lora ? ui.loraError : ui.embeddingError;
  el.textContent = text ?? '';
  el.hidden = text === null;
}

function sendAdapter(req: AdapterRequest, doing: string, transfer: Transferable[] = []): void {
  adapterOps.set(req.id, { req, doing });
  showAdapterError(isLoraOp(req), null);
  showAdapterNotes();
  send(req, transfer);
}

/** A scale typed or dragged: a finite number, or null while the field holds none. */
function scaleOf(el: HTMLInputElement): number | null {
  const v = el.value.trim() === '' ? NaN : Number(el.value);
  return Number.isFinite(v) ? v : null;
}

/** Keeps a slider and its number field showing the same scale (the field may go past the slider's range). */
function pairScale(range: HTMLInputElement, num: HTMLInputElement, onChange: (v: number) => void): void {
  range.oninput = () => {
    num.value = range.value;
    onChange(Number(range.value));
  };
  num.oninput = () => {
    const v = scaleOf(num);
    if (v === null) return;
    range.value = String(v);
    onChange(v);
  };
}

function flushScales(): void {
  clearTimeout(scaleTimer);
  if (!Object.keys(scaleEdits).length) return;
  const scales = scaleEdits;
  scaleEdits = {};
  sendAdapter({ id: nextOp++, type: 'lora-scales', scales }, `Applying ${Object.entries(scales).map(([n, v]) => `${n} × ${v}`).join(', ')}…`);
}

/** Whether a scale for `name` is waiting to be sent or on its way: its row's fields show that one, not the merged one. */
const scaleUnsettled = (name: string) => name in scaleEdits || [...adapterOps.values()].some(({ req }) => req.type === 'lora-scales' && name in req.scales);

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function loraRow(info: LoraInfo): HTMLLIElement {
  const li = document.createElement('li');
  li.dataset.name = info.name;
  const head = document.createElement('div');
  const name = Object.assign(document.createElement('span'), { className: 'name', textContent: info.name });
  const layers = Object.assign(document.createElement('span'), { className: 'layers' });
  head.append(name, ' ', layers);
  const controls = Object.assign(document.createElement('div'), { className: 'controls' });
  const range = Object.assign(document.createElement('input'), { type: 'range', min: '-2', max: '2', step: '0.05', className: 'scale-range' });
  const num = Object.assign(document.createElement('input'), { type: 'number', step: 'any', className: 'scale' });
  range.setAttribute('aria-label', `${info.name} scale`);
  num.setAttribute('aria-label', `${info.name} scale`);
  pairScale(range, num, (v) => {
    scaleEdits[info.name] = v;
    clearTimeout(scaleTimer);
    scaleTimer = setTimeout(flushScales, SCALE_DEBOUNCE_MS);
  });
  const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'remove', textContent: 'Remove' });
  remove.onclick = () => {
    remove.disabled = true;
    // A scale still waiting for this LoRA would name one that is gone.
    delete scaleEdits[info.name];
    sendAdapter({ id: nextOp++, type: 'lora-unload', name: info.name }, `Removing ${info.name}…`);
  };
  controls.append(range, num, remove);
  li.append(head, controls);
  return li;
}

/** The list as the worker says it is now: rows added and removed, scales shown where none is pending. */
function showLoras(loras: LoraInfo[]): void {
  demo.loras = loras;
  const rows = new Map([...ui.loraList.children].map((li) => [(li as HTMLElement).dataset.name!, li as HTMLLIElement]));
  const shown = loras.map((info) => {
    const li = rows.get(info.name) ?? loraRow(info);
    li.dataset.scale = String(info.scale);
    const parts = Object.entries(info.layers).map(([component, n]) => plural(n!, `${component} layer`));
    li.querySelector('.layers')!.textContent = parts.join(', ');
    if (!scaleUnsettled(info.name)) {
      for (const el of li.querySelectorAll('input')) el.value = String(info.scale);
    }
    (li.querySelector('button.remove') as HTMLButtonElement).disabled = [...adapterOps.values()].some(({ req }) => req.type === 'lora-unload' && req.name === info.name);
    return li;
  });
  ui.loraList.replaceChildren(...shown);
}

function showEmbedding(file: string, tokens: string[]): void {
  demo.tokens.push(...tokens);
  const li = document.createElement('li');
  li.dataset.tokens = tokens.join(' ');
  const name = Object.assign(document.createElement('span'), { className: 'name', textContent: file });
  const list = Object.assign(document.createElement('span'), { className: 'tokens' });
  list.append(`${plural(tokens.length, 'token')}: `, ...tokens.flatMap((t, i) => [...(i ? [', '] : []), Object.assign(document.createElement('code'), { textContent: t })]));
  li.append(name, list);
  ui.embeddingList.append(li);
}

const PICKLE = 'only .safetensors files are read (pickled .bin / .pt / .ckpt files are not)';

/** The file picked, read here and its bytes handed to the worker. */
async function pickFile(input: HTMLInputElement, lora: boolean): Promise<void> {
  const file = input.files?.[0];
  // Cleared, so that picking the same file again (after Remove, say) is a change too.
  input.value = '';
  if (!file) return;
  if (!/\.safetensors$/i.test(file.name)) return showAdapterError(lora, `${file.name}: ${PICKLE}`);
  let bytes: ArrayBuffer;
  try {
    bytes = await file.arrayBuffer();
  } catch (e) {
    return showAdapterError(lora, `Could not read ${file.name}: ${errText(e)}`);
  }
  if (lora) {
    const scale = scaleOf(ui.loraScale);
    if (scale === null) return showAdapterError(true, `The scale for ${file.name} must be a number.`);
    const name = file.name.replace(/\.safetensors$/i, '');
    sendAdapter({ id: nextOp++, type: 'lora-load', name, bytes, scale }, `Merging ${file.name} at scale ${scale}…`, [bytes]);
  } else {
    const token = ui.embeddingToken.value.trim();
    sendAdapter({ id: nextOp++, type: 'embedding-load', file: file.name, bytes, token }, `Adding ${file.name}…`, [bytes]);
  }
}

function adapterDone(msg: Extract<FromWorker, { type: 'adapter-done' }>): void {
  const op = adapterOps.get(msg.id);
  // An answer about a model replaced since.
  if (!op) return;
  adapterOps.delete(msg.id);
  const { req } = op;
  if (msg.error) {
    const what = req.type === 'lora-load' ? `Could not load ${req.name}` : req.type === 'lora-scales' ? 'Could not change the scales' : req.type === 'lora-unload' ? `Could not remove ${req.name}` : `Could not add ${req.file}`;
    showAdapterError(isLoraOp(req), `${what}: ${msg.error.name}: ${msg.error.message}`);
    console.warn(`Fresco demo: ${what}: ${msg.error.name}: ${msg.error.message}`);
  }
  if (req.type === 'embedding-load' && msg.tokens) showEmbedding(req.file, msg.tokens);
  showLoras(msg.loras);
  showAdapterNotes();
}

function startAdapters(): void {
  pairScale(ui.loraScaleRange, ui.loraScale, () => undefined);
  ui.loraFile.onchange = () => void pickFile(ui.loraFile, true);
  ui.embeddingFile.onchange = () => void pickFile(ui.embeddingFile, false);
  // Enter in these fields would submit the form (a generation); in a scale it applies the scale now.
  for (const row of [ui.loraRow, ui.embeddingRow]) {
    row.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter' || !(ev.target instanceof HTMLInputElement) || ev.target.type === 'file') return;
      ev.preventDefault();
      flushScales();
    });
  }
}

function load(): void {
  ui.customRow.hidden = ui.model.value !== 'custom';
  const chosen = chosenModel();
  if (!chosen) {
    ui.customModel.focus();
    return void (ui.status.textContent = 'Enter a model URL or a Hub repository (hf:owner/name), then Load.');
  }
  loadedName = chosen.name;
  askPersist();
  loadFiles.clear();
  fromStorage.clear();
  demo.storageWarnings = [];
  ui.warnings.replaceChildren();
  ui.warnings.hidden = true;
  // The worker drops the current model, and its LoRAs and embeddings with it.
  resetAdapters();
  setState('loading', `Loading ${chosen.name}…`);
  ui.progress.value = 0;
  send({ type: 'load', url: chosen.source, precision, ...(weights ? { weights } : {}), ...('preset' in chosen ? { preset: chosen.preset } : {}), ...(chosen.controlnet ? { controlnet: chosen.controlnet } : {}) });
}

function onMessage(msg: FromWorker): void {
  switch (msg.type) {
    case 'progress': {
      loadFiles.set(msg.file, { loaded: msg.loaded, total: msg.total });
      // The bar is the sum over the files seen so far: it can step back when a new file starts,
      // since a folder's file sizes are not all known up front.
      const all = loadTotals();
      if (all.total > 0) ui.progress.value = all.loaded / all.total;
      const where = fromStorage.has(msg.file) ? ' (from storage)' : '';
      ui.status.textContent = `Loading ${msg.file}${where}: ${size(msg.loaded)}${msg.total ? ` of ${size(msg.total)}` : ''}; all files: ${size(all.loaded)} of ${size(all.total)}`;
      return;
    }
    case 'cache-hit':
      fromStorage.add(msg.file);
      return;
    case 'storage-warning':
      return showStorageWarning(msg.warning);
    case 'loaded': {
      demo.cacheHits = msg.info.cacheHits;
      adaptable = msg.info.kind === 'text';
      applyModel(msg.info);
      ui.progress.value = 1;
      // In bytes, not files: a load reads some small files twice, the second time from storage,
      // so a count of files would say "from storage" about a model that was just downloaded.
      let stored = 0;
      for (const [file, f] of loadFiles) if (fromStorage.has(file)) stored += f.total || f.loaded;
      const notStored = new Set(demo.storageWarnings.map((w) => w.url)).size;
      setState(
        'ready',
        `Ready${msg.info.preset ? ` (preset ${msg.info.preset})` : ''}: ${size(loadTotals().total)} read` +
          `${stored ? ` (${size(stored)} from storage)` : ''}` +
          `${notStored ? `; ${notStored} file${notStored === 1 ? '' : 's'} could not be stored and will download again next time (see below)` : ''}.`,
      );
      return void refreshStored();
    }
    case 'compile':
      ui.status.textContent = `Compiling ${msg.pipelines} shader${msg.pipelines === 1 ? '' : 's'} for the ${msg.stage} (first run only)…`;
      return;
    case 'step': {
      demo.steps++;
      // Steps as asked for: the library folds PNDM's extra U-Net call into its first step.
      const [step, steps] = [msg.index + 1, msg.total];
      ui.progress.value = step / steps;
      ui.stepMs.textContent = `${msg.ms.toFixed(0)} ms (step ${step} of ${steps}, t=${msg.timestep})`;
      ui.status.textContent = `Step ${step} of ${steps}…`;
      if (msg.preview) {
        drawPreview(msg.preview);
        ui.caption.textContent = `Preview at step ${step} of ${steps} (latents mapped to RGB)`;
        demo.previews++;
      }
      return;
    }
    case 'done': {
      ui.image.width = msg.image.width;
      ui.image.height = msg.image.height;
      ui.image.getContext('2d')!.putImageData(imageData(msg.image), 0, 0);
      const k = fit();
      // Each image's size: the model's default, or (a ControlNet without a size) the control image's.
      const cols = gridColumns(run!.count);
      const [h, w] = [msg.image.height / Math.ceil(run!.count / cols), msg.image.width / cols];
      ui.caption.textContent = `${run!.count > 1 ? `${run!.count} images, ` : ''}${w}×${h} px${k > 1 ? `, shown ${k}× larger` : ''}`;
      run!.seed = msg.seed;
      const mean = msg.stepMs.reduce((a, b) => a + b, 0) / Math.max(1, msg.stepMs.length);
      ui.totalMs.textContent = `${(msg.totalMs / 1000).toFixed(2)} s (${mean.toFixed(0)} ms per U-Net call)`;
      return setState('done', `Done: seed ${msg.seed}, ${msg.steps} steps.`);
    }
    case 'cancelled':
      return setState('cancelled', 'Cancelled.');
    case 'adapter-done':
      return adapterDone(msg);
    case 'error':
      demo.error = `${msg.name}: ${msg.message}`;
      // A load that failed may have stored some files, or left one partial.
      if (document.body.dataset.state === 'loading') void refreshStored();
      return setState('error', `Error (${msg.name}): ${msg.message}`);
  }
}

/** A numeric field's value, or undefined when it is empty so that generate() uses its default (Number('') is 0). */
function optional(el: HTMLInputElement): number | undefined {
  return el.value.trim() === '' ? undefined : Number(el.value);
}

function generate(ev: Event): void {
  ev.preventDefault();
  const info = demo.info;
  // The browser checks min, max and step on submit; this also covers a submit it did not validate.
  if (!info || !ui.form.reportValidity()) return;
  const count = optional(ui.count);
  const steps = optional(ui.steps);
  // The page's default is a preview every step; 0 turns them off.
  const previewEvery = optional(ui.previewEvery) ?? 1;
  const text = info.kind === 'text';
  if (info.controlnets && !controlPixels) {
    ui.controlFile.focus();
    return void (ui.status.textContent = 'This model has a ControlNet: pick a control image first.');
  }
  const control =
    info.controlnets && controlPixels
      ? {
          // A copy: the page keeps its own for the next run.
          controlImage: { width: controlPixels.width, height: controlPixels.height, data: controlPixels.data.slice() },
          controlScale: optional(ui.controlScale),
          controlStart: optional(ui.controlStart),
          controlEnd: optional(ui.controlEnd),
        }
      : {};
  run = {
    // A file-name-safe name: hf:owner/name and URLs become their last path part.
    model: slug(loadedName.replace(/\/+$/, '').split(/[/:]/).pop() ?? loadedName),
    subject: text ? ui.prompt.value : (info.classNames?.[Number(ui.cls.value)] ?? `class ${ui.cls.value}`),
    count: count ?? 1,
    steps: steps ?? info.defaults.steps,
  };
  demo.steps = 0;
  demo.previews = 0;
  demo.error = null;
  ui.totalMs.textContent = '—';
  ui.stepMs.textContent = '—';
  layout(run.count);
  ui.caption.textContent = previewEvery > 0 ? 'Waiting for the first preview…' : 'Generating (previews are off)…';
  setState('running', 'Starting…');
  send({
    type: 'generate',
    options: {
      ...(text ? { prompt: ui.prompt.value, ...(ui.negative.value ? { negativePrompt: ui.negative.value } : {}) } : { class: Number(ui.cls.value) }),
      seed: optional(ui.seed),
      count,
      steps,
      guidance: optional(ui.guidance),
      scheduler: ui.scheduler.value as (typeof SCHEDULER_NAMES)[number],
      previewEvery,
      ...control,
    },
  });
}

async function start(): Promise<void> {
  ui.scheduler.replaceChildren(...SCHEDULER_NAMES.map((s) => new Option(s, s)));
  ui.storedClear.onclick = () => void storageAction('Clearing the stored models', () => clearStoredModels());
  // What earlier visits stored, whether or not this browser has WebGPU.
  void refreshStored();
  const chosen = params.get('model');
  if (chosen && [...ui.model.options].some((o) => o.value === chosen)) ui.model.value = chosen;
  else if (chosen && /^(hf:|https?:\/\/)/i.test(chosen)) {
    // ?model=hf:owner/name or a URL goes in the custom field.
    ui.model.value = 'custom';
    ui.customModel.value = chosen;
  }
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return showNoGpu('this browser has no navigator.gpu (WebGPU is missing or disabled).');
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return showNoGpu('navigator.gpu.requestAdapter() returned no adapter (no usable GPU, or WebGPU is blocked).');
  worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (ev: MessageEvent<FromWorker>) => onMessage(ev.data);
  worker.onerror = (ev) => onMessage({ type: 'error', name: 'WorkerError', message: ev.message || 'the worker failed to start' });
  ui.model.onchange = load;
  ui.customLoad.onclick = load;
  ui.customModel.onkeydown = (ev) => void (ev.key === 'Enter' && (ev.preventDefault(), load()));
  ui.form.onsubmit = generate;
  ui.cancel.onclick = () => send({ type: 'cancel' });
  ui.download.onclick = download;
  ui.controlFile.onchange = () => void pickControlImage();
  startAdapters();
  window.addEventListener('resize', () => void (demo.info && fit()));
  load();
}

void start();
