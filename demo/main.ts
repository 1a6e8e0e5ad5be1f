// The demo page: controls, a WebGPU check, and a worker that runs the library. The page itself
// never touches the GPU beyond asking whether an adapter exists, so a long generation cannot
// freeze it. Tests drive it through the same controls and read body[data-state] and
// window.frescoDemo.
import { SCHEDULER_NAMES, type RgbaImage } from '../src/index.ts';
import { gridColumns } from './grid.ts';
import type { FromWorker, ModelInfo, ToWorker } from './protocol.ts';
import { isPresetName, type PresetName } from '../src/pipelines/presets.ts';

type State = 'starting' | 'nogpu' | 'loading' | 'ready' | 'running' | 'done' | 'cancelled' | 'error';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'),
  customRow: $<HTMLFieldSetElement>('custom-row'),
  customModel: $<HTMLInputElement>('custom-model'),
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
  nogpu: $('nogpu'),
};

/** What tests read: counts, the last error and download, next to body[data-state]. */
const demo = { previews: 0, steps: 0, cacheHits: [] as string[], error: null as string | null, info: null as ModelInfo | null, download: null as string | null };
(window as unknown as { frescoDemo: typeof demo }).frescoDemo = demo;

const params = new URLSearchParams(location.search);
const precision = (params.get('precision') ?? 'auto') as 'auto' | 'f16' | 'f32';

function setState(s: State, message?: string): void {
  document.body.dataset.state = s;
  if (message !== undefined) ui.status.textContent = message;
  ui.generate.disabled = s !== 'ready' && s !== 'done' && s !== 'cancelled' && s !== 'error';
  ui.cancel.disabled = s !== 'running';
  // Only a finished image: mid-run or after a cancel the canvas holds a preview.
  ui.download.disabled = s !== 'done';
  ui.model.disabled = s === 'running' || s === 'loading' || s === 'nogpu';
  ui.customRow.disabled = ui.model.disabled;
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

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function applyModel(info: ModelInfo): void {
  demo.info = info;
  ui.adapter.textContent = info.adapterName;
  ui.precision.textContent = info.precision;
  const text = info.kind === 'text';
  $('prompt-row').hidden = !text;
  $('negative-row').hidden = !text;
  $('class-row').hidden = text;
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

function send(msg: ToWorker): void {
  worker.postMessage(msg);
}

/**
 * What the picker names: a model served with the demo (models/<name>/), a Hub repository
 * (hf:owner/name, from the list or typed), or any URL typed in the custom field, which the
 * library resolves against this page.
 */
function chosenModel(): { source: string; name: string; preset?: PresetName | null } | null {
  const v = ui.model.value;
  if (v !== 'custom') return { source: v.startsWith('hf:') ? v : new URL(`models/${v}/`, location.href).href, name: v };
  const typed = ui.customModel.value.trim();
  if (!typed) return null;
  // A relative URL is the page's, not the worker script's.
  const source = /^hf:/i.test(typed) ? typed : new URL(typed, location.href).href;
  const p = ui.preset.value;
  return { source, name: typed, ...(p === 'none' ? { preset: null } : isPresetName(p) ? { preset: p } : {}) };
}

/** The name of the model last asked for, for the download's file name. */
let loadedName = '';

function load(): void {
  ui.customRow.hidden = ui.model.value !== 'custom';
  const chosen = chosenModel();
  if (!chosen) {
    ui.customModel.focus();
    return void (ui.status.textContent = 'Enter a model URL or a Hub repository (hf:owner/name), then Load.');
  }
  loadedName = chosen.name;
  setState('loading', `Loading ${chosen.name}…`);
  ui.progress.value = 0;
  send({ type: 'load', url: chosen.source, precision, ...('preset' in chosen ? { preset: chosen.preset } : {}) });
}

function onMessage(msg: FromWorker): void {
  switch (msg.type) {
    case 'progress':
      if (msg.total > 0) ui.progress.value = msg.loaded / msg.total;
      ui.status.textContent = `Loading ${msg.file}: ${mib(msg.loaded)}${msg.total ? ` of ${mib(msg.total)}` : ''}`;
      return;
    case 'loaded':
      demo.cacheHits = msg.info.cacheHits;
      applyModel(msg.info);
      ui.progress.value = 1;
      return setState('ready', `Ready${msg.info.preset ? ` (preset ${msg.info.preset})` : ''}${msg.info.cacheHits.length ? ' (model read from the browser cache)' : ''}.`);
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
      const [h, w] = demo.info!.imageSize;
      ui.caption.textContent = `${run!.count > 1 ? `${run!.count} images, ` : ''}${w}×${h} px${k > 1 ? `, shown ${k}× larger` : ''}`;
      run!.seed = msg.seed;
      const mean = msg.stepMs.reduce((a, b) => a + b, 0) / Math.max(1, msg.stepMs.length);
      ui.totalMs.textContent = `${(msg.totalMs / 1000).toFixed(2)} s (${mean.toFixed(0)} ms per U-Net call)`;
      return setState('done', `Done: seed ${msg.seed}, ${msg.steps} steps.`);
    }
    case 'cancelled':
      return setState('cancelled', 'Cancelled.');
    case 'error':
      demo.error = `${msg.name}: ${msg.message}`;
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
    },
  });
}

async function start(): Promise<void> {
  ui.scheduler.replaceChildren(...SCHEDULER_NAMES.map((s) => new Option(s, s)));
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
  window.addEventListener('resize', () => void (demo.info && fit()));
  load();
}

void start();
