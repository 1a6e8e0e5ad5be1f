// UNet2DConditionModel's config.json read and checked (diffusers v0.25.1 defaults) into the values
// the model is built from. No GPU code.
import type { Activation } from '../kernels/activation.ts';
import { checkBlockTypes, modelConfigReader, type ConfigReader } from './config.ts';
import type { ClassEmbedType, TimeEmbeddingNorm, UNetCommonConfig } from './config_types.ts';
import { ConfigError } from '../errors.ts';

/** UNet2DConditionModel's constructor arguments in diffusers 0.25. */
const KEYS = [
  'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'flip_sin_to_cos', 'freq_shift',
  'down_block_types', 'mid_block_type', 'up_block_types', 'only_cross_attention', 'block_out_channels',
  'layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'dropout', 'act_fn', 'norm_num_groups',
  'norm_eps', 'cross_attention_dim', 'transformer_layers_per_block', 'reverse_transformer_layers_per_block',
  'encoder_hid_dim', 'encoder_hid_dim_type', 'attention_head_dim', 'num_attention_heads', 'dual_cross_attention',
  'use_linear_projection', 'class_embed_type', 'addition_embed_type', 'addition_time_embed_dim',
  'num_class_embeds', 'upcast_attention', 'resnet_time_scale_shift', 'resnet_skip_time_act',
  'resnet_out_scale_factor', 'time_embedding_type', 'time_embedding_dim', 'time_embedding_act_fn',
  'timestep_post_act', 'time_cond_proj_dim', 'conv_in_kernel', 'conv_out_kernel',
  'projection_class_embeddings_input_dim', 'attention_type', 'class_embeddings_concat',
  'mid_block_only_cross_attention', 'cross_attention_norm', 'addition_embed_type_num_heads',
];

export const COND_DOWN_TYPES = ['DownBlock2D', 'CrossAttnDownBlock2D'];
export const COND_UP_TYPES = ['UpBlock2D', 'CrossAttnUpBlock2D'];

export type CondMidBlockType = 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D';

/**
 * act is every ResNet's activation (norms and time embedding), TimestepEmbedding's own and conv_act;
 * timeEmbedDim is time_embedding_dim, 4·block_out_channels[0] when null. Per-block lists have one
 * entry per down block: down block i takes entry i, the mid block the last entry, up block i the
 * reversed list's entry i.
 */
export interface UNet2DConditionConfig extends UNetCommonConfig {
  /** null: mid_block_type null, no mid block. */
  midBlockType: CondMidBlockType | null;
  /** 'text_time' (SDXL; forward needs t.textEmbeds and t.timeIds) or null. */
  additionEmbedType: 'text_time' | null;
  /** add_time_proj's width and add_embedding's input width, for 'text_time'. */
  textTime: { timeEmbedDim: number; inputDim: number } | null;
  /** cross_attention_dim per block. */
  crossAttentionDims: number[];
  /** The width encoder_hidden_states must have (the one its cross-attention blocks share). */
  crossAttentionDim: number;
  convInKernel: number;
  convOutKernel: number;
  /** layers_per_block per block (an up block has one more). */
  layers: number[];
  /** attention_head_dim per block, which diffusers 0.25 uses as the number of heads. */
  heads: number[];
  transformerLayers: number[];
  linearProjection: boolean;
  /** only_cross_attention per block: attn1 attends to encoder_hidden_states too. */
  onlyCrossAttention: boolean[];
  /** time_cond_proj_dim: TimestepEmbedding's cond_proj over forward's timestep_cond (LCM-distilled U-Nets). */
  timeCondProjDim: number | null;
  /** time_embedding_act_fn: once on emb (+ class_emb) before the blocks. */
  embedAct: Activation | null;
  /** timestep_post_act: TimestepEmbedding's post_act after linear_2 (the time embedding only). */
  postAct: Activation | null;
  /** class_embed_type; numClassEmbeds only matters when it is null (nn.Embedding). */
  classEmbedType: Exclude<ClassEmbedType, 'embedding'> | null;
  numClassEmbeds: number | null;
  /** projection_class_embeddings_input_dim: the class vectors' width for the projections. */
  projectionInputDim: number | null;
}

