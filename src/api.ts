// The library facade: loadModel(source) and generate(model, options), the same in a page, a Web
// Worker and Node. A source is a URL (fetched, streamed, kept in the Cache API), a folder on disk
// (Node), or any FolderReader. The folder says what it is: model_index.json makes it a Stable
// Diffusion (text) pipeline, otherwise it is a class-conditional LDM (unet/, vae/, scheduler/,
// and optionally Fresco's fresco.json card with class names and defaults). The CLI and the demo
// go through these two functions too, so options, defaults and batching behave alike everywhere.
import { getGpu, type GpuContext } from './gpu/device.ts';
import { Runtime } from './gpu/runtime.ts';
import { checkRgba, resizeRgba, rgbaToImageTensor, rgbaToMask, type RgbaPixels } from './io/image_input.ts';
import { nodeFolderReader, type FolderReader } from './io/model_folder.ts';
import { urlFolderReader } from './io/url_reader.ts';
import { resolvePrecision, type Precision } from './models/precision.ts';
import { generateClassConditional } from './pipelines/class_conditional.ts';
import { resolveClassLabels } from './pipelines/class_names.ts';
import type { GenerationResult } from './pipelines/denoise.ts';
import { loadLdmFrom, type LdmModel } from './pipelines/ldm_folder.ts';
import { readModelInfo, type ModelDefaults, type ModelInfo, type ModelKind } from './pipelines/model_info.ts';
import { loadSdFrom, type SdModel } from './pipelines/sd_folder.ts';
import { generateFromText, SDXL_OPTIONS, type SdxlSizeOptions, type Size } from './pipelines/text_to_image.ts';
import { imageToRgba, latentPreview, parsePreviewFactors, type PreviewFactors, type PreviewMode, type RgbaImage } from './preview.ts';
import type { SchedulerName } from './schedulers/scheduler.ts';
import { CancelledError, GenerateOptionsError, GpuError } from './errors.ts';

export type { ModelDefaults, ModelInfo, ModelKind, RgbaPixels };

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

type Loaded = { kind: 'class'; ldm: LdmModel; preview: PreviewFactors | null } | { kind: 'text'; sd: SdModel };

export class Model {
  /** The adapter, as the device reports it ("google / swiftshader", "mesa / lavapipe"). */
  readonly adapterName: string;
  /** The storage type the weights were built in, and why. */
  readonly precision: string;
  readonly kind: ModelKind;
  /** Class names by label (from fresco.json), or null. */
  readonly classNames: string[] | null;
  /** Number of class labels the U-Net embeds, the null class included (class models). */
  readonly numClasses: number | null;
  /**
   * Class models: the label guidance uses as "no class" (fresco.json's null_class, else the last
   * label). Asking for it draws an unconditional sample. Text models: null.
   */
  readonly nullClass: number | null;
  readonly defaults: ModelDefaults;
  private destroyed = false;

