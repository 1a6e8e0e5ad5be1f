// The library facade: loadModel(source) and generate(model, options), the same in a page, a Web
// Worker and Node. A source is a URL (fetched, streamed, kept in the Cache API), a Hugging Face
// Hub repository (`hf:owner/name[@revision]`, read by URL: src/io/hub.ts), a folder on disk
// (Node), or any FolderReader. The folder says what it is: model_index.json makes it a Stable
// Diffusion (text) pipeline, otherwise it is a class-conditional LDM (unet/, vae/, scheduler/,
// and optionally Fresco's fresco.json card with class names and defaults). The CLI and the demo
// go through these two functions too, so options, defaults and batching behave alike everywhere.
import { getGpu, type GpuContext } from './gpu/device.ts';
import { Runtime } from './gpu/runtime.ts';
import { nodeFolderReader, type FolderReader } from './io/model_folder.ts';
import { urlFolderReader } from './io/url_reader.ts';
import type { StorageWarning } from './io/model_cache.ts';
import { DEFAULT_HUB_ENDPOINT, hubRepoOfUrl, resolveHubSource, type WeightVariant } from './io/hub.ts';
import type { PresetName } from './pipelines/presets.ts';
import { resolvePrecision, type Precision, type WeightFormat } from './models/precision.ts';
import { generateClassConditional } from './pipelines/class_conditional.ts';
import type { GenerationResult } from './pipelines/denoise.ts';
import { loadLdmFrom, type LdmModel } from './pipelines/ldm_folder.ts';
import { readModelInfo, type ModelDefaults, type ModelInfo, type ModelKind } from './pipelines/model_info.ts';
import { loadSdFrom, type SdModel } from './pipelines/sd_folder.ts';
import { generateFromText } from './pipelines/text_to_image.ts';
import { imageToRgba, latentPreview, parsePreviewFactors, type PreviewFactors, type PreviewMode, type RgbaImage } from './preview.ts';
import { controlTensors, initTensors, resolveGenerateOptions, type GenerateOptions, type RgbaPixels } from './generate_options.ts';
import { cannyEdges as cannyOnGpu, type CannyOptions } from './pipelines/canny.ts';
import { CancelledError, DownloadError, GenerateOptionsError, GpuError, TokenizerError } from './errors.ts';
import { isHubSource } from './io/hub.ts';
import { isUrlSource } from './io/source_kind.ts';
import { readLoraLayers } from './io/lora_file.ts';
import { readLoraSource, readSourceBytes, type LoadLoraOptions, type LoraSource } from './io/lora_source.ts';
import { readInversionBytes } from './io/textual_inversion.ts';
import { addTextualInversion } from './pipelines/textual_inversion.ts';
import { LoraSet, type LoraInfo, type LoraTargets } from './models/lora.ts';

export type { ModelDefaults, ModelInfo, ModelKind };
export { randomSeed, resolveGenerateOptions, type GenerateOptions, type ResolvedOptions, type StepEvent, type CompileEvent, type RgbaPixels } from './generate_options.ts';

