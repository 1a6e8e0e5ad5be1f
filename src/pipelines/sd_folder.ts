// A Stable Diffusion pipeline folder as diffusers' save_pretrained writes it (the Hub layout of
// SD 1.x/2.x): model_index.json names each component's library and class, and each component
// lives in its own sub-folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/).
import type { Runtime } from '../gpu/runtime.ts';
import { loadModelFrom, nodeFolderReader, readJsonFrom, subFolder, type FolderReader } from '../io/model_folder.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { CLIPTextModel, readClipTextFolder } from '../models/clip_text_model.ts';
import { ConfigError } from '../models/loader.ts';
import { checkLatentChannels } from './ldm_folder.ts';
import type { ModelOptions, ResolvedPrecision } from '../models/precision.ts';
import { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { CLIPTokenizer } from '../text/clip_tokenizer.ts';

export interface SdModel {
  dir: string;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  schedulerConfig: Record<string, unknown>;
  precision: ResolvedPrecision;
  destroy(): void;
}

/** Pipeline classes whose folders hold exactly what text-to-image needs. */
const PIPELINES = ['StableDiffusionPipeline', 'StableDiffusionImg2ImgPipeline'];
/** The component classes Fresco builds, by model_index.json key. */
const COMPONENTS: Record<string, [string, string]> = {
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
};
/** Components that may be absent or null; present ones are not run (say so rather than guess). */
const OPTIONAL = ['safety_checker', 'feature_extractor', 'image_encoder'];

/** Checks that model_index.json names a pipeline and components Fresco builds. */
export function checkModelIndex(index: Record<string, unknown>, where: string): void {
  const cls = index._class_name;
  if (typeof cls !== 'string' || !PIPELINES.includes(cls)) throw new ConfigError(`${where}: _class_name ${JSON.stringify(cls ?? null)} is not supported (supported: ${PIPELINES.join(', ')})`);
  for (const [key, [lib, want]] of Object.entries(COMPONENTS)) {
    const v = index[key];
    if (!Array.isArray(v) || v[1] !== want) throw new ConfigError(`${where}: component ${key} = ${JSON.stringify(v ?? null)} is not supported (Fresco builds ${lib} ${want})`);
  }
  const s = index.scheduler;
  if (!Array.isArray(s) || typeof s[1] !== 'string') throw new ConfigError(`${where}: component scheduler = ${JSON.stringify(s ?? null)} names no scheduler class`);
  const known = new Set([...Object.keys(COMPONENTS), 'scheduler', ...OPTIONAL, 'requires_safety_checker']);
  for (const key of Object.keys(index)) {
    if (key.startsWith('_') || known.has(key)) continue;
    const v = index[key];
    if (Array.isArray(v) && v[0] === null) continue;
    throw new ConfigError(`${where}: component ${key} = ${JSON.stringify(v)} is not supported`);
  }
}

export async function loadSdFrom(rt: Runtime, root: FolderReader, dir: string, opts: ModelOptions = {}): Promise<SdModel> {
  const index = await readJsonFrom(root, 'model_index.json', 'a diffusers pipeline folder needs it');
  checkModelIndex(index, root.where('model_index.json'));
  const schedulerConfig = await readJsonFrom(root, 'scheduler/scheduler_config.json');
  const tokenizer = await CLIPTokenizer.load(subFolder(root, 'tokenizer'));

  const built: { destroy(): void }[] = [];
  const keep = <T extends { destroy(): void }>(m: T): T => (built.push(m), m);
  try {
    const u = await loadModelFrom(subFolder(root, 'unet'), `${dir}/unet`);
    const unet = keep(new UNet2DConditionModel(rt, u.weights, u.config, `${dir}/unet`, opts));
    const v = await loadModelFrom(subFolder(root, 'vae'), `${dir}/vae`);
    const vae = keep(new AutoencoderKL(rt, v.weights, v.config, `${dir}/vae`, opts));
    const t = await readClipTextFolder(subFolder(root, 'text_encoder'), `${dir}/text_encoder`);
    const textEncoder = keep(new CLIPTextModel(rt, t.weights, t.config, { ...opts, where: `${dir}/text_encoder` }));
    checkLatentChannels(dir, unet, vae);
    // StableDiffusionPipeline gives a U-Net no added_cond_kwargs: an SDXL-style one would fail at its first step.
    if (unet.additionEmbedType) throw new ConfigError(`${dir}: the U-Net has addition_embed_type '${unet.additionEmbedType}' (Stable Diffusion XL), whose text_embeds and time_ids StableDiffusionPipeline does not give`);
    if (textEncoder.hiddenSize !== unet.crossAttentionDim) throw new ConfigError(`${dir}: the text encoder gives ${textEncoder.hiddenSize} features but the U-Net's cross_attention_dim is ${unet.crossAttentionDim}`);
    if (tokenizer.maxLength > textEncoder.maxPositions) throw new ConfigError(`${dir}: the tokenizer pads to ${tokenizer.maxLength} tokens but the text encoder has ${textEncoder.maxPositions} positions`);
    return {
      dir,
      unet,
      vae,
      textEncoder,
      tokenizer,
      schedulerConfig,
      precision: unet.precision,
      destroy: () => built.forEach((m) => m.destroy()),
    };
  } catch (e) {
    built.forEach((m) => m.destroy());
    throw e;
  }
}

/** Node: a pipeline folder on disk. */
export function loadSdFolder(rt: Runtime, dir: string, opts: ModelOptions = {}): Promise<SdModel> {
  return loadSdFrom(rt, nodeFolderReader(dir), dir.replace(/\/$/, ''), opts);
}
