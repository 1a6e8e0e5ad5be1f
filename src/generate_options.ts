// generate()'s options, checked against what a model is (its ModelInfo) and completed with its
// defaults, without the GPU: the library's generate() and the CLI (before it loads anything) both
// call resolveGenerateOptions, so a bad option fails in milliseconds with a GenerateOptionsError
// and defaults, batching, the grid and init images are decided in one place.
import { GenerateOptionsError } from './errors.ts';
import { checkRgba, grayRgba, resizeRgba, rgbaToImageTensor, rgbaToMask, type RgbaPixels } from './io/image_input.ts';
import { resolveClassLabels } from './pipelines/class_names.ts';
import { checkWeighting, type ControlWeighting } from './pipelines/controlnet.ts';
import { img2imgStartStep } from './pipelines/img2img.ts';
import type { ModelInfo } from './pipelines/model_info.ts';
import { SDXL_OPTIONS, type SdxlSizeOptions, type Size } from './pipelines/text_to_image.ts';
import type { RgbaImage } from './preview.ts';
import type { CompileEvent } from './pipelines/denoise.ts';
import type { SchedulerName } from './schedulers/registry.ts';

export type { RgbaPixels, CompileEvent };

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
  /**
   * Told before shaders are compiled: how many pipelines, for which stage. A model's first run (and
   * a first run at a new size or batch) compiles its pipelines before the first step, which can take
   * seconds on a GPU in a browser; a page can say so instead of showing step 0 for that long.
   */
  onCompile?: (e: CompileEvent) => void;
  /** Read back and map the latents to RGB every N steps (0 or absent: no previews). */
  previewEvery?: number;
  /**
   * Images per row of the grid `image` and the previews are laid out in (default: count, so each
   * class or prompt has a row, when count > 1; else near square).
   */
  columns?: number;
  /**
   * img2img: start from this image (RGBA pixels, such as ImageData or a decoded PNG) instead of
   * pure noise, the same image for every image generated (alpha is ignored). Its size must be the
   * size generated unless `resize` is set; text models given no width or height generate at its
   * size, rounded down to the VAE's multiple (as diffusers' img2img). Not for Stable Diffusion XL.
   */
  initImage?: RgbaPixels;
  /** Inpainting (needs initImage): white pixels are repainted, black ones kept; its size as initImage's. */
  mask?: RgbaPixels;
  /** img2img: how far to noise initImage, 0 < strength <= 1 (default 0.8, as diffusers). */
  strength?: number;
  /**
   * Resize initImage, mask and controlImage to the size generated (Lanczos, as diffusers' image
   * processors) instead of refusing another size.
   */
  resize?: boolean;
  /**
   * ControlNet (a model loaded with loadModel's `controlnet` option): the control image of each
   * ControlNet, in the order they were loaded (one image, or a list of one per net), as RGBA pixels
   * (alpha ignored) already in the form the net was trained on: an edge map, a depth map, a pose.
   * The same control image guides every image generated. Its size must be the size generated
   * unless `resize` is set; without width and height, the first one's size, rounded down to the
   * VAE's multiple, is the size generated (as diffusers' StableDiffusionControlNetPipeline).
   * Required for such a model; not with initImage.
   */
  controlImage?: RgbaPixels | RgbaPixels[];
  /** How strongly each ControlNet steers (diffusers' controlnet_conditioning_scale): one for all or one per net; default 1. */
  controlScale?: number | number[];
  /**
   * The share of the steps each ControlNet acts in (control_guidance_start and _end, 0 <= start <
   * end <= 1): one for all or one per net; default 0 and 1. A net is skipped on step i of n where
   * i/n < start or (i + 1)/n > end.
   */
  controlStart?: number | number[];
  controlEnd?: number | number[];
}

/** The SDXL options as generateFromText takes them, prompt2 lists repeated `count` times like the prompts. */
export type SdxlRunOptions = Partial<Pick<GenerateOptions, (typeof SDXL_OPTIONS)[number]>>;