export interface LoadModelOptions {
  /**
   * 'auto' (default: f16 weights on every device; f16 activations where it has shader-f16, f32
   * compute elsewhere), 'f16' (a PrecisionError without shader-f16) or 'f32' (f32 weights and
   * activations). Model.precision says which path runs.
   */
  precision?: Precision;
  /**
   * The U-Net's (and ControlNets') Linear and conv weights: 'q8' per-channel int8 (about half of
   * the f16 bytes in GPU memory), 'q4' 4-bit in blocks of 32 (about a quarter), quantized while
   * loading; 'float' to dequantize a pre-quantized folder (`fresco quantize` writes them, so the
   * download shrinks too). Default: as the files have them. Each costs accuracy: README's table.
   */
  weights?: WeightFormat;
  /** Bytes of `file` read so far; `total` is 0 when a server sends no length. */
  onProgress?: (loadedBytes: number, totalBytes: number, file: string) => void;
  /** URL sources: keep files in the Cache API where it exists (default true). */
  cache?: boolean;
  /** URL sources: told about each file read from the cache instead of the network. */
  onCacheHit?: (file: string) => void;
  /** A device to use instead of the shared one. */
  gpu?: GpuContext;
  /** URL and hf: sources: a fetch to use instead of the global one (an Authorization header for gated repositories, tests). */
  fetch?: typeof fetch;
  /** hf: sources that name no `@revision`: the branch, tag, commit sha or refs/pr/N to read (default 'main'). */
  revision?: string;
  /** hf: sources: the Hub's address, for mirrors (default: HF_ENDPOINT in Node, else https://huggingface.co). */
  hubEndpoint?: string;
  /**
   * Weight files to prefer where a folder has both: 'fp16' reads `*.fp16.safetensors` before the
   * plain files (half the download), null the plain files first. Default: 'fp16' for Hub sources
   * (hf:, or a Hub resolve URL), null otherwise.
   */
  variant?: WeightVariant | null;
  /**
   * A few-step preset's defaults (steps, guidance, scheduler and its config, image size; see
   * src/pipelines/presets.ts): 'sd-turbo', 'sdxl-turbo' or 'lcm' for a folder that is not
   * recognised as one (a self-hosted copy), null for none. Default: detected from the Hub
   * repository (stabilityai/sd-turbo, stabilityai/sdxl-turbo, SimianLuo/LCM_Dreamshaper_v7) or the
   * configs (an LCM-distilled U-Net or an LCMScheduler folder: 'lcm'). ModelInfo.preset says which applies.
   */
  preset?: PresetName | null;
  /**
   * URL sources: a file the Cache API could not keep (over quota, a failed write). The load goes
   * on from the network; without this a console.warn gives the sizes.
   */
  onStorageWarning?: (warning: StorageWarning) => void;
  /** URL sources: the answer to navigator.storage.persist(), asked once per page before the first weight file is stored. */
  onPersist?: (granted: boolean) => void;
  /**
   * GPU bytes the weights may take; a model needing more fails before any weight byte is
   * downloaded (WebGPU does not say how much memory an adapter has: pass what you can spare).
   */
  maxGpuBytes?: number;
  /**
   * ControlNets to run with a Stable Diffusion 1.x/2.x pipeline (diffusers'
   * StableDiffusionControlNetPipeline; several at once: MultiControlNetModel): a ControlNet folder
   * (config.json + diffusion_pytorch_model.safetensors) given as the model is (URL, hf:owner/name,
   * path, FolderReader), or a list. Each is checked against the U-Net before any weight is read and
   * loaded with the model; generate() then takes controlImage (one per net) and controlScale,
   * controlStart, controlEnd. ModelInfo.controlnets counts them.
   */
  controlnet?: string | FolderReader | readonly (string | FolderReader)[];
}

type Loaded = { kind: 'class'; ldm: LdmModel; preview: PreviewFactors | null } | { kind: 'text'; sd: SdModel };

export class Model {
  /** The adapter, as the device reports it ("google / swiftshader", "mesa / lavapipe"). */
  readonly adapterName: string;
  /** The storage type the weights were built in, and why (and the U-Net's quantized weights' format, if any). */
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
  /** Image size in pixels [height, width] at the model's default. */
  readonly imageSize: readonly [number, number];
  /** GPU bytes the weights take (about the fp16 files' size where weights are kept in f16). */
  readonly weightBytes: number;
  private destroyed = false;

  constructor(
    /** What the folder's JSON files say (see inspectModel). */
    readonly info: ModelInfo,
    /** Where the model came from (URL or path). */
    readonly source: string,
    /** @internal */ readonly rt: Runtime,
    /** @internal */ readonly loaded: Loaded,
  ) {
    this.adapterName = rt.gpu.adapterName;
    const pipeline = loaded.kind === 'class' ? loaded.ldm : loaded.sd;
    const quant = [...new Set([...pipeline.unet.w.weights.values()].flatMap((t) => (t.quant ? [t.quant.format] : [])))];
    this.precision = `${pipeline.precision.description}${quant.length ? `; U-Net Linear and conv weights ${quant.join(' and ')}` : ''}`;
    this.weightBytes = pipeline.weightBytes;
    ({ kind: this.kind, classNames: this.classNames, numClasses: this.numClasses, nullClass: this.nullClass, defaults: this.defaults, imageSize: this.imageSize } = info);
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Frees the model's GPU buffers; the device stays (it is shared). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.lora?.destroy();
    (this.loaded.kind === 'class' ? this.loaded.ldm : this.loaded.sd).destroy();
  }

