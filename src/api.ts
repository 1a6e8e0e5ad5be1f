// The library facade: loadModel(source) and generate(model, options), the same in a page, a Web
// Worker and Node. A source is a URL (fetched, streamed, kept in the Cache API), a folder on disk
// (Node), or any FolderReader. The folder says what it is: model_index.json makes it a Stable
// Diffusion (text) pipeline, otherwise it is a class-conditional LDM (unet/, vae/, scheduler/,
// and optionally Fresco's fresco.json card with class names and defaults).
import { getGpu, type GpuContext } from './gpu/device.ts';
import { GpuError, Runtime } from './gpu/runtime.ts';
import { nodeFolderReader, parseJsonObject, type FolderReader } from './io/model_folder.ts';
import { urlFolderReader } from './io/url_reader.ts';
import { resolvePrecision, type Precision } from './models/precision.ts';
import { generateClassConditional } from './pipelines/class_conditional.ts';
import { CancelledError, type GenerationResult } from './pipelines/denoise.ts';
import { loadLdmFrom, type LdmModel } from './pipelines/ldm_folder.ts';
import { loadSdFrom, type SdModel } from './pipelines/sd_folder.ts';
import { generateFromText } from './pipelines/text_to_image.ts';
import { imageToRgba, latentPreview, parsePreviewFactors, type PreviewFactors, type PreviewMode, type RgbaImage } from './preview.ts';
import { schedulerNameOf, type SchedulerName } from './schedulers/scheduler.ts';

/** A generate() option that does not fit the model (a prompt for a class model, an unknown class). */
export class GenerateOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenerateOptionsError';
  }
}

export type ModelKind = 'class' | 'text';

export interface LoadModelOptions {
  /** 'f32' (default), 'f16' (needs shader-f16) or 'auto'. */
  precision?: Precision;
  /** Bytes of `file` read so far; `total` is 0 when a server sends no length. */
  onProgress?: (loadedBytes: number, totalBytes: number, file: string) => void;
  /** URL sources: keep files in the Cache API where it exists (default true). */
  cache?: boolean;
  /** URL sources: told about each file read from the cache instead of the network. */
  onCacheHit?: (file: string) => void;
  /** A device to use instead of the shared one. */
  gpu?: GpuContext;
}

export interface ModelDefaults {
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
}

interface ModelCard {
  class_names?: string[];
  null_class?: number;
  defaults?: Partial<ModelDefaults>;
  /** Latent → image factors for previews: { latent_to_image, bias } (see PreviewFactors). */
  preview?: unknown;
}

type Loaded = { kind: 'class'; ldm: LdmModel; nullClass: number; preview: PreviewFactors | null } | { kind: 'text'; sd: SdModel };

export class Model {
  /** The adapter, as the device reports it ("google / swiftshader", "mesa / lavapipe"). */
  readonly adapterName: string;
  /** The storage type the weights were built in, and why. */
  readonly precision: string;
  private destroyed = false;

  constructor(
    readonly kind: ModelKind,
    /** Where the model came from (URL or path). */
    readonly source: string,
    /** Class names by label (from fresco.json), or null. */
    readonly classNames: string[] | null,
    /** Number of class labels the U-Net embeds, the null class included (class models). */
    readonly numClasses: number | null,
    readonly defaults: ModelDefaults,
    /** Image size in pixels [height, width] at the model's default. */
    readonly imageSize: readonly [number, number],
    /** @internal */ readonly rt: Runtime,
    /** @internal */ readonly loaded: Loaded,
  ) {
    this.adapterName = rt.gpu.adapterName;
    this.precision = (loaded.kind === 'class' ? loaded.ldm : loaded.sd).precision.description;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Frees the model's GPU buffers; the device stays (it is shared). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    (this.loaded.kind === 'class' ? this.loaded.ldm : this.loaded.sd).destroy();
  }
}

function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node && typeof (globalThis as { document?: unknown }).document === 'undefined' && typeof (globalThis as { importScripts?: unknown }).importScripts === 'undefined';
}