/** Everything a run needs, checked, with the model's defaults filled in. */
export interface ResolvedOptions {
  seed: number;
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
  eta?: number;
  count: number;
  /** Images in the batch: classes or prompts, times count. */
  batch: number;
  columns: number;
  previewEvery: number;
  /** Image size in pixels. */
  height: number;
  width: number;
  /** Class models: one label per image. */
  classLabels?: number[];
  /** Text models: one prompt per image, and the SDXL options. */
  prompts?: string[];
  sdxl: SdxlRunOptions;
  /** img2img / inpainting (null without initImage): its strength, and whether it and the mask are resized. */
  init: InitPlan | null;
  /** ControlNet runs (null for a model without ControlNets): each net's weighting, and whether the control images are resized. */
  control: ControlPlan | null;
}

export interface ControlPlan {
  /** One per ControlNet, in order. */
  weights: ControlWeighting[];
  resize: boolean;
}

/** The generate() options of ControlNet runs. */
const CONTROL_OPTIONS = ['controlImage', 'controlScale', 'controlStart', 'controlEnd'] as const;

export interface InitPlan {
  strength: number;
  resize: boolean;
}

const fail = (message: string) => new GenerateOptionsError(message);

/** The seed generate() draws when none is given (a whole number below 2³¹, as the CLI prints it). */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

function sdxlOptions(opts: GenerateOptions, prompts: number, count: number): SdxlRunOptions {
  const out: SdxlRunOptions = {};
  for (const k of SDXL_OPTIONS) {
    const v = opts[k];
    if (v === undefined) continue;
    if (k === 'prompt2') {
      const list = v as string | string[];
      if (typeof list !== 'string' && !(Array.isArray(list) && list.every((p) => typeof p === 'string'))) throw fail(`prompt2 must be a string or one string per prompt, got ${JSON.stringify(list)}`);
      if (Array.isArray(list) && list.length !== prompts) throw fail(`prompt2: ${list.length} given for ${prompts} prompts`);
      out.prompt2 = typeof list === 'string' ? list : list.flatMap((p) => new Array<string>(count).fill(p));
    } else if (k === 'negativePrompt2') {
      if (typeof v !== 'string') throw fail(`negativePrompt2 must be a string, got ${JSON.stringify(v)}`);
      out.negativePrompt2 = v;
    } else {
      const what = /crops/i.test(k) ? '[top, left]' : '[height, width]';
      if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) throw fail(`${k} must be ${what}: two whole numbers of pixels, got ${JSON.stringify(v)}`);
      out[k] = [v[0], v[1]] as Size;
    }
  }
  return out;
}

/** The grid's images per row: as asked (at most the batch), else a row per class or prompt, else near square. */
function gridColumns(asked: number | undefined, count: number, batch: number): number {
  return Math.min(batch, asked ?? (count > 1 ? count : Math.ceil(Math.sqrt(batch))));
}