  // Generations share the weights; a LoRA change has them to itself (after the generations
  // already started, before those asked for later).
  private gate: Promise<unknown> = Promise.resolve();
  private readonly running = new Set<Promise<unknown>>();
  private lora: LoraSet | null = null;

  /** @internal */
  shared<T>(f: () => Promise<T>): Promise<T> {
    const p = this.gate.then(f);
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.running.add(settled);
    void settled.then(() => this.running.delete(settled));
    return p;
  }

  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const p = Promise.allSettled([this.gate, ...this.running]).then(f);
    this.gate = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  private loras(): LoraSet {
    if (this.destroyed) throw new GenerateOptionsError('this model was destroyed');
    if (!this.lora) {
      const targets: LoraTargets = this.loaded.kind === 'class' ? { unet: this.loaded.ldm.unet.w } : { unet: this.loaded.sd.unet.w, text_encoder: this.loaded.sd.textEncoder.w, ...(this.loaded.sd.xl ? { text_encoder_2: this.loaded.sd.xl.textEncoder2.w } : {}) };
      const unet = this.loaded.kind === 'class' ? null : this.loaded.sd.unet;
      this.lora = new LoraSet(this.rt, targets, unet ? (unet.config.layers[0] ?? null) : null);
    }
    return this.lora;
  }

  /**
   * Merges a LoRA into the weights at `scale` (default 1): a .safetensors file in diffusers',
   * PEFT's or kohya's key form, given as bytes, a URL, a path (Node) or `hf:owner/name[/file]`
   * (default file pytorch_lora_weights.safetensors). Several can be loaded, each under its own
   * name (default: the file's name). Every layer must match a module of this model. With
   * `fuse: false` the weights stay as they are and each adapted layer adds the LoRA's low-rank
   * term as it runs (diffusers' unfused LoRA): a small cost per step, for scale changes and
   * unloads that are exact. Fused and unfused adapters may be mixed.
   */
  async loadLora(source: LoraSource, opts: LoadLoraOptions = {}): Promise<LoraInfo> {
    this.loras();
    // Read and parsed before taking the weights: a slow download holds up no generation.
    const { tensors, where, name } = await readLoraSource(source, opts);
    const layers = readLoraLayers(tensors, where);
    return this.exclusive(async () => {
      const set = this.loras();
      const adapter = opts.name ?? name;
      await set.load(adapter, layers, opts.scale ?? 1, where, opts.fuse === false ? 'unfused' : opts.fuse === true ? 'fused' : 'auto');
      return set.list().find((a) => a.name === adapter)!;
    });
  }

  /** New scales for loaded LoRAs, by name: fused ones change the weights by the difference, unfused ones only their own terms (no reload). */
  setLoraScales(scales: Record<string, number>): Promise<void> {
    return this.exclusive(() => this.loras().setScales(scales));
  }

  /** Takes a LoRA (or, without a name, every one) out of the weights, or off them (unfused). */
  unloadLora(name?: string): Promise<void> {
    return this.exclusive(() => this.loras().unload(name));
  }

