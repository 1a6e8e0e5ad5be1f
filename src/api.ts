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
import { resolveClassLabels } from './pipelines/class_names.ts';
import { CancelledError, type GenerationResult } from './pipelines/denoise.ts';
import { loadLdmFrom, type LdmModel } from './pipelines/ldm_folder.ts';
import { loadSdFrom, type SdModel } from './pipelines/sd_folder.ts';
import { generateFromText, SDXL_OPTIONS, type SdxlSizeOptions, type Size } from './pipelines/text_to_image.ts';
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
  /**
   * 'auto' (default: f16 weights and activations where the device has shader-f16, else f32),
   * 'f16' (a PrecisionError without shader-f16) or 'f32'. Model.precision says which path runs.
   */
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

  /**
   * Class models: the label guidance uses as "no class" (fresco.json's null_class, else the last
   * label). Asking for it draws an unconditional sample. Text models: null.
   */
  get nullClass(): number | null {
    return this.loaded.kind === 'class' ? this.loaded.nullClass : null;
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
  // The CLI's default too: f16 where the device has shader-f16.
  const precision = opts.precision ?? 'auto';
  const gpu = opts.gpu ?? (await getGpu({ wantF16: precision !== 'f32' }));
  const rt = runtimeFor(gpu);
  // Before any weight is read: f16 on a device without shader-f16 fails here.
  resolvePrecision(gpu.features, precision);
  const index = await readOptionalJson(reader, 'model_index.json');
  let model: Model;
  if (index) {
    const sd = await loadSdFrom(rt, reader, where, { precision });
    const f = sd.vae.scaleFactor;
    // diffusers' defaults: 50 steps; guidance_scale 7.5 (StableDiffusionPipeline), 5 (StableDiffusionXLPipeline).
    const defaults = { steps: 50, guidance: sd.xl ? 5 : 7.5, scheduler: schedulerNameOf(sd.schedulerConfig) };
    model = new Model('text', where, null, null, defaults, [sd.unet.sampleSize * f, sd.unet.sampleSize * f], rt, { kind: 'text', sd });
  } else {
    const card = ((await readOptionalJson(reader, 'fresco.json')) ?? {}) as ModelCard;
    const ldm = await loadLdmFrom(rt, reader, where, { precision });
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

/** The SdxlSizeOptions (SDXL's time ids) apply to Stable Diffusion XL only; elsewhere they are errors. */
export interface GenerateOptions extends SdxlSizeOptions {
  /** Class models: labels or names (a name may be a unique prefix), one image each (times count). */
  class?: number | string | (number | string)[];
  /** Text models: one image per prompt (times count). */
  prompt?: string | string[];
  /**
   * Text models: what to steer away from, one for all prompts (default none: "" for SD 1.x/2.x;
   * zero negative embeddings for SDXL with force_zeros_for_empty_prompt, as diffusers).
   */
  negativePrompt?: string;
  /**
   * Stable Diffusion XL only (an error for other models): the second text encoder's prompt
   * (diffusers' prompt_2), one for all or one per prompt; default (or ""): the prompt.
   */
  prompt2?: string | string[];
  /** SDXL: the second text encoder's negative prompt (negative_prompt_2); default (or ""): negativePrompt. */
  negativePrompt2?: string;
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
  return resolveClassLabels(list, model.classNames, model.numClasses!, model.nullClass!, (m) => new GenerateOptionsError(m));
}

/** The SDXL options as generateFromText takes them, checked, prompt2 lists repeated `count` times like the prompts. */
function sdxlOptions(opts: GenerateOptions, prompts: number, count: number): Partial<Pick<GenerateOptions, (typeof SDXL_OPTIONS)[number]>> {
  const out: Partial<Pick<GenerateOptions, (typeof SDXL_OPTIONS)[number]>> = {};
  for (const k of SDXL_OPTIONS) {
    const v = opts[k];
    if (v === undefined) continue;
    if (k === 'prompt2') {
      const list = v as string | string[];
      if (typeof list !== 'string' && !(Array.isArray(list) && list.every((p) => typeof p === 'string'))) throw new GenerateOptionsError(`prompt2 must be a string or one string per prompt, got ${JSON.stringify(list)}`);
      if (Array.isArray(list) && list.length !== prompts) throw new GenerateOptionsError(`prompt2: ${list.length} given for ${prompts} prompts`);
      out.prompt2 = typeof list === 'string' ? list : list.flatMap((p) => new Array<string>(count).fill(p));
    } else if (k === 'negativePrompt2') {
      if (typeof v !== 'string') throw new GenerateOptionsError(`negativePrompt2 must be a string, got ${JSON.stringify(v)}`);
      out.negativePrompt2 = v;
    } else {
      const what = /crops/i.test(k) ? '[top, left]' : '[height, width]';
      if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) throw new GenerateOptionsError(`${k} must be ${what}: two whole numbers of pixels, got ${JSON.stringify(v)}`);
      out[k] = [v[0], v[1]] as Size;
    }
  }
  return out;
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
  const sdxlGiven = SDXL_OPTIONS.filter((k) => opts[k] !== undefined);
  const sdxlApply = `${sdxlGiven.join(', ')} ${sdxlGiven.length > 1 ? 'apply' : 'applies'} to Stable Diffusion XL`;
  if (loaded.kind === 'class') {
    if (opts.prompt !== undefined || opts.negativePrompt !== undefined) throw new GenerateOptionsError(`${model.source} is class-conditional: it takes class, not prompt`);
    if (sdxlGiven.length) throw new GenerateOptionsError(`${model.source} is class-conditional: ${sdxlApply} text models only`);
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
    if (sdxlGiven.length && !loaded.sd.xl) throw new GenerateOptionsError(`${sdxlApply} pipelines only (${model.source} is a ${loaded.sd.pipeline ?? 'StableDiffusionPipeline'})`);
    const given = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
    const prompts = given.flatMap((p) => new Array<string>(count).fill(p));
    const xlOptions = sdxlOptions(opts, given.length, count);
    batch = prompts.length;
    cols = count > 1 ? count : Math.ceil(Math.sqrt(batch));
    const { unet, vae } = loaded.sd;
    const f = vae.scaleFactor;
    const [height, width] = [opts.height ?? model.imageSize[0], opts.width ?? model.imageSize[1]];
    latentShape = [batch, unet.inChannels, Math.floor(height / f), Math.floor(width / f)];
    // SD_LATENT_RGB is fitted to SD 1.x/2.x's VAE; SDXL's VAE has other latents, so its previews are only stretched.
    previewMode = unet.inChannels === 4 && !loaded.sd.xl ? 'sd' : 'normalize';
    run = generateFromText(rt, loaded.sd, { ...common, prompt: prompts, negativePrompt: opts.negativePrompt, ...xlOptions, width, height, onStep: onStep(cols) });
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
