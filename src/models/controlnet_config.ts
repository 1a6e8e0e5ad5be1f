// ControlNetModel's config.json read and checked (diffusers v0.25.1's controlnet.py defaults) into
// the values the model is built from, and the check that a ControlNet's residuals fit a U-Net. No
// GPU code.
import type { Activation } from '../kernels/activation.ts';
import { checkBlockTypes, modelConfigReader } from './config.ts';
import type { ClassEmbedType, TimeEmbeddingNorm } from './config_types.ts';
import { COND_DOWN_TYPES, onlyCrossList, perBlock, type CondMidBlockType, type UNet2DConditionConfig } from './unet_2d_condition_config.ts';
import { ConfigError } from '../errors.ts';

/** ControlNetModel's constructor arguments in diffusers 0.25. */
const KEYS = [
  'in_channels', 'conditioning_channels', 'flip_sin_to_cos', 'freq_shift', 'down_block_types', 'mid_block_type',
  'only_cross_attention', 'block_out_channels', 'layers_per_block', 'downsample_padding', 'mid_block_scale_factor',
  'act_fn', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'transformer_layers_per_block', 'encoder_hid_dim',
  'encoder_hid_dim_type', 'attention_head_dim', 'num_attention_heads', 'use_linear_projection', 'class_embed_type',
  'addition_embed_type', 'addition_time_embed_dim', 'num_class_embeds', 'upcast_attention', 'resnet_time_scale_shift',
  'projection_class_embeddings_input_dim', 'controlnet_conditioning_channel_order', 'conditioning_embedding_out_channels',
  'global_pool_conditions', 'addition_embed_type_num_heads',
];

/**
 * Everything is per down block where diffusers takes a list (the mid block takes the last entry).
 * The time embedding is diffusers' TimestepEmbedding(block_out_channels[0], 4·block_out_channels[0],
 * act_fn) with no post or embedding activation and no cond_proj.
 */
export interface ControlNetConfig {
  where: string;
  inChannels: number;
  /** conditioning_channels: the control image's channels (3: RGB). */
  conditioningChannels: number;
  /** controlnet_conditioning_channel_order: 'bgr' flips the control image's channels first. */
  channelOrder: 'rgb' | 'bgr';
  /** conditioning_embedding_out_channels: ControlNetConditioningEmbedding's widths; each step after the first halves the size. */
  conditioningEmbeddingChannels: number[];
  act: Activation;
  timeEmbeddingNorm: TimeEmbeddingNorm;
  channels: number[];
  downTypes: string[];
  midBlockType: CondMidBlockType;
  /** layers_per_block (one int in ControlNetModel: it counts the zero convs per block). */
  layers: number;
  /** Heads per block: num_attention_heads, else attention_head_dim (diffusers' legacy naming). */
  heads: number[];
  transformerLayers: number[];
  crossAttentionDim: number;
  linearProjection: boolean;
  onlyCrossAttention: boolean[];
  groups: number;
  eps: number;
  flipSinToCos: boolean;
  freqShift: number;
  midBlockScaleFactor: number;
  downsamplePadding: number;
  timeEmbedDim: number;
  classEmbedType: Exclude<ClassEmbedType, 'embedding' | 'simple_projection'> | null;
  numClassEmbeds: number | null;
  projectionInputDim: number | null;
  additionEmbedType: 'text_time' | null;
  textTime: { timeEmbedDim: number; inputDim: number } | null;
}