  /**
   * Adds a textual inversion embedding (a .safetensors: {token: vectors}, A1111's emb_params, or
   * SDXL's clip_l + clip_g) as diffusers' load_textual_inversion does: the token (the file's own,
   * or `token`) and, for n vectors, `token_1` … `token_{n-1}` join the tokenizer(s), their rows the
   * text encoder(s); a prompt naming the token gets all n. Returns the tokens added.
   */
  async loadTextualInversion(source: LoraSource, opts: { token?: string; name?: string; fetch?: typeof fetch; hubEndpoint?: string } = {}): Promise<string[]> {
    if (this.destroyed) throw new GenerateOptionsError('this model was destroyed');
    if (this.loaded.kind !== 'text') throw new TokenizerError(`${this.source} is class-conditional: textual inversion applies to text-to-image models`);
    // Read before taking the model: a slow download holds up no generation. A Hub repository
    // named without a file is read as diffusers does: learned_embeds.safetensors, else .bin.
    const read = (defaultFile: string) => readSourceBytes(source, { ...opts, defaultFile }, /\.(safetensors|bin|pt)$/i, 'embedding');
    const file = await read('learned_embeds.safetensors').catch((e: unknown) => {
      if (typeof source === 'string' && isHubSource(source) && e instanceof DownloadError && / HTTP 404/.test(e.message)) return read('learned_embeds.bin');
      throw e;
    });
    const inv = await readInversionBytes(file.bytes, file.where);
    return this.exclusive(async () => {
      if (this.destroyed || this.loaded.kind !== 'text') throw new GenerateOptionsError('this model was destroyed');
      return addTextualInversion(this.loaded.sd, inv, opts.token || inv.token || file.name, file.where);
    });
  }

  /** The LoRAs loaded, with their scales and modes (fused or not). */
  get loraAdapters(): LoraInfo[] {
    return this.lora?.list() ?? [];
  }
}

/** Only one Runtime per device: it owns the device's uncaptured-error handler and kernel cache. */
const runtimes = new WeakMap<GPUDevice, Runtime>();
function runtimeFor(gpu: GpuContext): Runtime {
  let rt = runtimes.get(gpu.device);
  if (!rt) runtimes.set(gpu.device, (rt = new Runtime(gpu)));
  return rt;
}

/** Reports each small file read whole to onProgress (weight files report as they stream, from the loaders). */
function withProgress(reader: FolderReader, onProgress: LoadModelOptions['onProgress']): FolderReader {
  if (!onProgress) return reader;
  return {
    where: reader.where,
    ...(reader.open ? { open: (name: string) => reader.open!(name) } : {}),
    async read(name) {
      const bytes = await reader.read(name);
      if (bytes) onProgress(bytes.length, bytes.length, name);
      return bytes;
    },
  };
}

interface Source {
  reader: FolderReader;
  where: string;
  /** The Hub repository read from (an hf: source, or a Hub resolve URL), for presets. */
  repo: string | null;
  /** The weight variant to prefer (LoadModelOptions.variant). */
  variant: WeightVariant | null;
}

function readerFor(source: string | FolderReader, opts: LoadModelOptions): Source {
  // f32 weights asked for: the full files, not fp16 ones widened.
  const variant = (hubPrefers: boolean) => (opts.variant !== undefined ? opts.variant : hubPrefers && opts.precision !== 'f32' ? 'fp16' : null);
  if (typeof source !== 'string') return { reader: withProgress(source, opts.onProgress), where: source.where('').replace(/\/$/, ''), repo: null, variant: variant(false) };
  // Weight files report progress as their tensors reach the GPU (the loaders' fill), whatever
  // they come from; the reader reports only the small files it reads whole.
  const url = { cache: opts.cache, onCacheHit: opts.onCacheHit, onStorageWarning: opts.onStorageWarning, onPersist: opts.onPersist, ...(opts.fetch ? { fetch: opts.fetch } : {}) };
  const hub = resolveHubSource(source, { revision: opts.revision, endpoint: opts.hubEndpoint });
  if (hub) return { reader: withProgress(urlFolderReader(hub.baseUrl, url), opts.onProgress), where: hub.baseUrl.replace(/\/$/, ''), repo: hub.repo, variant: variant(true) };
  const where = source.replace(/\/$/, '');
  if (isUrlSource(source)) {
    const repo = hubRepoOfUrl(source, opts.hubEndpoint ?? DEFAULT_HUB_ENDPOINT);
    return { reader: withProgress(urlFolderReader(source, url), opts.onProgress), where, repo, variant: variant(repo !== null) };
  }
  return { reader: withProgress(nodeFolderReader(where), opts.onProgress), where, repo: null, variant: variant(false) };
}

/**
 * What a model is (kind, pipeline, classes, defaults), from its JSON files alone: no weights are
 * read and no GPU is asked for, so options can be checked before the slow part starts.
 */
