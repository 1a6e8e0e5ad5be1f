// What a model folder is, read from its small JSON files before any weight or GPU is touched: the
// kind (model_index.json: a Stable Diffusion text pipeline; else a class-conditional LDM), its
// classes, its image size and the defaults a generation takes. The U-Net's and VAE's configs go
// through their readers here, so an unsupported option is refused before any download. loadModel
// and the CLI both start here, so a bad option is refused in milliseconds and the defaults live
// in one place.
import { parseJsonObject, readJsonFrom, type FolderReader } from '../io/model_folder.ts';
import { SCHEDULER_NAMES, schedulerNameOf, type SchedulerName } from '../schedulers/scheduler.ts';
import { readAutoencoderKLConfig } from '../models/autoencoder_kl_config.ts';
import { readUNet2DConfig } from '../models/unet_2d_config.ts';
import { readUNet2DConditionConfig } from '../models/unet_2d_condition_config.ts';
import { checkModelIndex } from './sd_folder.ts';
import { ConfigError } from '../errors.ts';

export type ModelKind = 'class' | 'text';

export interface ModelDefaults {
  steps: number;
  guidance: number;
  scheduler: SchedulerName;
}

export interface ModelInfo {
  kind: ModelKind;
  /** model_index.json's _class_name (text models), else null. */
  pipeline: string | null;
  /** A StableDiffusionXLPipeline. */
  xl: boolean;
  /** Class names by label (fresco.json), or null. */
  classNames: string[] | null;
  /** Labels the U-Net embeds, the null class included (class models), else null. */
  numClasses: number | null;
  /** The label guidance uses as "no class" (class models), else null. */
  nullClass: number | null;
  defaults: ModelDefaults;
  /** Image size in pixels [height, width] at the model's default: the U-Net's sample_size times the VAE's scale factor. */
  imageSize: [number, number];
  /** What image sizes must be multiples of (the VAE's scale factor). */
  scaleFactor: number;
  /** Channels of the images the VAE takes and gives (1: gray, 3: RGB). */
  imageChannels: number;
  /** fresco.json's preview entry, checked against the built models at load. */
  preview?: unknown;
}

async function readOptionalJson(reader: FolderReader, name: string): Promise<Record<string, unknown> | null> {
  const bytes = await reader.read(name);
  return bytes ? parseJsonObject(bytes, reader.where(name)) : null;
}

function cardError(reader: FolderReader, message: string): ConfigError {
  return new ConfigError(`${reader.where('fresco.json')}: ${message}`);
}

/** fresco.json's defaults over Fresco's own for class models: 25 DDIM steps at guidance 3. */
function cardDefaults(reader: FolderReader, raw: unknown): ModelDefaults {
  const d = (raw ?? {}) as Record<string, unknown>;
  if (typeof d !== 'object' || Array.isArray(d)) throw cardError(reader, `defaults must be an object, got ${JSON.stringify(raw)}`);
  const steps = d.steps ?? 25;
  const guidance = d.guidance ?? 3;
  const scheduler = d.scheduler ?? 'ddim';
  if (!Number.isInteger(steps) || (steps as number) < 1) throw cardError(reader, `defaults.steps must be a positive whole number, got ${JSON.stringify(steps)}`);
  if (typeof guidance !== 'number' || !(guidance >= 0)) throw cardError(reader, `defaults.guidance must be a number >= 0, got ${JSON.stringify(guidance)}`);
  const name = SCHEDULER_NAMES.find((s) => s === scheduler);
  if (!name) throw cardError(reader, `defaults.scheduler must be one of ${SCHEDULER_NAMES.join(', ')}, got ${JSON.stringify(scheduler)}`);
  return { steps: steps as number, guidance, scheduler: name };
}

/** The image size, its multiple and channels, from the U-Net's sample size and the VAE's config. */
async function sizes(reader: FolderReader, sampleSize: number) {
  const vae = readAutoencoderKLConfig(await readJsonFrom(reader, 'vae/config.json'), reader.where('vae'));
  const side = sampleSize * vae.scaleFactor;
  return { imageSize: [side, side] as [number, number], scaleFactor: vae.scaleFactor, imageChannels: vae.inChannels };
}

/** Reads model_index.json, or fresco.json, and the U-Net's, VAE's and scheduler's configs. */
export async function readModelInfo(reader: FolderReader): Promise<ModelInfo> {
  const index = await readOptionalJson(reader, 'model_index.json');
  if (index) {
    checkModelIndex(index, reader.where('model_index.json'));
    const pipeline = index._class_name as string;
    const xl = pipeline === 'StableDiffusionXLPipeline';
    const scheduler = schedulerNameOf(await readJsonFrom(reader, 'scheduler/scheduler_config.json'));
    const unet = readUNet2DConditionConfig(await readJsonFrom(reader, 'unet/config.json'), reader.where('unet'));
    // diffusers' defaults: 50 steps; guidance_scale 7.5 (StableDiffusionPipeline), 5 (StableDiffusionXLPipeline).
    const defaults = { steps: 50, guidance: xl ? 5 : 7.5, scheduler };
    return { kind: 'text', pipeline, xl, classNames: null, numClasses: null, nullClass: null, defaults, ...(await sizes(reader, unet.sampleSize)) };
  }
  const card = (await readOptionalJson(reader, 'fresco.json')) ?? {};
  const unet = readUNet2DConfig(await readJsonFrom(reader, 'unet/config.json', 'a class-conditional model folder needs unet/, vae/ and scheduler/ (a Stable Diffusion pipeline needs model_index.json)'), reader.where('unet'));
  const numClasses = unet.numClassEmbeds;
  const names = card.class_names;
  if (names !== undefined && !(Array.isArray(names) && names.every((n) => typeof n === 'string'))) throw cardError(reader, `class_names must be a list of strings, got ${JSON.stringify(names)}`);
  const nullClass = card.null_class ?? (numClasses ?? 1) - 1;
  if (!Number.isInteger(nullClass) || (nullClass as number) < 0 || (numClasses !== null && (nullClass as number) >= numClasses)) {
    throw cardError(reader, `null_class must be a label 0..${(numClasses ?? 1) - 1}, got ${JSON.stringify(nullClass)}`);
  }
  return {
    kind: 'class',
    pipeline: null,
    xl: false,
    classNames: (names as string[] | undefined) ?? null,
    numClasses,
    nullClass: nullClass as number,
    defaults: cardDefaults(reader, card.defaults),
    ...(await sizes(reader, unet.sampleSize)),
    ...(card.preview !== undefined ? { preview: card.preview } : {}),
  };
}