  constructor(
    /** What the folder's JSON files say (see inspectModel). */
    readonly info: ModelInfo,
    /** Where the model came from (URL or path). */
    readonly source: string,
    /** Image size in pixels [height, width] at the model's default. */
    readonly imageSize: readonly [number, number],
    /** @internal */ readonly rt: Runtime,
    /** @internal */ readonly loaded: Loaded,
  ) {
    this.adapterName = rt.gpu.adapterName;
    this.precision = (loaded.kind === 'class' ? loaded.ldm : loaded.sd).precision.description;
    ({ kind: this.kind, classNames: this.classNames, numClasses: this.numClasses, nullClass: this.nullClass, defaults: this.defaults } = info);
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

/**
 * What a model is (kind, pipeline, classes, defaults), from its JSON files alone: no weights are
 * read and no GPU is asked for, so options can be checked before the slow part starts.
 */
export async function inspectModel(source: string | FolderReader, opts: Pick<LoadModelOptions, 'cache' | 'onCacheHit'> = {}): Promise<ModelInfo> {
  return readModelInfo(readerFor(source, opts).reader);
}

export async function loadModel(source: string | FolderReader, opts: LoadModelOptions = {}): Promise<Model> {
  const { reader, where } = readerFor(source, opts);
  // A folder that is not a supported model fails here, before the GPU is asked for.
  const info = await readModelInfo(reader);
  const precision = opts.precision ?? 'auto';
  const gpu = opts.gpu ?? (await getGpu({ wantF16: precision !== 'f32' }));
  const rt = runtimeFor(gpu);
  // Before any weight is read: f16 on a device without shader-f16 fails here.
  resolvePrecision(gpu.features, precision);
  let model: Model;
  if (info.kind === 'text') {
    const sd = await loadSdFrom(rt, reader, where, { precision });
    const f = sd.vae.scaleFactor;
    model = new Model(info, where, [sd.unet.sampleSize * f, sd.unet.sampleSize * f], rt, { kind: 'text', sd });
  } else {
    const ldm = await loadLdmFrom(rt, reader, where, { precision });
    const side = ldm.unet.sampleSize * ldm.vae.scaleFactor;
    let preview: PreviewFactors | null = null;
    try {
      // Checked at load, not at the first preview: a bad card entry fails here, naming the file.
      if (info.preview !== undefined) preview = parsePreviewFactors(info.preview, ldm.unet.inChannels, ldm.vae.outChannels, reader.where('fresco.json'));
    } catch (e) {
      ldm.destroy();
      throw e;
    }
    model = new Model(info, where, [side, side], rt, { kind: 'class', ldm, preview });
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
  /**
   * Images per row of the grid `image` and the previews are laid out in (default: count, so each
   * class or prompt has a row, when count > 1; else near square).
   */
  columns?: number;
  /**
   * img2img: start from this image (RGBA pixels, such as ImageData or a decoded PNG) instead of
   * pure noise, the same image for every image generated. Its size must be the size generated
   * unless `resize` is set. Not for Stable Diffusion XL.
   */
  initImage?: RgbaPixels;
  /** Inpainting (needs initImage): white pixels are repainted, black ones kept; its size as initImage's. */
  mask?: RgbaPixels;
  /** img2img: how far to noise initImage, 0 < strength <= 1 (default 0.8, as diffusers). */
  strength?: number;
  /** Resize initImage and mask to the size generated (Lanczos, as diffusers' image processor) instead of refusing another size. */
  resize?: boolean;
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
  /** Images per row of `image` (the grid). */
  columns: number;
}

function classLabels(model: Model, classes: GenerateOptions['class']): number[] {
  if (model.numClasses === null) throw new GenerateOptionsError(`${model.source} is not class-conditional: its U-Net has no num_class_embeds`);
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

/** The grid's images per row: as asked (at most the batch), else a row per class or prompt, else near square. */
function gridColumns(asked: number | undefined, count: number, batch: number): number {
  return Math.min(batch, asked ?? (count > 1 ? count : Math.ceil(Math.sqrt(batch))));
}

/** initImage and mask as the pipelines take them: [B, C, H, W] and [B, 1, H, W], repeated over the batch. */
function initInputs(opts: GenerateOptions, [height, width]: readonly [number, number], channels: number, batch: number, xl: boolean) {
  const fail = (m: string) => new GenerateOptionsError(m);
  if (opts.initImage === undefined) {
    for (const k of ['mask', 'strength'] as const) if (opts[k] !== undefined) throw fail(`${k} needs initImage (img2img or inpainting starts from an image)`);
    return {};
  }
  if (xl) throw fail('initImage and mask (img2img, inpainting) are not supported for Stable Diffusion XL');
  const strength = opts.strength ?? 0.8;
  if (typeof strength !== 'number' || !(strength > 0 && strength <= 1)) throw fail(`strength must be in (0, 1], got ${JSON.stringify(opts.strength)}`);
  const prepare = (img: RgbaPixels, what: string) => {
    checkRgba(img, what, fail);
    if (opts.resize) return resizeRgba(img, width, height);
    if (img.width !== width || img.height !== height) throw fail(`${what} is ${img.width}x${img.height} but the images generated are ${width}x${height}; pass resize: true to resize it`);
    return img;
  };
  const repeat = (x: Float32Array) => {
    const out = new Float32Array(x.length * batch);
    for (let i = 0; i < batch; i++) out.set(x, i * x.length);
    return out;
  };
  const initImage = repeat(rgbaToImageTensor(prepare(opts.initImage, 'initImage'), channels));
  const mask = opts.mask === undefined ? undefined : repeat(rgbaToMask(prepare(opts.mask, 'mask')));
  return { initImage, strength, ...(mask ? { mask } : {}) };
}

/** The seed generate() draws when none is given (a whole number below 2³¹, as the CLI prints it). */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
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
  if (opts.columns !== undefined && !(Number.isInteger(opts.columns) && opts.columns >= 1)) throw new GenerateOptionsError(`columns must be a positive whole number, got ${opts.columns}`);
  if (opts.signal?.aborted) throw new CancelledError();
  const { rt, loaded } = model;
  const seed = opts.seed ?? randomSeed();
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
    cols = gridColumns(opts.columns, count, batch);
    const { unet } = loaded.ldm;
    latentShape = [batch, unet.inChannels, unet.sampleSize, unet.sampleSize];
    // The card's own factors when it has them; otherwise nothing is known about this VAE's latents.
    previewMode = loaded.preview ? { factors: loaded.preview } : 'normalize';
    const init = initInputs(opts, model.imageSize, loaded.ldm.vae.inChannels, batch, false);
    run = generateClassConditional(rt, loaded.ldm, { ...common, ...init, classLabels: classLabelsBatch, nullClass: model.nullClass!, onStep: onStep(cols) });
  } else {
    if (opts.class !== undefined) throw new GenerateOptionsError(`${model.source} is a text-to-image model: it takes prompt, not class`);
    if (opts.prompt === undefined) throw new GenerateOptionsError(`${model.source} is a text-to-image model: prompt is required`);
    if (sdxlGiven.length && !loaded.sd.xl) throw new GenerateOptionsError(`${sdxlApply} pipelines only (${model.source} is a ${loaded.sd.pipeline ?? 'StableDiffusionPipeline'})`);
    const given = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
    const prompts = given.flatMap((p) => new Array<string>(count).fill(p));
    const xlOptions = sdxlOptions(opts, given.length, count);
    batch = prompts.length;
    cols = gridColumns(opts.columns, count, batch);
    const { unet, vae } = loaded.sd;
    const f = vae.scaleFactor;
    const [height, width] = [opts.height ?? model.imageSize[0], opts.width ?? model.imageSize[1]];
    for (const [k, v] of [['width', width], ['height', height]] as const) {
      if (!Number.isInteger(v) || v < f || v % f) throw new GenerateOptionsError(`${k} must be a positive multiple of ${f} for this model (its VAE's scale factor), got ${v}`);
    }
    const init = initInputs(opts, [height, width], vae.inChannels, batch, !!loaded.sd.xl);
    latentShape = [batch, unet.inChannels, Math.floor(height / f), Math.floor(width / f)];
    // SD_LATENT_RGB is fitted to SD 1.x/2.x's VAE; SDXL's VAE has other latents, so its previews are only stretched.
    previewMode = unet.inChannels === 4 && !loaded.sd.xl ? 'sd' : 'normalize';
    run = generateFromText(rt, loaded.sd, { ...common, prompt: prompts, negativePrompt: opts.negativePrompt, ...xlOptions, ...init, width, height, onStep: onStep(cols) });
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
    columns: cols,
  };
}