export async function inspectModel(source: string | FolderReader, opts: Pick<LoadModelOptions, 'cache' | 'onCacheHit' | 'fetch' | 'revision' | 'hubEndpoint' | 'preset' | 'controlnet'> = {}): Promise<ModelInfo> {
  const { reader, repo } = readerFor(source, opts);
  return readModelInfo(reader, { repo, preset: opts.preset, controlnets: controlSources(opts).map((c) => c.reader) });
}

/** loadModel's controlnet option as readers (read as the model is: cache, fetch, Hub), each small file read once. */
function controlSources(opts: LoadModelOptions): { reader: FolderReader; where: string }[] {
  const c = opts.controlnet;
  const list = c === undefined ? [] : typeof c === 'string' || !Array.isArray(c) ? [c as string | FolderReader] : c;
  return list.map((src) => {
    const r = readerFor(src, opts);
    return { reader: readOnce(r.reader), where: r.where };
  });
}

/**
 * The reader with each small file read once per load: readModelInfo and then the component
 * loaders both read the JSON configs, and a second read would be a second request (or a cache
 * hit, and a second storage warning, for a file just downloaded).
 */
function readOnce(reader: FolderReader): FolderReader {
  const seen = new Map<string, Promise<Uint8Array | null>>();
  return {
    where: reader.where,
    read(name) {
      // A weight file read whole (a reader without open()) is not kept past its use.
      if (name.endsWith('.safetensors')) return reader.read(name);
      let p = seen.get(name);
      if (!p) seen.set(name, (p = reader.read(name)));
      return p;
    },
    ...(reader.open ? { open: (name: string) => reader.open!(name) } : {}),
  };
}