/** Only one Runtime per device: it owns the device's uncaptured-error handler and kernel cache. */
const runtimes = new WeakMap<GPUDevice, Runtime>();
function runtimeFor(gpu: GpuContext): Runtime {
  let rt = runtimes.get(gpu.device);
  if (!rt) runtimes.set(gpu.device, (rt = new Runtime(gpu)));
  return rt;
}

/** Reports each whole file to onProgress (a local read has no finer progress to give). */
function withProgress(reader: FolderReader, onProgress: LoadModelOptions['onProgress']): FolderReader {
  if (!onProgress) return reader;
  return {
    where: reader.where,
    async read(name) {
      const bytes = await reader.read(name);
      if (bytes) onProgress(bytes.length, bytes.length, name);
      return bytes;
    },
  };
}

function readerFor(source: string | FolderReader, opts: LoadModelOptions): { reader: FolderReader; where: string } {
  if (typeof source !== 'string') return { reader: withProgress(source, opts.onProgress), where: source.where('').replace(/\/$/, '') };
  const where = source.replace(/\/$/, '');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) || !isNode()) {
    return { reader: urlFolderReader(source, { onProgress: opts.onProgress, cache: opts.cache, onCacheHit: opts.onCacheHit }), where };
  }
  return { reader: withProgress(nodeFolderReader(where), opts.onProgress), where };
}

async function readOptionalJson(reader: FolderReader, name: string): Promise<Record<string, unknown> | null> {
  const bytes = await reader.read(name);
  return bytes ? parseJsonObject(bytes, reader.where(name)) : null;
}

export async function loadModel(source: string | FolderReader, opts: LoadModelOptions = {}): Promise<Model> {
  const { reader, where } = readerFor(source, opts);
  const gpu = opts.gpu ?? (await getGpu({ wantF16: (opts.precision ?? 'f32') !== 'f32' }));
  const rt = runtimeFor(gpu);
  // Before any weight is read: f16 on a device without shader-f16 fails here.
  resolvePrecision(gpu.features, opts.precision);
  const index = await readOptionalJson(reader, 'model_index.json');
  let model: Model;
  if (index) {
    const sd = await loadSdFrom(rt, reader, where, { precision: opts.precision });
    const f = sd.vae.scaleFactor;
    // diffusers' defaults: 50 steps; guidance_scale 7.5 (StableDiffusionPipeline), 5 (StableDiffusionXLPipeline).
    const defaults = { steps: 50, guidance: sd.xl ? 5 : 7.5, scheduler: schedulerNameOf(sd.schedulerConfig) };
    model = new Model('text', where, null, null, defaults, [sd.unet.sampleSize * f, sd.unet.sampleSize * f], rt, { kind: 'text', sd });
  } else {
    const card = ((await readOptionalJson(reader, 'fresco.json')) ?? {}) as ModelCard;
    const ldm = await loadLdmFrom(rt, reader, where, { precision: opts.precision });
    const numClasses = ldm.unet.numClasses;
    const side = ldm.unet.sampleSize * ldm.vae.scaleFactor;
    const defaults = { steps: card.defaults?.steps ?? 25, guidance: card.defaults?.guidance ?? 3, scheduler: card.defaults?.scheduler ?? ('ddim' as const) };
    const nullClass = card.null_class ?? (numClasses ?? 1) - 1;
    let preview: PreviewFactors | null = null;
    try {
      // Checked at load, not at the first preview: a bad card entry fails here, naming the file.
      if (card.preview !== undefined) preview = parsePreviewFactors(card.preview, ldm.unet.inChannels, ldm.vae.outChannels, reader.where('fresco.json'));
    } catch (e) {
      ldm.destroy();
      throw e;
    }
    model = new Model('class', where, card.class_names ?? null, numClasses, defaults, [side, side], rt, { kind: 'class', ldm, nullClass, preview });
  }
  try {
    // Weight uploads that ran out of memory are reported here, not halfway into a generation.
    await rt.assertHealthy();
  } catch (e) {
    model.destroy();
    throw e;
  }
  return model;
}