/** An int or a per-block list of ints (diffusers accepts both for several options; ControlNetModel's reader too). */
export function perBlock(c: ConfigReader, key: string, fallback: number, n: number, where: string): number[] {
  const v = c.raw(key);
  if (v === undefined || v === null) return new Array<number>(n).fill(fallback);
  if (!Array.isArray(v)) return new Array<number>(n).fill(c.int(key, fallback, 1));
  const list = c.intList(key, []);
  if (list.length !== n) throw new ConfigError(`${where}: config option ${key} has ${list.length} entries for ${n} down blocks`);
  return list;
}

/** only_cross_attention: a bool (every block) or one bool per down block. */
export function onlyCrossList(v: unknown, n: number, where: string): boolean[] {
  if (v === undefined || v === null) return new Array<boolean>(n).fill(false);
  if (typeof v === 'boolean') return new Array<boolean>(n).fill(v);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'boolean')) throw new ConfigError(`${where}: config option only_cross_attention = ${JSON.stringify(v)} is not true, false or a list of them`);
  if (v.length !== n) throw new ConfigError(`${where}: config option only_cross_attention has ${v.length} entries for ${n} down blocks`);
  return v as boolean[];
}

/** Reads and checks a UNet2DConditionModel config.json. */
export function readUNet2DConditionConfig(config: Record<string, unknown>, where = 'UNet2DConditionModel'): UNet2DConditionConfig {
  const c = modelConfigReader(config, where, 'UNet2DConditionModel', KEYS);
  const act = c.activation('act_fn');
  c.only('time_embedding_type', ['positional']);
  const centerInput = c.bool('center_input_sample', false);
  // UNetMidBlock2DCrossAttn (the default), UNetMidBlock2D (diffusers builds it here with num_layers 0
  // and add_attention False: one resnet) or an explicit null (no mid block). UNetMidBlock2DSimpleCrossAttn is not built.
  c.only('mid_block_type', ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D']);
  const midBlockType = !c.has('mid_block_type') ? 'UNetMidBlock2DCrossAttn' : (c.raw('mid_block_type') as CondMidBlockType | null);
  // mid_block_only_cross_attention only reaches UNetMidBlock2DSimpleCrossAttn (refused above) in
  // diffusers 0.25: UNetMidBlock2DCrossAttn and UNetMidBlock2D take no such option, so any value is accepted and has no effect.
  const midOnlyCross = c.raw('mid_block_only_cross_attention');
  if (midOnlyCross !== undefined && midOnlyCross !== null && typeof midOnlyCross !== 'boolean') throw new ConfigError(`${where}: config option mid_block_only_cross_attention = ${JSON.stringify(midOnlyCross)} is not true, false or null`);
  c.only('dual_cross_attention', [false]);
  // ada_group and spatial replace the norms with AdaGroupNorm / SpatialNorm, which are not built.
  c.only('resnet_time_scale_shift', ['default', 'scale_shift']);
  const timeEmbeddingNorm = (c.raw('resnet_time_scale_shift') ?? 'default') as TimeEmbeddingNorm;
  // resnet_skip_time_act and resnet_out_scale_factor: in diffusers 0.25 get_down_block / get_up_block pass
  // them only to ResnetDownsampleBlock2D, ResnetUpsampleBlock2D and the SimpleCrossAttn blocks (not
  // built); DownBlock2D, CrossAttnDownBlock2D, UpBlock2D, CrossAttnUpBlock2D and the mid blocks do not
  // take them, so any value is accepted (type-checked) and has no effect, as in diffusers.
  c.bool('resnet_skip_time_act', false);
  c.num('resnet_out_scale_factor', 1);
  c.only('attention_type', ['default']);
  c.only('class_embeddings_concat', [false]);
  // projection and simple_projection: a TimestepEmbedding / Linear over float class vectors of
  // projection_class_embeddings_input_dim.
  c.only('class_embed_type', ['timestep', 'identity', 'projection', 'simple_projection']);
  // Options that add inputs or layers we do not build: only their null defaults are accepted.
  for (const key of ['encoder_hid_dim', 'encoder_hid_dim_type', 'cross_attention_norm', 'reverse_transformer_layers_per_block']) {
    c.only(key, [], 'is not supported');
  }
  // addition_embed_type 'text_time' (Stable Diffusion XL): add_time_proj over forward's time_ids and
  // add_embedding over cat(text_embeds, that). 'text', 'text_image', 'image' and 'image_hint'
  // (Kandinsky, ControlNet-style hints) are not built. addition_embed_type_num_heads only reaches 'text'.
  c.only('addition_embed_type', ['text_time']);
  const additionEmbedType = (c.raw('addition_embed_type') ?? null) as 'text_time' | null;
  // addition_time_embed_dim: add_time_proj's width; diffusers reads it for 'text_time' only.
  const addTimeDim = c.optionalInt('addition_time_embed_dim');
  // diffusers 0.25 itself refuses num_attention_heads; attention_head_dim is the head count.
  c.only('num_attention_heads', [], 'is rejected by diffusers 0.25 (attention_head_dim gives the number of heads)');
  // Per-layer lists inside the per-block list are diffusers' asymmetric U-Net, which it only accepts
  // with reverse_transformer_layers_per_block (refused above).
  const tl = c.raw('transformer_layers_per_block');
  if (Array.isArray(tl) && tl.some((x) => Array.isArray(x))) {
    throw new ConfigError(`${where}: config option transformer_layers_per_block = ${JSON.stringify(tl)} with per-layer lists is not supported (diffusers needs reverse_transformer_layers_per_block for it)`);
  }
  if (Array.isArray(c.raw('sample_size'))) throw new ConfigError(`${where}: config option sample_size = ${JSON.stringify(c.raw('sample_size'))} (non-square) is not supported`);
  if (c.has('norm_num_groups') && c.raw('norm_num_groups') === null) throw new ConfigError(`${where}: config option norm_num_groups = null is not supported`);

  const channels = c.intList('block_out_channels', [320, 640, 1280, 1280]);
  const downTypes = c.strList('down_block_types', ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
  const upTypes = c.strList('up_block_types', ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']);
  if (downTypes.length !== channels.length || upTypes.length !== channels.length) {
    throw new ConfigError(`${where}: down_block_types, up_block_types and block_out_channels must have the same length`);
  }
  checkBlockTypes(where, 'down', downTypes, COND_DOWN_TYPES);
  checkBlockTypes(where, 'up', upTypes, COND_UP_TYPES);
  const inChannels = c.int('in_channels', 4, 1);
  const outChannels = c.int('out_channels', 4, 1);
  const sampleSize = c.int('sample_size', 64, 1);
  // cross_attention_dim: an int or one per down block. One encoder_hidden_states feeds every
  // cross-attention block, so those that have one must agree (diffusers builds other lists, but
  // their forward fails on a shape mismatch).
  const crossAttentionDims = perBlock(c, 'cross_attention_dim', 1280, channels.length, where);
  const convInKernel = c.int('conv_in_kernel', 3, 1);
  const convOutKernel = c.int('conv_out_kernel', 3, 1);
  if (convInKernel % 2 === 0 || convOutKernel % 2 === 0) throw new ConfigError(`${where}: even conv_in_kernel / conv_out_kernel are not supported`);
  const layers = perBlock(c, 'layers_per_block', 2, channels.length, where);
  const groups = c.int('norm_num_groups', 32, 1);
  const eps = c.num('norm_eps', 1e-5);
  const heads = perBlock(c, 'attention_head_dim', 8, channels.length, where);
  const transformerLayers = perBlock(c, 'transformer_layers_per_block', 1, channels.length, where);
  const linearProjection = c.bool('use_linear_projection', false);
  // The mid block never has only_cross_attention (see above); up blocks take the reversed list.
  const onlyCrossAttention = onlyCrossList(c.raw('only_cross_attention'), channels.length, where);
  const timeCondProjDim = c.optionalInt('time_cond_proj_dim');
  const midBlockScaleFactor = c.num('mid_block_scale_factor', 1);
  const downsamplePadding = c.int('downsample_padding', 1);
  const timeEmbedDim = c.raw('time_embedding_dim') === null ? channels[0]! * 4 : c.int('time_embedding_dim', channels[0]! * 4, 1);
  const optionalAct = (key: string): Activation | null => (c.raw(key) === undefined || c.raw(key) === null ? null : c.activation(key));
  const embedAct = optionalAct('time_embedding_act_fn');
  const postAct = optionalAct('timestep_post_act');
  // diffusers: class_embed_type wins; num_class_embeds only matters when it is null (nn.Embedding).
  const classEmbedType = (c.raw('class_embed_type') ?? null) as UNet2DConditionConfig['classEmbedType'];
  const projectionInputDim = c.optionalInt('projection_class_embeddings_input_dim');
  if ((classEmbedType === 'projection' || classEmbedType === 'simple_projection') && projectionInputDim === null) {
    throw new ConfigError(`${where}: class_embed_type '${classEmbedType}' requires projection_class_embeddings_input_dim`);
  }
  // 'text_time': add_embedding takes projection_class_embeddings_input_dim = text_embeds' width +
  // (number of time ids)·addition_time_embed_dim features (SDXL base 1280 + 6·256, refiner 1280 + 5·256).
  if (additionEmbedType === 'text_time' && (projectionInputDim === null || addTimeDim === null)) {
    throw new ConfigError(`${where}: addition_embed_type 'text_time' requires ${[addTimeDim === null && 'addition_time_embed_dim', projectionInputDim === null && 'projection_class_embeddings_input_dim'].filter(Boolean).join(' and ')}`);
  }
  const textTime = additionEmbedType === 'text_time' ? { timeEmbedDim: addTimeDim!, inputDim: projectionInputDim! } : null;
  const numClassEmbeds = classEmbedType === null ? c.optionalInt('num_class_embeds') : null;
  // upcast_attention only changes the precision of q·kᵀ, which is f32 here already.
  c.bool('upcast_attention', false);

  const usesCross = [
    ...downTypes.map((t, i) => [t.startsWith('CrossAttn'), crossAttentionDims[i]!] as const),
    [midBlockType === 'UNetMidBlock2DCrossAttn', crossAttentionDims[crossAttentionDims.length - 1]!] as const,
    ...upTypes.map((t, i) => [t.startsWith('CrossAttn'), crossAttentionDims[crossAttentionDims.length - 1 - i]!] as const),
  ].filter(([cross]) => cross).map(([, dim]) => dim);
  const distinct = [...new Set(usesCross)];
  if (distinct.length > 1) {
    throw new ConfigError(`${where}: config option cross_attention_dim = ${JSON.stringify(c.raw('cross_attention_dim'))} gives the cross-attention blocks different widths (${distinct.join(', ')}); one encoder_hidden_states cannot feed them all`);
  }
  return {
    where, inChannels, outChannels, sampleSize, centerInput, act, midBlockType, timeEmbeddingNorm, additionEmbedType, textTime,
    channels, downTypes, upTypes, crossAttentionDims,
    crossAttentionDim: distinct[0] ?? crossAttentionDims[crossAttentionDims.length - 1]!,
    convInKernel, convOutKernel, layers, groups, eps, heads, transformerLayers, linearProjection, onlyCrossAttention,
    timeCondProjDim, midBlockScaleFactor, downsamplePadding, timeEmbedDim, embedAct, postAct,
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.num('freq_shift', 0),
    classEmbedType, numClassEmbeds, projectionInputDim,
  };
}