export async function loadModel(source: string | FolderReader, opts: LoadModelOptions = {}): Promise<Model> {
  const resolved = readerFor(source, opts);
  const { where, repo, variant } = resolved;
  const reader = readOnce(resolved.reader);
  const controlnets = controlSources(opts);
  // A folder that is not a supported model (or a ControlNet that does not fit it) fails here, before the GPU is asked for.
  const info = await readModelInfo(reader, { repo, preset: opts.preset, controlnets: controlnets.map((c) => c.reader) });
  const precision = opts.precision ?? 'auto';
  const gpu = opts.gpu ?? (await getGpu());
  const rt = runtimeFor(gpu);
  // Before any weight is read: f16 on a device without shader-f16 fails here.
  resolvePrecision(gpu.features, precision);
  let model: Model;
  if (info.kind === 'text') {
    const sd = await loadSdFrom(rt, reader, where, { precision, weights: opts.weights, onProgress: opts.onProgress, variant, maxGpuBytes: opts.maxGpuBytes, controlnets });
    model = new Model(info, where, rt, { kind: 'text', sd });
  } else {
    const ldm = await loadLdmFrom(rt, reader, where, { precision, weights: opts.weights, onProgress: opts.onProgress, variant, maxGpuBytes: opts.maxGpuBytes });
    let preview: PreviewFactors | null = null;
    try {
      // Checked at load, not at the first preview: a bad card entry fails here, naming the file.
      if (info.preview !== undefined) preview = parsePreviewFactors(info.preview, ldm.unet.inChannels, ldm.vae.outChannels, reader.where('fresco.json'));
    } catch (e) {
      ldm.destroy();
      throw e;
    }
    model = new Model(info, where, rt, { kind: 'class', ldm, preview });
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

export interface GenerateResult {
  /** The images as one RGBA grid (`columns` per row), as the CLI writes its PNG. */
  image: RgbaImage;
  /** [B, C, H, W] in [-1, 1], not clamped. */
  raw: Float32Array;
  rawShape: [number, number, number, number];
  seed: number;
  steps: number;
  /** Wall time of each U-Net call, ms (PNDM makes one call more than the steps asked for). */
  stepMs: number[];
  totalMs: number;
  peakBytes: number;
  /** Text models: prompts cut to the tokenizer's length. */
  truncated?: string[];
  /** Images per row of `image` (the grid). */
  columns: number;
}


/**
 * A canny ControlNet's control image from a picture: OpenCV's cv2.Canny(rgb, low, high) (aperture
 * 3, L1 gradient; default thresholds 100 and 200, as diffusers' ControlNet examples), run on the
 * GPU, as white edges on black RGBA pixels of the same size (alpha ignored). `gpu`: a device to
 * use instead of the shared one.
 */
export async function cannyEdges(image: RgbaPixels, opts: CannyOptions & { gpu?: GpuContext } = {}): Promise<RgbaPixels> {
  const gpu = opts.gpu ?? (await getGpu());
  return cannyOnGpu(runtimeFor(gpu), image, opts);
}

function rejectOnLoss(gpu: GpuContext): Promise<never> {
  return gpu.lost.then((m) => Promise.reject(new GpuError(m)));
}

/**
 * Draws images (see GenerateOptions). A LoRA or embedding change is read first and then applied
 * between generations: one already under way finishes on the weights it started with, one asked
 * for while a change is being applied waits for it. A generation never sees half-merged weights.
 */
export function generate(model: Model, opts: GenerateOptions = {}): Promise<GenerateResult> {
  return model.shared(() => generateNow(model, opts));
}

async function generateNow(model: Model, opts: GenerateOptions): Promise<GenerateResult> {
  if (model.isDestroyed) throw new GenerateOptionsError('this model was destroyed');
  const o = resolveGenerateOptions(model.info, opts, model.source);
  if (opts.signal?.aborted) throw new CancelledError();
  const { rt, loaded } = model;
  const init = initTensors(opts, o, model.info.imageChannels);
  const control = o.control ? controlTensors(opts, o).map((image, k) => ({ image, ...o.control!.weights[k]! })) : undefined;
  const common = { seed: o.seed, steps: o.steps, guidanceScale: o.guidance, scheduler: o.scheduler, eta: o.eta, signal: opts.signal, latentsEvery: o.previewEvery, ...(opts.onCompile ? { onCompile: opts.onCompile } : {}), ...init };
  const { inChannels } = loaded.kind === 'class' ? loaded.ldm.unet : loaded.sd.unet;
  const f = model.info.scaleFactor;
  const latentShape = [o.batch, inChannels, o.height / f, o.width / f];
  // The card's own factors when it has them; SD_LATENT_RGB is fitted to SD 1.x/2.x's VAE; other
  // latents (SDXL's, a card without factors) are only stretched.
  const previewMode: PreviewMode = loaded.kind === 'class' ? (loaded.preview ? { factors: loaded.preview } : 'normalize') : inChannels === 4 && !loaded.sd.xl ? 'sd' : 'normalize';
  const onStep =
    opts.onStep &&
    ((e: { index: number; total: number; timestep: number; ms: number; latents?: Float32Array }) => {
      const preview = e.latents ? latentPreview(e.latents, latentShape, previewMode, o.columns) : undefined;
      opts.onStep!({ index: e.index, total: e.total, timestep: e.timestep, ms: e.ms, ...(preview ? { preview } : {}) });
    });
  const run: Promise<GenerationResult & { truncated?: string[] }> =
    loaded.kind === 'class'
      ? generateClassConditional(rt, loaded.ldm, { ...common, classLabels: o.classLabels!, nullClass: model.nullClass!, onStep })
      : generateFromText(rt, loaded.sd, { ...common, prompt: o.prompts!, negativePrompt: opts.negativePrompt, ...o.sdxl, width: o.width, height: o.height, onStep, schedulerConfig: model.info.preset?.schedulerConfig, ...(control ? { control } : {}) });
  // The loop races device loss at every step; this also covers the text encoder and decode, so a
  // lost device rejects instead of leaving a promise that never settles.
  const lost = rejectOnLoss(rt.gpu);
  // Whichever side loses the race still settles later; neither may become an unhandled rejection.
  lost.catch(() => undefined);
  run.catch(() => undefined);
  const result = await Promise.race([run, lost]);
  await rt.assertHealthy();
  return {
    image: imageToRgba(result.image, result.imageShape, o.columns),
    raw: result.image,
    rawShape: result.imageShape,
    seed: o.seed,
    steps: o.steps,
    stepMs: result.stepMs,
    totalMs: result.totalMs,
    peakBytes: result.peakBytes,
    ...(result.truncated ? { truncated: result.truncated } : {}),
    columns: o.columns,
  };
}