export interface StepEvent {
  index: number;
  total: number;
  timestep: number;
  /** Wall time of this step, ms. */
  ms: number;
  /** The latents as RGB, on the steps previewEvery asks for (and the last). */
  preview?: RgbaImage;
}

export interface GenerateOptions {
  /** Class models: labels or names (a name may be a unique prefix), one image each (times count). */
  class?: number | string | (number | string)[];
  /** Text models: one image per prompt (times count). */
  prompt?: string | string[];
  negativePrompt?: string;
  /** Images per class or prompt (default 1). */
  count?: number;
  seed?: number;
  steps?: number;
  guidance?: number;
  scheduler?: SchedulerName;
  eta?: number;
  /** Text models: image size in pixels, multiples of the VAE's scale factor. */
  width?: number;
  height?: number;
  /** Checked before every step: a cancel rejects with CancelledError within one step. */
  signal?: AbortSignal;
  onStep?: (e: StepEvent) => void;
  /** Read back and map the latents to RGB every N steps (0 or absent: no previews). */
  previewEvery?: number;
}

export interface GenerateResult {
  /** The images as one RGBA grid (count images per row when count > 1), as the CLI writes its PNG. */
  image: RgbaImage;
  /** [B, C, H, W] in [-1, 1], not clamped. */
  raw: Float32Array;
  rawShape: [number, number, number, number];
  seed: number;
  steps: number;
  stepMs: number[];
  totalMs: number;
  peakBytes: number;
  /** Text models: prompts cut to the tokenizer's length. */
  truncated?: string[];
}

function classLabels(model: Model, classes: GenerateOptions['class']): number[] {
  const list = classes === undefined ? [] : Array.isArray(classes) ? classes : [classes];
  if (list.length === 0) throw new GenerateOptionsError('this model is class-conditional: pass class (a label or a class name)');
  const names = model.classNames;
  const usable = names?.length ?? model.numClasses! - 1;
  return list.map((c) => {
    if (typeof c === 'number') {
      if (!Number.isInteger(c) || c < 0 || c >= model.numClasses!) throw new GenerateOptionsError(`class ${c} is out of range (0..${model.numClasses! - 1})`);
      return c;
    }
    if (/^\d+$/.test(c)) return classLabels(model, Number(c))[0]!;
    if (!names) throw new GenerateOptionsError(`this model has no class names; use a label 0..${usable - 1}`);
    const key = c.toLowerCase();
    const exact = names.findIndex((n) => n.toLowerCase() === key);
    if (exact >= 0) return exact;
    const partial = names.flatMap((n, i) => (n.toLowerCase().startsWith(key) || n.toLowerCase().split('/').includes(key) ? [i] : []));
    if (partial.length === 1) return partial[0]!;
    throw new GenerateOptionsError(`unknown class ${JSON.stringify(c)}${partial.length > 1 ? ' (ambiguous)' : ''}; classes: ${names.map((n, i) => `${i} ${n}`).join(', ')}`);
  });
}

function rejectOnLoss(gpu: GpuContext): Promise<never> {
  return gpu.lost.then((m) => Promise.reject(new GpuError(m)));
}

