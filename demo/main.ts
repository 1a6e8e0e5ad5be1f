// The demo page: controls, a WebGPU check, and a worker that runs the library. The page itself
// never touches the GPU beyond asking whether an adapter exists, so a long generation cannot
// freeze it. Tests drive it through the same controls and read body[data-state] and
// window.frescoDemo.
import { SCHEDULER_NAMES } from '../src/index.ts';
import type { FromWorker, ModelInfo, ToWorker } from './protocol.ts';

type State = 'starting' | 'nogpu' | 'loading' | 'ready' | 'running' | 'done' | 'cancelled' | 'error';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>('model'),
  cls: $<HTMLSelectElement>('class'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  negative: $<HTMLInputElement>('negative'),
  seed: $<HTMLInputElement>('seed'),
  count: $<HTMLInputElement>('count'),
  steps: $<HTMLInputElement>('steps'),
  guidance: $<HTMLInputElement>('guidance'),
  scheduler: $<HTMLSelectElement>('scheduler'),
  previewEvery: $<HTMLInputElement>('preview-every'),
  generate: $<HTMLButtonElement>('generate'),
  cancel: $<HTMLButtonElement>('cancel'),
  image: $<HTMLCanvasElement>('image'),
  preview: $<HTMLCanvasElement>('preview'),
  progress: $<HTMLProgressElement>('progress'),
  status: $('status'),
  adapter: $('adapter'),
  precision: $('precision'),
  stepMs: $('step-ms'),
  totalMs: $('total-ms'),
  nogpu: $('nogpu'),
};

/** What tests read: counts and the last error, next to body[data-state]. */
const demo = { previews: 0, steps: 0, cacheHits: [] as string[], error: null as string | null, info: null as ModelInfo | null };
(window as unknown as { frescoDemo: typeof demo }).frescoDemo = demo;

const params = new URLSearchParams(location.search);
const precision = (params.get('precision') ?? 'auto') as 'auto' | 'f16' | 'f32';

function setState(s: State, message?: string): void {
  document.body.dataset.state = s;
  if (message !== undefined) ui.status.textContent = message;
  ui.generate.disabled = s !== 'ready' && s !== 'done' && s !== 'cancelled' && s !== 'error';
  ui.cancel.disabled = s !== 'running';
  ui.model.disabled = s === 'running' || s === 'loading' || s === 'nogpu';
}

function showNoGpu(why: string): void {
  ui.nogpu.hidden = false;
  ui.nogpu.textContent = `WebGPU is not available: ${why} Fresco needs a browser with WebGPU, such as a recent Chrome or Edge (Chromium: start it with --enable-unsafe-webgpu). Safari and Firefox have it behind flags in some versions.`;
  setState('nogpu', 'WebGPU is not available in this browser.');
}

function draw(canvas: HTMLCanvasElement, img: { width: number; height: number; data: Uint8ClampedArray }): void {
  canvas.width = img.width;
  canvas.height = img.height;
  canvas.getContext('2d')!.putImageData(new ImageData(img.data as Uint8ClampedArray<ArrayBuffer>, img.width, img.height), 0, 0);
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
  ui.scheduler.value = info.defaults.scheduler;
  const [h, w] = info.imageSize;
  draw(ui.image, { width: w, height: h, data: new Uint8ClampedArray(w * h * 4) });
}

let worker: Worker;

function send(msg: ToWorker): void {
  worker.postMessage(msg);
}

function load(): void {
  const url = new URL(`models/${ui.model.value}/`, location.href).href;
  setState('loading', `Loading ${ui.model.value}…`);
  ui.progress.value = 0;
  send({ type: 'load', url, precision });
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
      return setState('ready', `Ready${msg.info.cacheHits.length ? ' (model read from the browser cache)' : ''}.`);
    case 'step':
      demo.steps++;
      ui.progress.value = (msg.index + 1) / msg.total;
      ui.stepMs.textContent = `${msg.ms.toFixed(0)} ms (step ${msg.index + 1} of ${msg.total}, t=${msg.timestep})`;
      ui.status.textContent = `Step ${msg.index + 1} of ${msg.total}…`;
      if (msg.preview) {
        demo.previews++;
        draw(ui.preview, msg.preview);
      }
      return;
    case 'done': {
      draw(ui.image, msg.image);
      const mean = msg.stepMs.reduce((a, b) => a + b, 0) / Math.max(1, msg.stepMs.length);
      ui.totalMs.textContent = `${(msg.totalMs / 1000).toFixed(2)} s (${mean.toFixed(0)} ms/step)`;
      return setState('done', `Done: seed ${msg.seed}.`);
    }
    case 'cancelled':
      return setState('cancelled', 'Cancelled.');
    case 'error':
      demo.error = `${msg.name}: ${msg.message}`;
      return setState('error', `Error (${msg.name}): ${msg.message}`);
  }
}

function generate(ev: Event): void {
  ev.preventDefault();
  const info = demo.info;
  if (!info) return;
  const num = (el: HTMLInputElement) => Number(el.value);
  demo.steps = 0;
  demo.previews = 0;
  demo.error = null;
  ui.totalMs.textContent = '—';
  setState('running', 'Starting…');
  send({
    type: 'generate',
    options: {
      ...(info.kind === 'text' ? { prompt: ui.prompt.value, ...(ui.negative.value ? { negativePrompt: ui.negative.value } : {}) } : { class: Number(ui.cls.value) }),
      seed: num(ui.seed),
      count: num(ui.count),
      steps: num(ui.steps),
      guidance: num(ui.guidance),
      scheduler: ui.scheduler.value as (typeof SCHEDULER_NAMES)[number],
      previewEvery: num(ui.previewEvery),
    },
  });
}

async function start(): Promise<void> {
  ui.scheduler.replaceChildren(...SCHEDULER_NAMES.map((s) => new Option(s, s)));
  const chosen = params.get('model');
  if (chosen && [...ui.model.options].some((o) => o.value === chosen)) ui.model.value = chosen;
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return showNoGpu('this browser has no navigator.gpu (WebGPU is missing or disabled).');
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return showNoGpu('navigator.gpu.requestAdapter() returned no adapter (no usable GPU, or WebGPU is blocked).');
  worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (ev: MessageEvent<FromWorker>) => onMessage(ev.data);
  worker.onerror = (ev) => onMessage({ type: 'error', name: 'WorkerError', message: ev.message || 'the worker failed to start' });
  ui.model.onchange = load;
  $('controls').onsubmit = generate;
  ui.cancel.onclick = () => send({ type: 'cancel' });
  load();
}

void start();
