// Random-weight model folders in the layout diffusers' save_pretrained writes, at full size: a
// Stable Diffusion 1.5-shaped pipeline (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
// scheduler/) and an SDXL-shaped U-Net alone (one 5.1 GB fp16 file). For load benchmarks: no real
// weights can be downloaded here, and what a loader costs depends on the files' sizes and layout,
// not on their values.
//
// The key list is what Fresco's own model classes ask for: each model is built once against a
// recording WeightStore on a Runtime whose "device" keeps nothing (recordWeightKeys), so the file
// has exactly the keys and shapes the loader wants. Values are randomWeight's (the same ones
// RandomWeightStore gives, so activations stay O(1)), rounded to f16. Files are written header first,
// then tensor by tensor: no buffer ever holds a whole file.
//
// Node only.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GpuContext } from '../../src/gpu/device.ts';
import { Runtime } from '../../src/gpu/runtime.ts';
import { toF16Array } from '../../src/io/f16.ts';
import { randomWeight } from '../../src/io/random_weights.ts';
import { encodeHeader, type HostTensor } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { CLIPTextModel } from '../../src/models/clip_text_model.ts';
import { readClipTextConfig } from '../../src/models/clip_text_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Bumped when what the generator writes changes, so old folders are not reused. */
const GENERATOR_VERSION = 1;
const STAMP = '.fresco-bench-gen.json';

export type Scale = 'tiny' | 'sd15';
export const SCALES: readonly Scale[] = ['tiny', 'sd15'];

export interface WeightEntry {
  key: string;
  shape: number[];
}

type Json = Record<string, unknown>;

/**
 * A WeightStore that takes every key a model asks for, of any shape, and remembers it. Tensors
 * asked for by claim() never get bytes (the null runtime keeps none); take() gets zeros.
 */
class RecordingStore extends WeightStore {
  readonly asked = new Map<string, number[]>();
  private zeros = new Uint8Array(0);

  constructor() {
    super(new Map<string, HostTensor>(), 'recording store');
  }

  /** Optional layers (a has() check first) are left out, as RandomWeightStore does. */
  override has(): boolean {
    return false;
  }

  override takeHost(key: string, shape: readonly number[]): HostTensor {
    this.asked.set(key, [...shape]);
    const bytes = numelOf(shape) * 4;
    if (this.zeros.byteLength < bytes) this.zeros = new Uint8Array(bytes);
    return { name: key, dtype: 'F32', shape: [...shape], bytes: this.zeros.subarray(0, bytes) };
  }

  override claim(key: string, shape: readonly number[]): void {
    this.asked.set(key, [...shape]);
  }

  override unused(): string[] {
    return [];
  }

  override keys(): string[] {
    return [...this.asked.keys()];
  }
}

/**
 * A Runtime over a device that allocates nothing: building a model on it only walks its
 * constructor (the keys it asks for), without a GPU and without holding the weights.
 */
function nullRuntime(): Runtime {
  // createBuffer's default usage names GPUBufferUsage, which Node has only once a WebGPU package ran.
  const g = globalThis as { GPUBufferUsage?: unknown };
  g.GPUBufferUsage ??= { MAP_READ: 1, MAP_WRITE: 2, COPY_SRC: 4, COPY_DST: 8, INDEX: 16, VERTEX: 32, UNIFORM: 64, STORAGE: 128, INDIRECT: 256, QUERY_RESOLVE: 512 };
  const big = 2 ** 40;
  const limits = { maxStorageBufferBindingSize: big, maxBufferSize: big } as GPUSupportedLimits;
  const device = {
    limits,
    features: new Set<string>(),
    createBuffer: (d: GPUBufferDescriptor) => ({ size: d.size, label: d.label ?? '', destroy() {} }),
    queue: { writeBuffer() {}, submit() {} },
    onuncapturederror: null,
  } as unknown as GPUDevice;
  const gpu: GpuContext = { device, adapterName: 'null device (key recording)', features: new Set(), wgslFeatures: new Set(), limits, lost: new Promise<string>(() => {}), isLost: () => false };
  return new Runtime(gpu);
}

/** The weight keys and shapes a model asks for while `build` builds it, in the order it asks. */
function record(build: (rt: Runtime, store: WeightStore) => { destroy(): void }): WeightEntry[] {
  const store = new RecordingStore();
  build(nullRuntime(), store).destroy();
  return [...store.asked].map(([key, shape]) => ({ key, shape }));
}

const F32 = { precision: 'f32' } as const;
export function unetKeys(config: Json): WeightEntry[] {
  return record((rt, s) => buildModel(UNet2DConditionModel, rt, s, readUNet2DConditionConfig(config, 'unet'), F32));
}
export function vaeKeys(config: Json): WeightEntry[] {
  return record((rt, s) => buildModel(AutoencoderKL, rt, s, readAutoencoderKLConfig(config, 'vae'), F32));
}
export function textEncoderKeys(config: Json): WeightEntry[] {
  return record((rt, s) => buildModel(CLIPTextModel, rt, s, readClipTextConfig(config, 'text_encoder'), F32));
}