export async function generate(model: Model, opts: GenerateOptions = {}): Promise<GenerateResult> {
  if (model.isDestroyed) throw new GenerateOptionsError('this model was destroyed');
  const count = opts.count ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new GenerateOptionsError(`count must be a positive integer, got ${count}`);
  const previewEvery = opts.previewEvery ?? 0;
  if (!Number.isInteger(previewEvery) || previewEvery < 0) throw new GenerateOptionsError(`previewEvery must be a whole number of steps, got ${previewEvery}`);
  if (opts.signal?.aborted) throw new CancelledError();
  const { rt, loaded } = model;
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const steps = opts.steps ?? model.defaults.steps;
  const guidanceScale = opts.guidance ?? model.defaults.guidance;
  const scheduler = opts.scheduler ?? model.defaults.scheduler;
  const common = { seed, steps, guidanceScale, scheduler, eta: opts.eta, signal: opts.signal, latentsEvery: previewEvery };

  let batch: number;
  let previewMode: PreviewMode;
  let latentShape: number[];
  const onStep = (cols: number) =>
    opts.onStep &&
    ((info: { index: number; total: number; timestep: number; ms: number; latents?: Float32Array }) => {
      const preview = info.latents ? latentPreview(info.latents, latentShape, previewMode, cols) : undefined;
      opts.onStep!({ index: info.index, total: info.total, timestep: info.timestep, ms: info.ms, ...(preview ? { preview } : {}) });
    });

  let run: Promise<GenerationResult & { truncated?: string[] }>;
  let cols: number;
  if (loaded.kind === 'class') {
    if (opts.prompt !== undefined || opts.negativePrompt !== undefined) throw new GenerateOptionsError(`${model.source} is class-conditional: it takes class, not prompt`);
    if (opts.width !== undefined || opts.height !== undefined) throw new GenerateOptionsError(`${model.source} generates ${model.imageSize.join('x')} images only: width and height apply to text models`);
    const labels = classLabels(model, opts.class);
    const classLabelsBatch = labels.flatMap((l) => new Array<number>(count).fill(l));
    batch = classLabelsBatch.length;
    cols = count > 1 ? count : Math.ceil(Math.sqrt(batch));
    const { unet } = loaded.ldm;
    latentShape = [batch, unet.inChannels, unet.sampleSize, unet.sampleSize];
    // The card's own factors when it has them; otherwise nothing is known about this VAE's latents.
    previewMode = loaded.preview ? { factors: loaded.preview } : 'normalize';
    run = generateClassConditional(rt, loaded.ldm, { ...common, classLabels: classLabelsBatch, nullClass: loaded.nullClass, onStep: onStep(cols) });
  } else {
    if (opts.class !== undefined) throw new GenerateOptionsError(`${model.source} is a text-to-image model: it takes prompt, not class`);
    if (opts.prompt === undefined) throw new GenerateOptionsError(`${model.source} is a text-to-image model: prompt is required`);
    const prompts = (typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt).flatMap((p) => new Array<string>(count).fill(p));
    batch = prompts.length;
    cols = count > 1 ? count : Math.ceil(Math.sqrt(batch));
    const { unet, vae } = loaded.sd;
    const f = vae.scaleFactor;
    const [height, width] = [opts.height ?? model.imageSize[0], opts.width ?? model.imageSize[1]];
    latentShape = [batch, unet.inChannels, Math.floor(height / f), Math.floor(width / f)];
    // SD_LATENT_RGB is fitted to SD 1.x/2.x's VAE; SDXL's VAE has other latents, so its previews are only stretched.
    previewMode = unet.inChannels === 4 && !loaded.sd.xl ? 'sd' : 'normalize';
    run = generateFromText(rt, loaded.sd, { ...common, prompt: prompts, negativePrompt: opts.negativePrompt, width, height, onStep: onStep(cols) });
  }
  // The loop races device loss at every step; this also covers the text encoder and decode, so a
  // lost device rejects instead of leaving a promise that never settles.
  const lost = rejectOnLoss(rt.gpu);
  // Whichever side loses the race still settles later; neither may become an unhandled rejection.
  lost.catch(() => undefined);
  run.catch(() => undefined);
  const result = await Promise.race([run, lost]);
  await rt.assertHealthy();
  return {
    image: imageToRgba(result.image, result.imageShape, cols),
    raw: result.image,
    rawShape: result.imageShape,
    seed,
    steps,
    stepMs: result.stepMs,
    totalMs: result.totalMs,
    peakBytes: result.peakBytes,
    ...(result.truncated ? { truncated: result.truncated } : {}),
  };
}