/** Reads and checks a ControlNetModel config.json. */
export function readControlNetConfig(config: Record<string, unknown>, where = 'ControlNetModel'): ControlNetConfig {
  const c = modelConfigReader(config, where, 'ControlNetModel', KEYS);
  const act = c.activation('act_fn');
  // diffusers raises for anything else (ValueError: unknown mid_block_type), null included.
  const midBlockType = (c.has('mid_block_type') ? c.raw('mid_block_type') : 'UNetMidBlock2DCrossAttn') as CondMidBlockType;
  if (midBlockType !== 'UNetMidBlock2DCrossAttn' && midBlockType !== 'UNetMidBlock2D') {
    throw new ConfigError(`${where}: config option mid_block_type = ${JSON.stringify(midBlockType)} is not a mid block ControlNetModel builds (UNetMidBlock2DCrossAttn, UNetMidBlock2D)`);
  }
  c.only('resnet_time_scale_shift', ['default', 'scale_shift']);
  const timeEmbeddingNorm = (c.raw('resnet_time_scale_shift') ?? 'default') as TimeEmbeddingNorm;
  // global_pool_conditions (the shuffle ControlNet) averages every residual over the image and
  // switches the pipeline to guess mode; neither is built.
  c.only('global_pool_conditions', [false], 'is not supported (global pooling of the residuals and guess mode are not built)');
  c.only('controlnet_conditioning_channel_order', ['rgb', 'bgr']);
  const channelOrder = (c.raw('controlnet_conditioning_channel_order') ?? 'rgb') as 'rgb' | 'bgr';
  for (const key of ['encoder_hid_dim', 'encoder_hid_dim_type']) c.only(key, [], 'is not supported');
  // 'text_time' (SDXL ControlNets): add_time_proj and add_embedding as in the U-Net. 'text' and
  // 'text_image' (Kandinsky-style) are not built.
  c.only('addition_embed_type', ['text_time']);
  const additionEmbedType = (c.raw('addition_embed_type') ?? null) as 'text_time' | null;
  const addTimeDim = c.optionalInt('addition_time_embed_dim');
  // 'simple_projection' makes no class_embedding in v0.25.1's ControlNetModel (it falls through
  // to None); a config asking for it is refused rather than silently ignored.
  c.only('class_embed_type', ['timestep', 'identity', 'projection']);
  const classEmbedType = (c.raw('class_embed_type') ?? null) as ControlNetConfig['classEmbedType'];
  const projectionInputDim = c.optionalInt('projection_class_embeddings_input_dim');
  if (classEmbedType === 'projection' && projectionInputDim === null) throw new ConfigError(`${where}: class_embed_type 'projection' requires projection_class_embeddings_input_dim`);
  // ControlNetModel's 'timestep' class embedding is TimestepEmbedding's default (SiLU) whatever
  // act_fn is, unlike its time embedding; Fresco's shared TimeEmbedding uses one activation for both.
  if (classEmbedType === 'timestep' && act !== 'silu') throw new ConfigError(`${where}: class_embed_type 'timestep' with act_fn ${JSON.stringify(c.raw('act_fn'))} is not supported (diffusers' ControlNetModel gives its class embedding SiLU, its time embedding act_fn)`);
  if (additionEmbedType === 'text_time' && (projectionInputDim === null || addTimeDim === null)) {
    throw new ConfigError(`${where}: addition_embed_type 'text_time' requires ${[addTimeDim === null && 'addition_time_embed_dim', projectionInputDim === null && 'projection_class_embeddings_input_dim'].filter(Boolean).join(' and ')}`);
  }
  if (c.has('norm_num_groups') && c.raw('norm_num_groups') === null) throw new ConfigError(`${where}: config option norm_num_groups = null is not supported`);
  // ControlNetModel loops range(layers_per_block) for its zero convs and passes cross_attention_dim
  // to every block as it is: lists fail in diffusers itself.
  for (const key of ['layers_per_block', 'cross_attention_dim']) {
    if (Array.isArray(c.raw(key))) throw new ConfigError(`${where}: config option ${key} = ${JSON.stringify(c.raw(key))}: ControlNetModel takes one int (a list fails in diffusers)`);
  }
  const tl = c.raw('transformer_layers_per_block');
  if (Array.isArray(tl) && tl.some((x) => Array.isArray(x))) throw new ConfigError(`${where}: config option transformer_layers_per_block = ${JSON.stringify(tl)} with per-layer lists is not supported`);

  const channels = c.intList('block_out_channels', [320, 640, 1280, 1280]);
  const downTypes = c.strList('down_block_types', ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
  if (channels.length === 0 || downTypes.length !== channels.length) throw new ConfigError(`${where}: down_block_types and block_out_channels must have the same (non-zero) length`);
  checkBlockTypes(where, 'down', downTypes, COND_DOWN_TYPES);
  const n = channels.length;
  const conditioningEmbeddingChannels = c.intList('conditioning_embedding_out_channels', [16, 32, 96, 256]);
  if (conditioningEmbeddingChannels.length === 0 || conditioningEmbeddingChannels.some((x) => x < 1)) {
    throw new ConfigError(`${where}: config option conditioning_embedding_out_channels = ${JSON.stringify(c.raw('conditioning_embedding_out_channels'))} must be a non-empty list of positive ints`);
  }
  const onlyCrossAttention = onlyCrossList(c.raw('only_cross_attention'), n, where);
  // num_attention_heads or attention_head_dim: the head count (diffusers: num_attention_heads or attention_head_dim).
  const headsKey = c.raw('num_attention_heads') !== undefined && c.raw('num_attention_heads') !== null ? 'num_attention_heads' : 'attention_head_dim';
  const heads = perBlock(c, headsKey, 8, n, where);
  channels.forEach((ch, i) => {
    if (ch % heads[i]! !== 0) throw new ConfigError(`${where}: block ${i} has ${ch} channels, not a multiple of its ${heads[i]} attention heads`);
  });
  c.bool('upcast_attention', false);
  c.int('addition_embed_type_num_heads', 64, 1);
  const groups = c.int('norm_num_groups', 32, 1);
  return {
    where,
    inChannels: c.int('in_channels', 4, 1),
    conditioningChannels: c.int('conditioning_channels', 3, 1),
    channelOrder,
    conditioningEmbeddingChannels,
    act,
    timeEmbeddingNorm,
    channels,
    downTypes,
    midBlockType,
    layers: c.int('layers_per_block', 2, 1),
    heads,
    transformerLayers: perBlock(c, 'transformer_layers_per_block', 1, n, where),
    crossAttentionDim: c.int('cross_attention_dim', 1280, 1),
    linearProjection: c.bool('use_linear_projection', false),
    onlyCrossAttention,
    groups,
    eps: c.num('norm_eps', 1e-5),
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.num('freq_shift', 0),
    midBlockScaleFactor: c.num('mid_block_scale_factor', 1),
    downsamplePadding: c.int('downsample_padding', 1),
    timeEmbedDim: channels[0]! * 4,
    classEmbedType,
    numClassEmbeds: classEmbedType === null ? c.optionalInt('num_class_embeds') : null,
    projectionInputDim,
    additionEmbedType,
    textTime: additionEmbedType === 'text_time' ? { timeEmbedDim: addTimeDim!, inputDim: projectionInputDim! } : null,
  };
}

/** One of diffusers' down_block_res_samples: its channels and how many times it was halved. */
export interface ResidualSlot {
  channels: number;
  level: number;
}

/**
 * The skips a U-Net's down path keeps (diffusers' down_block_res_samples): conv_in's output, each
 * down block's layers, and its downsampler but the last block's; `layers` per block.
 */
export function residualLayout(channels: readonly number[], layers: readonly number[]): ResidualSlot[] {
  const out: ResidualSlot[] = [{ channels: channels[0]!, level: 0 }];
  channels.forEach((ch, i) => {
    for (let j = 0; j < layers[i]!; j++) out.push({ channels: ch, level: i });
    if (i < channels.length - 1) out.push({ channels: ch, level: i + 1 });
  });
  return out;
}

/** How much ControlNetConditioningEmbedding shrinks the control image: each block after the first halves it. */
export function conditioningDownscale(cfg: ControlNetConfig): number {
  return 2 ** (cfg.conditioningEmbeddingChannels.length - 1);
}

const slotStr = (s: ResidualSlot) => `${s.channels} channels at 1/${2 ** s.level}`;

/**
 * Refuses a ControlNet whose residuals do not fit the U-Net (as StableDiffusionControlNetPipeline
 * would use them, which fails at its first step where they do not): the same latents in, one
 * residual per U-Net skip with its channels and size, the mid block's width, the text states'
 * width, and control images at the VAE's pixel scale.
 */
export function checkControlNetFits(cn: ControlNetConfig, unet: UNet2DConditionConfig, vaeScaleFactor: number): void {
  const where = cn.where;
  if (cn.inChannels !== unet.inChannels) throw new ConfigError(`${where}: in_channels ${cn.inChannels} does not match the U-Net's ${unet.inChannels} (the ControlNet takes the same latents)`);
  const want = residualLayout(unet.channels, unet.layers);
  const got = residualLayout(cn.channels, new Array<number>(cn.channels.length).fill(cn.layers));
  if (got.length !== want.length) {
    throw new ConfigError(`${where}: gives ${got.length} down residuals (block_out_channels ${JSON.stringify(cn.channels)}, layers_per_block ${cn.layers}) but the U-Net (${unet.where}) keeps ${want.length} skips (block_out_channels ${JSON.stringify(unet.channels)}, layers_per_block ${JSON.stringify(unet.layers)})`);
  }
  const bad = got.findIndex((s, i) => s.channels !== want[i]!.channels || s.level !== want[i]!.level);
  if (bad >= 0) throw new ConfigError(`${where}: down residual ${bad} has ${slotStr(got[bad]!)} but the U-Net's skip ${bad} has ${slotStr(want[bad]!)}`);
  const [cnMid, unetMid] = [cn.channels[cn.channels.length - 1]!, unet.channels[unet.channels.length - 1]!];
  if (cnMid !== unetMid) throw new ConfigError(`${where}: the mid residual has ${cnMid} channels but the U-Net's mid block ${unetMid}`);
  const cross = cn.midBlockType === 'UNetMidBlock2DCrossAttn' || cn.downTypes.some((t) => t === 'CrossAttnDownBlock2D');
  if (cross && cn.crossAttentionDim !== unet.crossAttentionDim) throw new ConfigError(`${where}: cross_attention_dim ${cn.crossAttentionDim} does not match the U-Net's ${unet.crossAttentionDim} (both attend to the same text states)`);
  if (conditioningDownscale(cn) !== vaeScaleFactor) {
    throw new ConfigError(`${where}: conditioning_embedding_out_channels ${JSON.stringify(cn.conditioningEmbeddingChannels)} shrinks control images ${conditioningDownscale(cn)}x, but the VAE's latents are 1/${vaeScaleFactor} of the image size`);
  }
}