export const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * Writes an F16 safetensors file of `entries` (values randomWeight(key, shape, seed)) to `path`:
 * the header, then each tensor as it is made. Returns the file's size.
 */
export function writeRandomSafetensors(path: string, entries: readonly WeightEntry[], seed: number): number {
  const sorted = [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const e of sorted) {
    const bytes = numelOf(e.shape) * 2;
    header[e.key] = { dtype: 'F16', shape: e.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const head = encodeHeader(header);
  const tmp = `${path}.partial`;
  const fd = openSync(tmp, 'w');
  try {
    const put = (b: Uint8Array) => {
      for (let off = 0; off < b.byteLength; ) off += writeSync(fd, b, off, b.byteLength - off);
    };
    put(head);
    for (const e of sorted) {
      const n = numelOf(e.shape);
      const bits = toF16Array(randomWeight(e.key, e.shape, seed));
      // toF16Array pads odd counts to whole words; the file holds exactly n values.
      put(new Uint8Array(bits.buffer, 0, n * 2));
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return head.byteLength + offset;
}

/** diffusers' names for the weight files: plain (the default; the data is fp16 either way) or the fp16 variant. */
export function weightFileNames(variant: boolean): { diffusers: string; transformers: string } {
  return variant
    ? { diffusers: 'diffusion_pytorch_model.fp16.safetensors', transformers: 'model.fp16.safetensors' }
    : { diffusers: 'diffusion_pytorch_model.safetensors', transformers: 'model.safetensors' };
}

function readJsonFile(path: string): Json {
  return JSON.parse(readFileSync(path, 'utf8')) as Json;
}

/** SD 1.5's scheduler/scheduler_config.json (runwayml/stable-diffusion-v1-5). */
const SD15_SCHEDULER: Json = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};

/** The configs of a pipeline at `scale`: SD 1.5's (bench/sd-configs/sd15.json) or the sd-tiny fixture's. */
export function sdConfigs(scale: Scale): { unet: Json; vae: Json; text_encoder: Json } {
  if (scale === 'sd15') {
    const c = readJsonFile(join(repo, 'bench/sd-configs/sd15.json')) as Record<string, Json>;
    const v = { _diffusers_version: '0.25.1' };
    return { unet: { ...c.unet!, ...v }, vae: { ...c.vae!, ...v }, text_encoder: { ...c.text_encoder!, torch_dtype: 'float16', transformers_version: '4.36.2' } };
  }
  const f = join(repo, 'tests/fixtures/sd-tiny');
  return { unet: readJsonFile(join(f, 'unet/config.json')), vae: readJsonFile(join(f, 'vae/config.json')), text_encoder: readJsonFile(join(f, 'text_encoder/config.json')) };
}

/** The SDXL base U-Net's config (bench/sd-configs/sdxl.json), or the sdxl-tiny fixture's at scale tiny. */
export function sdxlUnetConfig(scale: Scale): Json {
  if (scale === 'sd15') return (readJsonFile(join(repo, 'bench/sd-configs/sdxl.json')) as Record<string, Json>).unet!;
  return readJsonFile(join(repo, 'tests/fixtures/sdxl-tiny/unet/config.json'));
}

export interface GeneratedFile {
  /** Path inside the folder, with '/'. */
  path: string;
  bytes: number;
  weights: boolean;
}

export interface GeneratedFolder {
  dir: string;
  /** true when an existing folder with the same spec was reused. */
  reused: boolean;
  generateMs: number;
  files: GeneratedFile[];
  weightBytes: number;
  params: number;
}

interface Component {
  /** Sub-folder ('' for a folder that is one model). */
  sub: string;
  config: Json;
  weightFile: string;
  entries: WeightEntry[];
}

/** The spec a folder is made from; a folder whose stamp holds the same spec is reused. */
interface Spec {
  generator: number;
  kind: string;
  seed: number;
  variant: boolean;
  json: Record<string, Json>;
  copies: Record<string, string>;
  weights: Record<string, { config: Json; file: string; params: number }>;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function listFiles(dir: string, spec: Spec): GeneratedFile[] {
  const paths = [...Object.keys(spec.json), ...Object.keys(spec.copies), ...Object.entries(spec.weights).map(([sub, w]) => (sub ? `${sub}/${w.file}` : w.file)), ...Object.entries(spec.weights).map(([sub]) => (sub ? `${sub}/config.json` : 'config.json'))];
  return [...new Set(paths)].sort().map((p) => ({ path: p, bytes: statSync(join(dir, p)).size, weights: p.endsWith('.safetensors') }));
}

function summarize(dir: string, spec: Spec, reused: boolean, generateMs: number): GeneratedFolder {
  const files = listFiles(dir, spec);
  return {
    dir,
    reused,
    generateMs,
    files,
    weightBytes: files.filter((f) => f.weights).reduce((a, f) => a + f.bytes, 0),
    params: Object.values(spec.weights).reduce((a, w) => a + w.params, 0),
  };
}

function materialize(dir: string, spec: Spec, components: Component[], log: (m: string) => void): GeneratedFolder {
  const stampPath = join(dir, STAMP);
  if (existsSync(stampPath)) {
    try {
      if (sameJson(readJsonFile(stampPath), spec)) {
        const out = summarize(dir, spec, true, 0);
        log(`reusing ${dir} (${(out.weightBytes / 2 ** 30).toFixed(2)} GiB of weights)`);
        return out;
      }
    } catch {
      // A file of the stamp is missing or unreadable: make the folder again.
    }
  }
  const t0 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [path, json] of Object.entries(spec.json)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), `${JSON.stringify(json, null, 2)}\n`);
  }
  for (const [path, from] of Object.entries(spec.copies)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), readFileSync(from));
  }
  for (const c of components) {
    const sub = c.sub ? join(dir, c.sub) : dir;
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'config.json'), `${JSON.stringify(c.config, null, 2)}\n`);
    const params = c.entries.reduce((a, e) => a + numelOf(e.shape), 0);
    const t = performance.now();
    log(`writing ${join(c.sub, c.weightFile)}: ${c.entries.length} tensors, ${(params / 1e6).toFixed(1)} M parameters, ${((params * 2) / 2 ** 30).toFixed(2)} GiB`);
    writeRandomSafetensors(join(sub, c.weightFile), c.entries, spec.seed);
    log(`  ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  // Last: a folder without its stamp (an interrupted run) is never reused.
  writeFileSync(stampPath, `${JSON.stringify(spec, null, 2)}\n`);
  return summarize(dir, spec, false, performance.now() - t0);
}

export interface GenOptions {
  /** Folder to write (a fresh or reusable one). */
  dir: string;
  /** diffusers' fp16 variant names (…fp16.safetensors) instead of the plain ones. */
  variant?: boolean;
  seed?: number;
  log?: (m: string) => void;
}

/** An SD 1.5-shaped (or, at scale tiny, sd-tiny-shaped) StableDiffusionPipeline folder with fp16 random weights. */
export function ensureSdFolder(scale: Scale, o: GenOptions): GeneratedFolder {
  const variant = o.variant ?? false;
  const seed = o.seed ?? 1;
  const names = weightFileNames(variant);
  const cfg = sdConfigs(scale);
  const components: Component[] = [
    { sub: 'unet', config: cfg.unet, weightFile: names.diffusers, entries: unetKeys(cfg.unet) },
    { sub: 'vae', config: cfg.vae, weightFile: names.diffusers, entries: vaeKeys(cfg.vae) },
    { sub: 'text_encoder', config: cfg.text_encoder, weightFile: names.transformers, entries: textEncoderKeys(cfg.text_encoder) },
  ];
  const tok = join(repo, 'tests/fixtures/sd-tiny/tokenizer');
  const spec: Spec = {
    generator: GENERATOR_VERSION,
    kind: `StableDiffusionPipeline ${scale}`,
    seed,
    variant,
    json: {
      'model_index.json': {
        _class_name: 'StableDiffusionPipeline',
        _diffusers_version: '0.25.1',
        feature_extractor: [null, null],
        image_encoder: [null, null],
        requires_safety_checker: false,
        safety_checker: [null, null],
        scheduler: ['diffusers', 'PNDMScheduler'],
        text_encoder: ['transformers', 'CLIPTextModel'],
        tokenizer: ['transformers', 'CLIPTokenizer'],
        unet: ['diffusers', 'UNet2DConditionModel'],
        vae: ['diffusers', 'AutoencoderKL'],
      },
      'scheduler/scheduler_config.json': SD15_SCHEDULER,
    },
    // The real CLIP tokenizer (49408 tokens, as the text encoder's embedding table).
    copies: Object.fromEntries(['merges.txt', 'special_tokens_map.json', 'tokenizer_config.json', 'vocab.json'].map((f) => [`tokenizer/${f}`, join(tok, f)])),
    weights: Object.fromEntries(components.map((c) => [c.sub, { config: c.config, file: c.weightFile, params: c.entries.reduce((a, e) => a + numelOf(e.shape), 0) }])),
  };
  return materialize(o.dir, spec, components, o.log ?? (() => undefined));
}

/** An SDXL-shaped U-Net folder alone (config.json + one fp16 file), or sdxl-tiny's U-Net at scale tiny. */
export function ensureSdxlUnetFolder(scale: Scale, o: GenOptions): GeneratedFolder {
  const variant = o.variant ?? false;
  const config = sdxlUnetConfig(scale);
  const c: Component = { sub: '', config, weightFile: weightFileNames(variant).diffusers, entries: unetKeys(config) };
  const spec: Spec = {
    generator: GENERATOR_VERSION,
    kind: `UNet2DConditionModel SDXL ${scale}`,
    seed: o.seed ?? 1,
    variant,
    json: {},
    copies: {},
    weights: { '': { config, file: c.weightFile, params: c.entries.reduce((a, e) => a + numelOf(e.shape), 0) } },
  };
  return materialize(o.dir, spec, [c], o.log ?? (() => undefined));
}