function wholeAtLeast(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw fail(`${name} must be a whole number >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * The init image's strength, checked against the steps, and whether it and the mask are resized;
 * without resizing, their size must be the size generated. Their tensors come later (initTensors).
 */
function checkInit(opts: GenerateOptions, [height, width]: readonly [number, number], steps: number, resize: boolean): InitPlan {
  const strength = opts.strength ?? 0.8;
  if (typeof strength !== 'number' || !(strength > 0 && strength <= 1)) throw fail(`strength must be in (0, 1], got ${JSON.stringify(opts.strength)}`);
  try {
    img2imgStartStep(steps, strength);
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (!resize) {
    for (const [what, img] of [['initImage', opts.initImage], ['mask', opts.mask]] as const) {
      if (img && (img.width !== width || img.height !== height)) throw fail(`${what} is ${img.width}x${img.height} but the images generated are ${width}x${height}; pass resize: true to resize it`);
    }
  }
  return { strength, resize };
}

/**
 * initImage and mask as the pipelines take them, [B, C, H, W] in [-1, 1] and [B, 1, H, W] in
 * {0, 1}, repeated over the batch, for options resolveGenerateOptions accepted; `channels` are the
 * VAE's. Done once per run, apart from the checks, since a resize is a lot of arithmetic.
 */
export function initTensors(opts: GenerateOptions, o: ResolvedOptions, channels: number): { initImage?: Float32Array; mask?: Float32Array; strength?: number } {
  if (!o.init || !opts.initImage) return {};
  const fit = (img: RgbaPixels) => (o.init!.resize ? resizeRgba(img, o.width, o.height) : img);
  const repeat = (x: Float32Array) => {
    const out = new Float32Array(x.length * o.batch);
    for (let i = 0; i < o.batch; i++) out.set(x, i * x.length);
    return out;
  };
  const initImage = repeat(rgbaToImageTensor(fit(opts.initImage), channels));
  // As diffusers' mask processor: gray, then resize, then binarize.
  const mask = opts.mask === undefined ? undefined : repeat(rgbaToMask(fit(grayRgba(opts.mask))));
  return { initImage, strength: o.init.strength, ...(mask ? { mask } : {}) };
}

/** A number for every net, or one per net: `name`'s values, `fallback` where absent. */
function perNet(name: string, v: number | number[] | undefined, nets: number, fallback: number): number[] {
  if (v === undefined) return new Array<number>(nets).fill(fallback);
  if (typeof v === 'number') return new Array<number>(nets).fill(v);
  if (!Array.isArray(v) || v.length !== nets) throw fail(`${name}: ${Array.isArray(v) ? `${v.length} values` : JSON.stringify(v)} for ${nets} ControlNet${nets > 1 ? 's' : ''} (give one number for all, or one per net)`);
  return v;
}

/** The control images as a list (checked as RGBA pixels), one per net. */
function controlImages(opts: GenerateOptions, nets: number): RgbaPixels[] {
  const given = opts.controlImage;
  const list = given === undefined ? [] : Array.isArray(given) ? given : [given];
  if (list.length !== nets) throw fail(`this model was loaded with ${nets} ControlNet${nets > 1 ? 's' : ''}: controlImage needs ${nets === 1 ? 'one image' : `${nets} images, one per net`}, got ${list.length}`);
  list.forEach((img, k) => checkRgba(img, nets > 1 ? `controlImage[${k}]` : 'controlImage', fail));
  return list;
}

/**
 * The ControlNet weighting of each net, checked as diffusers' check_inputs does, and whether the
 * control images are resized; without resizing each must be the size generated (`sized`: the size
 * came from the first image, rounded down, and only that rounding is a resize).
 */
function checkControl(opts: GenerateOptions, nets: number, [height, width]: readonly [number, number], resize: boolean, fromImage: boolean): ControlPlan {
  const images = controlImages(opts, nets);
  const scales = perNet('controlScale', opts.controlScale, nets, 1);
  const starts = perNet('controlStart', opts.controlStart, nets, 0);
  const ends = perNet('controlEnd', opts.controlEnd, nets, 1);
  const weights = scales.map((scale, k) => ({ scale, start: starts[k]!, end: ends[k]! }));
  weights.forEach((w, k) => checkWeighting(w, nets > 1 ? `ControlNet ${k}:` : 'ControlNet:', fail));
  if (!resize) {
    const [h, w] = fromImage ? [images[0]!.height, images[0]!.width] : [height, width];
    images.forEach((img, k) => {
      if (img.width !== w || img.height !== h) throw fail(`${nets > 1 ? `controlImage[${k}]` : 'controlImage'} is ${img.width}x${img.height} but ${fromImage ? 'the first control image' : 'the images generated'} ${fromImage ? 'is' : 'are'} ${w}x${h}; pass resize: true to resize it`);
    });
  }
  return { weights, resize: resize || fromImage };
}

/**
 * The control images as the ControlNets take them, [3, H, W] RGB in [0, 1] at the size generated
 * (diffusers' control image processor: RGB, Lanczos resize, / 255, no normalizing), one per net,
 * for options resolveGenerateOptions accepted.
 */
export function controlTensors(opts: GenerateOptions, o: ResolvedOptions): Float32Array[] {
  if (!o.control || opts.controlImage === undefined) return [];
  const list = Array.isArray(opts.controlImage) ? opts.controlImage : [opts.controlImage];
  return list.map((img) => controlImageTensor(o.control!.resize ? resizeRgba(img, o.width, o.height) : img));
}

/** One control image as [3, H, W] RGB in [0, 1] (pixel / 255 in float32, as pil_to_numpy), alpha ignored. */
export function controlImageTensor(img: RgbaPixels): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let p = 0; p < n; p++) out[c * n + p] = Math.fround(img.data[4 * p + c]! / 255);
  return out;
}

/**
 * Checks `opts` against the model `info` describes and fills in its defaults. `source` names the
 * model in messages. Every problem is a GenerateOptionsError, raised before any GPU work.
 */
export function resolveGenerateOptions(info: ModelInfo, opts: GenerateOptions, source: string): ResolvedOptions {
  const count = wholeAtLeast('count', opts.count ?? 1, 1);
  const previewEvery = wholeAtLeast('previewEvery', opts.previewEvery ?? 0, 0);
  if (opts.columns !== undefined) wholeAtLeast('columns', opts.columns, 1);
  const seed = opts.seed === undefined ? randomSeed() : wholeAtLeast('seed', opts.seed, 0);
  const steps = wholeAtLeast('steps', opts.steps ?? info.defaults.steps, 1);
  const guidance = opts.guidance ?? info.defaults.guidance;
  if (typeof guidance !== 'number' || !Number.isFinite(guidance) || guidance < 0) throw fail(`guidance must be a finite number >= 0, got ${JSON.stringify(guidance)}`);
  const scheduler = opts.scheduler ?? info.defaults.scheduler;
  if (opts.eta !== undefined && !(typeof opts.eta === 'number' && opts.eta >= 0 && opts.eta <= 1)) throw fail(`eta must be in [0, 1], got ${JSON.stringify(opts.eta)}`);
  if ((opts.eta ?? 0) > 0 && scheduler !== 'ddim') throw fail(`eta applies to the ddim scheduler only; this run uses ${scheduler}`);
  if (opts.initImage === undefined) {
    for (const k of ['mask', 'strength'] as const) if (opts[k] !== undefined) throw fail(`${k} needs initImage (img2img or inpainting starts from an image)`);
  } else {
    checkRgba(opts.initImage, 'initImage', fail);
    if (opts.mask !== undefined) checkRgba(opts.mask, 'mask', fail);
  }
  const sdxlGiven = SDXL_OPTIONS.filter((k) => opts[k] !== undefined);
  const sdxlApply = `${sdxlGiven.join(', ')} ${sdxlGiven.length > 1 ? 'apply' : 'applies'} to Stable Diffusion XL`;
  const common = { seed, steps, guidance, scheduler, ...(opts.eta !== undefined ? { eta: opts.eta } : {}), count, previewEvery };
  const f = info.scaleFactor;

  if (info.kind === 'class') {
    if (opts.prompt !== undefined || opts.negativePrompt !== undefined) throw fail(`${source} is class-conditional: it takes class, not prompt`);
    if (sdxlGiven.length) throw fail(`${source} is class-conditional: ${sdxlApply} text models only`);
    const controlGiven = CONTROL_OPTIONS.filter((k) => opts[k] !== undefined);
    if (controlGiven.length) throw fail(`${source} is class-conditional: ${controlGiven.join(', ')} (ControlNet) apply to Stable Diffusion models loaded with a ControlNet`);
    if (opts.width !== undefined || opts.height !== undefined) throw fail(`${source} generates ${info.imageSize[1]}x${info.imageSize[0]} images only: width and height apply to text models`);
    if (info.numClasses === null) throw fail(`${source} is not class-conditional: its U-Net has no num_class_embeds`);
    const list = opts.class === undefined ? [] : Array.isArray(opts.class) ? opts.class : [opts.class];
    if (list.length === 0) throw fail('this model is class-conditional: pass class (a label or a class name)');
    const labels = resolveClassLabels(list, info.classNames, info.numClasses, info.nullClass!, fail);
    const classLabels = labels.flatMap((l) => new Array<number>(count).fill(l));
    const batch = classLabels.length;
    const [height, width] = info.imageSize;
    const init = opts.initImage ? checkInit(opts, [height, width], steps, !!opts.resize) : null;
    return { ...common, batch, columns: gridColumns(opts.columns, count, batch), height, width, classLabels, sdxl: {}, init, control: null };
  }

  if (opts.class !== undefined) throw fail(`${source} is a text-to-image model: it takes prompt, not class`);
  if (opts.prompt === undefined) throw fail(`${source} is a text-to-image model: prompt is required`);
  const given = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
  if (!Array.isArray(given) || given.length === 0 || !given.every((p) => typeof p === 'string')) throw fail(`prompt must be a string or a non-empty list of strings, got ${JSON.stringify(opts.prompt)}`);
  if (opts.negativePrompt !== undefined && typeof opts.negativePrompt !== 'string') throw fail(`negativePrompt must be a string, got ${JSON.stringify(opts.negativePrompt)}`);
  if (sdxlGiven.length && !info.xl) throw fail(`${sdxlApply} pipelines only (${source} is a ${info.pipeline})`);
  if (opts.initImage && info.xl) throw fail('initImage and mask (img2img, inpainting) are not supported for Stable Diffusion XL');
  const nets = info.controlnets ?? 0;
  const controlGiven = CONTROL_OPTIONS.filter((k) => opts[k] !== undefined);
  if (!nets && controlGiven.length) throw fail(`${controlGiven.join(', ')} ${controlGiven.length > 1 ? 'apply' : 'applies'} to a model loaded with a ControlNet (loadModel's controlnet option); ${source} has none`);
  if (nets && opts.initImage) throw fail('initImage and mask (img2img, inpainting) do not go with ControlNets (StableDiffusionControlNetImg2ImgPipeline / InpaintPipeline are not built)');
  const prompts = given.flatMap((p) => new Array<string>(count).fill(p));
  const batch = prompts.length;
  // As diffusers' img2img and ControlNet pipelines: without a size, the init (or first control)
  // image's own, rounded down to the VAE's multiple; a ControlNet run given one side takes the
  // other from the control image (VaeImageProcessor.get_default_height_width, side by side).
  const unsized = opts.width === undefined && opts.height === undefined;
  const first = nets ? controlImages(opts, nets)[0] : undefined;
  const fromInit = opts.initImage && unsized;
  const fromControl = !!first && (opts.width === undefined || opts.height === undefined);
  const sizeFrom = fromInit ? opts.initImage! : fromControl ? first! : null;
  const height = opts.height ?? (sizeFrom ? Math.floor(sizeFrom.height / f) * f : info.imageSize[0]);
  const width = opts.width ?? (sizeFrom ? Math.floor(sizeFrom.width / f) * f : info.imageSize[1]);
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < f || v % f) throw fail(`${k} must be a positive multiple of ${f} for this model (its VAE's scale factor), got ${v}`);
  }
  const init = opts.initImage ? checkInit(opts, [height, width], steps, !!opts.resize || !!fromInit) : null;
  const control = nets ? checkControl(opts, nets, [height, width], !!opts.resize, fromControl) : null;
  return { ...common, batch, columns: gridColumns(opts.columns, count, batch), height, width, prompts, sdxl: sdxlOptions(opts, given.length, count), init, control };
}
