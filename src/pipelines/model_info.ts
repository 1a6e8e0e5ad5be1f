// What a model folder is, read from its small JSON files before any weight or GPU is touched: the
// kind (model_index.json: a Stable Diffusion text pipeline; else a class-conditional LDM), its
// classes, its image size and the defaults a generation takes. The U-Net's and VAE's configs go
// through their readers here, so an unsupported option is refused before any download. loadModel
// and the CLI both start here, so a bad option is refused in milliseconds and the defaults live
// in one place. Few-step models (SD-Turbo, SDXL-Turbo, LCM) take their presets' defaults instead
// (presets.ts): asked for, or recognised by their Hub repository or their configs.
import { parseJsonObject, readJsonFrom, type FolderReader } from '../io/model_folder.ts';
import { SCHEDULER_NAMES, schedulerNameOf, type SchedulerName } from '../schedulers/scheduler.ts';
import { readAutoencoderKLConfig } from '../models/autoencoder_kl_config.ts';
import { readUNet2DConfig } from '../models/unet_2d_config.ts';
import { readUNet2DConditionConfig } from '../models/unet_2d_condition_config.ts';
import { checkModelIndex } from './sd_folder.ts';
import { readControlNetConfig } from '../models/controlnet_config.ts';
import { checkPipelineControlNet } from './controlnet.ts';
import { detectPreset, isPresetName, lcmGuidance, PRESET_NAMES, PRESETS, type PresetName, type PresetSource } from './presets.ts';
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
  /** The few-step preset whose defaults (and image size) this text model takes, if any (presets.ts). */
  preset?: ModelPreset;
  /**
   * Text models whose U-Net embeds the guidance scale (time_cond_proj_dim: LCM-distilled U-Nets):
   * the scale goes in as diffusers' guidance embedding of guidance − 1, and never doubles the batch.
   */
  guidanceEmbedded?: boolean;
  /** ControlNets to run with the pipeline (ReadModelInfoOptions.controlnets; loadModel's controlnet), in order; absent: none. */
  controlnets?: number;
}

export interface ModelPreset {
  name: PresetName;
  /** Asked for (the preset option), the Hub repository's name, or the folder's configs. */
  source: PresetSource;
  /** Values the pipeline sets over scheduler_config.json, whichever scheduler runs. */
  schedulerConfig: Record<string, unknown>;
}

export interface ReadModelInfoOptions {
  /** The Hub repository the folder is read from ('owner/name'): known repositories get their preset. */
  repo?: string | null;
  /** A preset to apply (a self-hosted copy of a known model), or null for none; absent: detected. */
  preset?: PresetName | null;
  /** ControlNet folders to run with a Stable Diffusion pipeline: each config.json is read and checked against the U-Net and VAE. */
  controlnets?: readonly FolderReader[];
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

/** The preset option checked, or the one detected; null for none. */
function choosePreset(reader: FolderReader, opts: ReadModelInfoOptions, xl: boolean, schedulerClass: unknown, timeCondProjDim: number | null): ModelPreset | null {
  const fits = (name: PresetName) => PRESETS[name].xl === undefined || PRESETS[name].xl === xl;
  let chosen: { name: PresetName; source: PresetSource } | null;
  if (opts.preset !== undefined) {
    if (opts.preset === null) return null;
    if (!isPresetName(opts.preset)) throw new ConfigError(`preset must be one of ${PRESET_NAMES.join(', ')}, or null for none; got ${JSON.stringify(opts.preset)}`);
    if (!fits(opts.preset)) {
      const other = PRESET_NAMES.find((n) => n !== 'lcm' && fits(n));
      throw new ConfigError(`preset '${opts.preset}' is for ${xl ? 'Stable Diffusion 1.x/2.x' : 'Stable Diffusion XL'} pipelines, and ${reader.where('model_index.json')} is ${xl ? 'an SDXL' : 'an SD 1.x/2.x'} pipeline${other ? ` (use '${other}')` : ''}`);
    }
    chosen = { name: opts.preset, source: 'option' };
  } else {
    chosen = detectPreset({ repo: opts.repo, schedulerClass, timeCondProjDim });
    if (chosen && !fits(chosen.name)) chosen = null;
  }
  return chosen && { ...chosen, schedulerConfig: { ...PRESETS[chosen.name].schedulerConfig } };
}

/**
 * Reads model_index.json, or fresco.json, and the U-Net's, VAE's and scheduler's configs.
 * `opts` says where a text model comes from and which preset it takes (ReadModelInfoOptions).
 */
export async function readModelInfo(reader: FolderReader, opts: ReadModelInfoOptions = {}): Promise<ModelInfo> {
  const index = await readOptionalJson(reader, 'model_index.json');
  if (index) {
    checkModelIndex(index, reader.where('model_index.json'));
    const pipeline = index._class_name as string;
    const xl = pipeline === 'StableDiffusionXLPipeline';
    const schedulerConfig = await readJsonFrom(reader, 'scheduler/scheduler_config.json');
    const unet = readUNet2DConditionConfig(await readJsonFrom(reader, 'unet/config.json'), reader.where('unet'));
    const guidanceEmbedded = unet.timeCondProjDim !== null;
    const preset = choosePreset(reader, opts, xl, schedulerConfig._class_name, unet.timeCondProjDim);
    const size = await sizes(reader, unet.sampleSize);
    for (const cn of opts.controlnets ?? []) {
      checkPipelineControlNet(readControlNetConfig(await readJsonFrom(cn, 'config.json', 'a ControlNet folder needs it'), cn.where('').replace(/\/$/, '')), unet, size.scaleFactor, xl);
    }
    const p = preset && PRESETS[preset.name];
    if (p?.imageSize) {
      if (p.imageSize.some((v) => v % size.scaleFactor)) throw new ConfigError(`preset '${p.name}': its ${p.imageSize[1]}x${p.imageSize[0]} images are not a multiple of this VAE's scale factor ${size.scaleFactor}`);
      size.imageSize = [p.imageSize[0], p.imageSize[1]];
    }
    // diffusers' defaults: 50 steps; guidance_scale 7.5 (StableDiffusionPipeline), 5
    // (StableDiffusionXLPipeline); the folder's scheduler. A preset's instead (presets.ts). The
    // folder's scheduler class is only checked when it is the one that runs by default.
    const defaults: ModelDefaults = p
      ? { steps: p.steps, guidance: p.name === 'lcm' ? lcmGuidance(guidanceEmbedded) : p.guidance, scheduler: p.scheduler }
      : { steps: 50, guidance: xl ? 5 : 7.5, scheduler: schedulerNameOf(schedulerConfig) };
    return {
      kind: 'text',
      pipeline,
      xl,
      classNames: null,
      numClasses: null,
      nullClass: null,
      defaults,
      ...size,
      ...(preset ? { preset } : {}),
      ...(guidanceEmbedded ? { guidanceEmbedded } : {}),
      ...(opts.controlnets?.length ? { controlnets: opts.controlnets.length } : {}),
    };
  }
  if (opts.controlnets?.length) throw new ConfigError(`ControlNets apply to Stable Diffusion pipelines (model_index.json); ${reader.where('').replace(/\/$/, '')} is a class-conditional model folder`);
  if (opts.preset != null) throw new ConfigError(`preset '${opts.preset}' applies to text-to-image pipelines (model_index.json); ${reader.where('')} is a class-conditional model folder`);
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
