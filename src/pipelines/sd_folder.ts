// A Stable Diffusion pipeline folder as diffusers' save_pretrained writes it (the Hub layout of
// SD 1.x/2.x and SDXL): model_index.json names each component's library and class, and each
// component lives in its own sub-folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/; SDXL
// also text_encoder_2/ (CLIPTextModelWithProjection) and tokenizer_2/).
import type { Runtime } from '../gpu/runtime.ts';
import { nodeFolderReader, openModelFrom, readJsonFrom, subFolder, type FolderReader } from '../io/model_folder.ts';
import { fillStores, type FolderLoadOptions } from './folder_options.ts';
import type { WeightStore } from '../io/weights.ts';
import { AutoencoderKL } from '../models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../models/autoencoder_kl_config.ts';
import { readClipTextConfig } from '../models/clip_text_config.ts';
import { CLIPTextModel, CLIPTextModelWithProjection, openClipTextFolder } from '../models/clip_text_model.ts';
import { buildModel, floatWeights } from '../models/model_loader.ts';
import { checkLatentChannels } from './ldm_folder.ts';
import type { ResolvedPrecision } from '../models/precision.ts';
import { ControlNetModel } from '../models/controlnet.ts';
import { readControlNetConfig } from '../models/controlnet_config.ts';
import { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../models/unet_2d_condition_config.ts';
import { CLIPTokenizer } from '../text/clip_tokenizer.ts';
import { checkPipelineControlNet } from './controlnet.ts';
import { ConfigError } from '../errors.ts';

export interface SdModel {
  dir: string;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  schedulerConfig: Record<string, unknown>;
  precision: ResolvedPrecision;
  /** GPU bytes the weights take. */
  weightBytes: number;
  /** model_index.json's _class_name (absent: StableDiffusionPipeline). */
  pipeline?: string;
  /** Stable Diffusion XL's second text encoder and tokenizer and its pipeline options; absent for SD 1.x/2.x. */
  xl?: SdxlParts;
  /** ControlNets loaded with the pipeline (StableDiffusionControlNetPipeline; several: MultiControlNetModel), in order; absent: none. */
  controlnets?: ControlNetModel[];
  destroy(): void;
}

/** A ControlNet folder (config.json + diffusion_pytorch_model.safetensors) to load beside a pipeline. */
export interface ControlNetSource {
  reader: FolderReader;
  /** Names it in messages (its path or URL). */
  where: string;
}

export interface SdLoadOptions extends FolderLoadOptions {
  /** ControlNets to load with the pipeline, built and streamed with its own components. */
  controlnets?: readonly ControlNetSource[];
}

export interface SdxlParts {
  /** text_encoder_2: its hidden_states[-2] follow text_encoder's in the U-Net's context; its text_embeds are the pooled embedding. */
  textEncoder2: CLIPTextModelWithProjection;
  tokenizer2: CLIPTokenizer;
  /** model_index.json force_zeros_for_empty_prompt (diffusers' default true): no negative prompt means zero negative embeddings. */
  forceZerosForEmptyPrompt: boolean;
}

/** Pipeline classes whose folders hold exactly what text-to-image needs. */
export const PIPELINES = ['StableDiffusionPipeline', 'StableDiffusionImg2ImgPipeline', 'StableDiffusionXLPipeline', 'LatentConsistencyModelPipeline'];
const XL = 'StableDiffusionXLPipeline';
/** The component classes Fresco builds, by model_index.json key. */
const COMPONENTS: Record<string, [string, string]> = {
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
};
/** StableDiffusionXLPipeline's components beyond those. */
const XL_COMPONENTS: Record<string, [string, string]> = {
  ...COMPONENTS,
  text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
  tokenizer_2: ['transformers', 'CLIPTokenizer'],
};
/** Components that may be absent or null; present ones are not run (say so rather than guess). */
const OPTIONAL = ['safety_checker', 'feature_extractor', 'image_encoder'];
/** Pipelines of the SDXL family that are not built, and why, for the error. */
const NOT_BUILT: Record<string, string> = {
  StableDiffusionXLImg2ImgPipeline: 'SDXL img2img and the SDXL refiner are not supported',
  StableDiffusionXLInpaintPipeline: 'SDXL inpainting is not supported',
  StableDiffusionXLInstructPix2PixPipeline: 'SDXL InstructPix2Pix is not supported',
  StableDiffusionXLControlNetPipeline: 'ControlNets are not supported',
  StableDiffusionXLAdapterPipeline: 'T2I adapters are not supported',
};

/** Checks that model_index.json names a pipeline and components Fresco builds. */
export function checkModelIndex(index: Record<string, unknown>, where: string): void {
  const cls = index._class_name;
  if (typeof cls !== 'string' || !PIPELINES.includes(cls)) {
    const why = typeof cls === 'string' && NOT_BUILT[cls] ? `: ${NOT_BUILT[cls]}` : '';
    throw new ConfigError(`${where}: _class_name ${JSON.stringify(cls ?? null)} is not supported${why} (supported: ${PIPELINES.join(', ')})`);
  }
  const xl = cls === XL;
  // The SDXL refiner's layout (as a StableDiffusionXLPipeline folder): no first text encoder, and
  // aesthetic-score time ids instead of the target size.
  if (xl && Array.isArray(index.text_encoder) && index.text_encoder[0] === null) {
    throw new ConfigError(`${where}: component text_encoder = ${JSON.stringify(index.text_encoder)}: a pipeline with text_encoder_2 alone (the SDXL refiner's layout) is not supported`);
  }
  if (xl && index.requires_aesthetics_score === true) throw new ConfigError(`${where}: requires_aesthetics_score = true (the SDXL refiner's aesthetic-score time ids) is not supported`);
  // add_watermarker (null: diffusers watermarks only where invisible-watermark is installed) changes the pixels when on.
  if (xl && index.add_watermarker === true) throw new ConfigError(`${where}: add_watermarker = true (the invisible watermark diffusers adds to SDXL images) is not supported`);
  if (xl && index.force_zeros_for_empty_prompt !== undefined && typeof index.force_zeros_for_empty_prompt !== 'boolean') {
    throw new ConfigError(`${where}: force_zeros_for_empty_prompt = ${JSON.stringify(index.force_zeros_for_empty_prompt)} is not a boolean`);
  }
  const components = xl ? XL_COMPONENTS : COMPONENTS;
  for (const [key, [lib, want]] of Object.entries(components)) {
    const v = index[key];
    if (!Array.isArray(v) || v[1] !== want) throw new ConfigError(`${where}: component ${key} = ${JSON.stringify(v ?? null)} is not supported (Fresco builds ${lib} ${want})`);
  }
  const s = index.scheduler;
  if (!Array.isArray(s) || typeof s[1] !== 'string') throw new ConfigError(`${where}: component scheduler = ${JSON.stringify(s ?? null)} names no scheduler class`);
  const options = xl ? ['force_zeros_for_empty_prompt', 'requires_aesthetics_score', 'add_watermarker'] : ['requires_safety_checker'];
  const known = new Set([...Object.keys(components), 'scheduler', ...OPTIONAL, ...options]);
  for (const key of Object.keys(index)) {
    if (key.startsWith('_') || known.has(key)) continue;
    const v = index[key];
    if (Array.isArray(v) && v[0] === null) continue;
    throw new ConfigError(`${where}: component ${key} = ${JSON.stringify(v)} is not supported by ${cls}`);
  }
}

export async function loadSdFrom(rt: Runtime, root: FolderReader, dir: string, opts: SdLoadOptions = {}): Promise<SdModel> {
  const index = await readJsonFrom(root, 'model_index.json', 'a diffusers pipeline folder needs it');
  checkModelIndex(index, root.where('model_index.json'));
  const pipeline = index._class_name as string;
  const xl = pipeline === XL;
  const schedulerConfig = await readJsonFrom(root, 'scheduler/scheduler_config.json');
  const tokenizer = await CLIPTokenizer.load(subFolder(root, 'tokenizer'));
  const tokenizer2 = xl ? await CLIPTokenizer.load(subFolder(root, 'tokenizer_2')) : null;

  const built: { destroy(): void }[] = [];
  const keep = <T extends { destroy(): void }>(m: T): T => (built.push(m), m);
  try {
    // Every component's headers are read and its model built (every shape checked, every buffer
    // made) before fillStores streams the first weight byte.
    const stores: WeightStore[] = [];
    const names: string[] = [];
    const open = async (sub: string) => {
      const f = sub.startsWith('text_encoder') ? await openClipTextFolder(subFolder(root, sub), `${dir}/${sub}`, opts.variant) : await openModelFrom(subFolder(root, sub), `${dir}/${sub}`, { variant: opts.variant });
      stores.push(f.weights);
      names.push(sub);
      return f;
    };
    const u = await open('unet');
    const unet = keep(buildModel(UNet2DConditionModel, rt, u.weights, readUNet2DConditionConfig(u.config, `${dir}/unet`), opts));
    const v = await open('vae');
    // StableDiffusionXLPipeline decodes in float32 when the VAE is float16 and its config says
    // force_upcast (AutoencoderKL's default: SDXL's VAE overflows in half precision); its
    // StableDiffusionPipeline does not.
    const upcast = xl && unet.precision.dtype === 'f16' && v.config.force_upcast !== false;
    const vae = keep(buildModel(AutoencoderKL, rt, v.weights, readAutoencoderKLConfig(v.config, `${dir}/vae`), floatWeights(upcast ? { ...opts, precision: 'f32' } : opts)));
    const t = await open('text_encoder');
    const textEncoder = keep(buildModel(CLIPTextModel, rt, t.weights, readClipTextConfig(t.config, `${dir}/text_encoder`), floatWeights(opts)));
    checkLatentChannels(dir, unet, vae);
    let parts: SdxlParts | undefined;
    if (xl) {
      const t2 = await open('text_encoder_2');
      const textEncoder2 = keep(buildModel(CLIPTextModelWithProjection, rt, t2.weights, readClipTextConfig(t2.config, `${dir}/text_encoder_2`, true), floatWeights(opts)));
      checkXl(dir, u.config, unet, textEncoder, textEncoder2, tokenizer, tokenizer2!);
      parts = { textEncoder2, tokenizer2: tokenizer2!, forceZerosForEmptyPrompt: index.force_zeros_for_empty_prompt !== false };
    } else {
      // StableDiffusionPipeline gives a U-Net no added_cond_kwargs: an SDXL-style one would fail at its first step.
      if (unet.additionEmbedType) throw new ConfigError(`${dir}: the U-Net has addition_embed_type '${unet.additionEmbedType}' (Stable Diffusion XL), whose text_embeds and time_ids StableDiffusionPipeline does not give`);
      if (textEncoder.hiddenSize !== unet.crossAttentionDim) throw new ConfigError(`${dir}: the text encoder gives ${textEncoder.hiddenSize} features but the U-Net's cross_attention_dim is ${unet.crossAttentionDim}`);
      if (tokenizer.maxLength > textEncoder.maxPositions) throw new ConfigError(`${dir}: the tokenizer pads to ${tokenizer.maxLength} tokens but the text encoder has ${textEncoder.maxPositions} positions`);
    }
    // ControlNets: each checked against the U-Net and VAE from its config, then built like the rest.
    const controlnets: ControlNetModel[] = [];
    for (const [k, src] of (opts.controlnets ?? []).entries()) {
      const f = await openModelFrom(src.reader, src.where, { variant: opts.variant, kind: 'a ControlNet folder' });
      const config = readControlNetConfig(f.config, src.where);
      checkPipelineControlNet(config, unet.config, vae.scaleFactor, xl);
      stores.push(f.weights);
      names.push(opts.controlnets!.length > 1 ? `controlnet_${k}` : 'controlnet');
      controlnets.push(keep(buildModel(ControlNetModel, rt, f.weights, config, opts)));
    }
    const weightBytes = await fillStores(rt, stores, opts, names);
    return {
      dir,
      unet,
      vae,
      textEncoder,
      tokenizer,
      schedulerConfig,
      precision: unet.precision,
      weightBytes,
      pipeline,
      ...(parts ? { xl: parts } : {}),
      ...(controlnets.length ? { controlnets } : {}),
      destroy: () => built.forEach((m) => m.destroy()),
    };
  } catch (e) {
    built.forEach((m) => m.destroy());
    throw e;
  }
}

/** Time ids StableDiffusionXLPipeline gives: original size, crop top-left and target size, (h, w) each. */
export const SDXL_TIME_IDS = 6;

/** What StableDiffusionXLPipeline needs of its components, checked at load rather than at the first step. */
function checkXl(dir: string, unetConfig: Record<string, unknown>, unet: UNet2DConditionModel, te1: CLIPTextModel, te2: CLIPTextModelWithProjection, tok1: CLIPTokenizer, tok2: CLIPTokenizer): void {
  // _get_add_time_ids reads unet.add_embedding: a U-Net without it fails there in diffusers.
  if (unet.additionEmbedType !== 'text_time') throw new ConfigError(`${dir}: StableDiffusionXLPipeline needs a U-Net with addition_embed_type 'text_time' (its add_embedding takes the pooled text embedding and time ids); this one has ${JSON.stringify(unet.additionEmbedType)}`);
  // diffusers' _get_add_time_ids: addition_time_embed_dim · 6 + text_encoder_2's projection_dim must be add_embedding's input width.
  const passed = Number(unetConfig.addition_time_embed_dim) * SDXL_TIME_IDS + te2.projectionDim;
  const expected = Number(unetConfig.projection_class_embeddings_input_dim);
  if (passed !== expected) {
    throw new ConfigError(`${dir}: the U-Net's add_embedding takes ${expected} features (projection_class_embeddings_input_dim), but ${SDXL_TIME_IDS} time ids of addition_time_embed_dim ${unetConfig.addition_time_embed_dim} and text_encoder_2's projection_dim ${te2.projectionDim} give ${passed}`);
  }
  const width = te1.hiddenSize + te2.hiddenSize;
  if (width !== unet.crossAttentionDim) {
    throw new ConfigError(`${dir}: the text encoders give ${te1.hiddenSize} + ${te2.hiddenSize} = ${width} features (concatenated) but the U-Net's cross_attention_dim is ${unet.crossAttentionDim}`);
  }
  // Both encoders' states are concatenated per token: the two tokenizers must pad to one length.
  if (tok1.maxLength !== tok2.maxLength) throw new ConfigError(`${dir}: tokenizer pads to ${tok1.maxLength} tokens but tokenizer_2 to ${tok2.maxLength}; their encoders' states are concatenated token by token`);
  for (const [name, te] of [['text_encoder', te1], ['text_encoder_2', te2]] as const) {
    if (tok1.maxLength > te.maxPositions) throw new ConfigError(`${dir}: the tokenizers pad to ${tok1.maxLength} tokens but ${name} has ${te.maxPositions} positions`);
  }
}

/** Node: a pipeline folder on disk. */
export function loadSdFolder(rt: Runtime, dir: string, opts: FolderLoadOptions & { controlnets?: readonly string[] } = {}): Promise<SdModel> {
  const controlnets = opts.controlnets?.map((d) => ({ reader: nodeFolderReader(d), where: d.replace(/\/$/, '') }));
  return loadSdFrom(rt, nodeFolderReader(dir), dir.replace(/\/$/, ''), { ...opts, controlnets });
}
