// UNet2DModel's config.json read and checked (diffusers v0.25.1 defaults) into the values the
// model is built from. No GPU code.
import { checkBlockTypes, modelConfigReader } from './config.ts';
import type { ClassEmbedType, ResampleType, TimeEmbeddingNorm, TimeEmbeddingType, UNetCommonConfig } from './config_types.ts';
import { ConfigError } from '../errors.ts';

/** UNet2DModel's constructor arguments in diffusers 0.25. */
const UNET_2D_KEYS = [
  'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'time_embedding_type', 'freq_shift',
  'flip_sin_to_cos', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'mid_block_scale_factor', 'downsample_padding', 'downsample_type', 'upsample_type', 'dropout', 'act_fn',
  'attention_head_dim', 'norm_num_groups', 'attn_norm_num_groups', 'norm_eps', 'resnet_time_scale_shift',
  'add_attention', 'class_embed_type', 'num_class_embeds', 'num_train_timesteps',
];

/**
 * The block types of get_down_block / get_up_block built for UNet2DModel, NCSN++'s skip blocks
 * (FIR resampling and the image-space skip_sample path) included.
 */
export const UNET_DOWN_TYPES = ['DownBlock2D', 'AttnDownBlock2D', 'ResnetDownsampleBlock2D', 'SkipDownBlock2D', 'AttnSkipDownBlock2D'];
export const UNET_UP_TYPES = ['UpBlock2D', 'AttnUpBlock2D', 'ResnetUpsampleBlock2D', 'SkipUpBlock2D', 'AttnSkipUpBlock2D'];
const isSkipBlock = (t: string) => t === 'SkipDownBlock2D' || t === 'AttnSkipDownBlock2D' || t === 'SkipUpBlock2D' || t === 'AttnSkipUpBlock2D';

/** get_down_block / get_up_block strip a leading "UNetRes" from the type name. */
const blockType = (t: string) => (t.startsWith('UNetRes') ? t.slice(7) : t);

/** The image-space channels of NCSN++'s skip path: skip_conv is hard-wired to RGB in diffusers (Conv2d(3, C) down, Conv2d(C, 3) up). */
export const SKIP_SAMPLE_CHANNELS = 3;

/** act is resnet_act_fn of every block (and of the ResNets' time embedding); timeEmbedDim is 4·block_out_channels[0]. */
export interface UNet2DConfig extends UNetCommonConfig {
  timeEmbeddingType: TimeEmbeddingType;
  /** 'learned': the time table's rows; null where the config has none. */
  numTrainTimesteps: number | null;
  /** class_embed_type, which wins over numClassEmbeds (as in diffusers). */
  classEmbedType: Extract<ClassEmbedType, 'timestep' | 'identity'> | null;
  numClassEmbeds: number | null;
  downsampleType: ResampleType;
  upsampleType: ResampleType;
  layersPerBlock: number;
  /** Some block is one of NCSN++'s skip blocks: forward carries diffusers' skip_sample. */
  skipPath: boolean;
  /** The mid block's group count (differs from groups under norm_num_groups null). */
  midGroups: number;
  /** attention_head_dim; null: one head per block (diffusers' explicit None). */
  attentionHeadDim: number | null;
  /** The mid attention's group norm; null: none. */
  attnGroups: number | null;
  addAttention: boolean;
}

/** Reads and checks a UNet2DModel config.json. */
export function readUNet2DConfig(config: Record<string, unknown>, where = 'UNet2DModel'): UNet2DConfig {
  const c = modelConfigReader(config, where, 'UNet2DModel', UNET_2D_KEYS);
  // conv_act and the time MLP stay SiLU, as in diffusers.
  const act = c.activation('act_fn');
  c.only('time_embedding_type', ['positional', 'fourier', 'learned']);
  const timeEmbeddingType = (c.raw('time_embedding_type') ?? 'positional') as TimeEmbeddingType;
  // 'timestep' / 'identity' as UNet2DConditionModel has them (TimeEmbedding); diffusers' UNet2DModel
  // silently builds no class embedding for any other value, which is refused here instead.
  c.only('class_embed_type', ['timestep', 'identity']);
  // ada_group and spatial replace the norms with AdaGroupNorm / SpatialNorm, which are not built.
  c.only('resnet_time_scale_shift', ['default', 'scale_shift']);
  const timeEmbeddingNorm = (c.raw('resnet_time_scale_shift') ?? 'default') as TimeEmbeddingNorm;
  // 'resnet': a ResnetBlock2D with down / up = True resamples in AttnDownBlock2D / AttnUpBlock2D
  // (diffusers' DownBlock2D and UpBlock2D ignore these options).
  c.only('downsample_type', ['conv', 'resnet']);
  c.only('upsample_type', ['conv', 'resnet']);
  const downsampleType = (c.raw('downsample_type') ?? 'conv') as ResampleType;
  const upsampleType = (c.raw('upsample_type') ?? 'conv') as ResampleType;
  const centerInput = c.bool('center_input_sample', false);
  const channels = c.intList('block_out_channels', [224, 448, 672, 896]);
  const downTypes = c.strList('down_block_types', ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D']).map(blockType);
  const upTypes = c.strList('up_block_types', ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D']).map(blockType);
  if (downTypes.length !== channels.length || upTypes.length !== channels.length) {
    throw new ConfigError(`${where}: down_block_types, up_block_types and block_out_channels must have the same length`);
  }
  checkBlockTypes(where, 'down', downTypes, UNET_DOWN_TYPES);
  checkBlockTypes(where, 'up', upTypes, UNET_UP_TYPES);
  const inChannels = c.int('in_channels', 3, 1);
  const outChannels = c.int('out_channels', 3, 1);
  if (Array.isArray(c.raw('sample_size'))) throw new ConfigError(`${where}: config option sample_size = ${JSON.stringify(c.raw('sample_size'))} (non-square) is not supported`);
  const sampleSize = c.int('sample_size', 32, 1);
  const layersPerBlock = c.int('layers_per_block', 2, 1);
  const skipPath = [...downTypes, ...upTypes].some(isSkipBlock);
  if (skipPath) checkSkipPath(where, downTypes, upTypes, inChannels, outChannels);
  // norm_num_groups null (NCSN++'s configs): the mid block and conv_norm_out take min(C // 4, 32)
  // groups; only the skip blocks, which compute their own, can be built with it in diffusers.
  const groupsNull = c.has('norm_num_groups') && c.raw('norm_num_groups') === null;
  if (groupsNull) {
    const other = [...downTypes, ...upTypes].find((t) => !isSkipBlock(t));
    if (other) throw new ConfigError(`${where}: config option norm_num_groups = null is not supported with ${other} (only NCSN++'s skip blocks build without it, as in diffusers)`);
  }
  const fourth = (ch: number) => {
    const g = Math.min(Math.floor(ch / 4), 32);
    if (g < 1 || ch % g !== 0) throw new ConfigError(`${where}: norm_num_groups = null gives ${ch} channels min(${ch} // 4, 32) = ${g} groups, which do not split them`);
    return g;
  };
  const groups = groupsNull ? fourth(channels[0]!) : c.int('norm_num_groups', 32, 1);
  const midGroups = groupsNull ? fourth(channels[channels.length - 1]!) : groups;
  const eps = c.num('norm_eps', 1e-5);
  // diffusers: a missing attention_head_dim means 8; an explicit null means one head per block.
  const headDimRaw = c.has('attention_head_dim') ? c.raw('attention_head_dim') : 8;
  if (headDimRaw !== null && !(typeof headDimRaw === 'number' && Number.isInteger(headDimRaw) && headDimRaw > 0)) {
    throw new ConfigError(`${where}: config option attention_head_dim = ${JSON.stringify(headDimRaw)} is not a positive integer or null`);
  }
  // diffusers' UNetMidBlock2D: without attn_norm_num_groups the mid attention keeps a group norm
  // only under the default time embedding norm.
  const attnGroups = c.has('attn_norm_num_groups') && c.raw('attn_norm_num_groups') !== null ? c.int('attn_norm_num_groups', groups, 1) : timeEmbeddingNorm === 'default' ? midGroups : null;
  const midBlockScaleFactor = c.num('mid_block_scale_factor', 1);
  const downsamplePadding = c.int('downsample_padding', 1);
  const numTrainTimesteps = c.has('num_train_timesteps') && c.raw('num_train_timesteps') !== null ? c.int('num_train_timesteps', 1, 1) : null;
  // An nn.Embedding of num_train_timesteps rows needs that number.
  if (timeEmbeddingType === 'learned' && numTrainTimesteps === null) throw new ConfigError(`${where}: time_embedding_type 'learned' requires num_train_timesteps`);
  return {
    where, inChannels, outChannels, sampleSize, centerInput, act, timeEmbeddingType, numTrainTimesteps,
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.num('freq_shift', 0),
    classEmbedType: (c.raw('class_embed_type') ?? null) as 'timestep' | 'identity' | null,
    numClassEmbeds: c.has('num_class_embeds') && c.raw('num_class_embeds') !== null ? c.int('num_class_embeds', 0, 1) : null,
    timeEmbeddingNorm, downsampleType, upsampleType, channels, downTypes, upTypes, layersPerBlock, skipPath, groups, midGroups, eps,
    attentionHeadDim: headDimRaw as number | null,
    attnGroups, midBlockScaleFactor, downsamplePadding,
    addAttention: c.bool('add_attention', true),
    timeEmbedDim: channels[0]! * 4,
  };
}

/**
 * Where diffusers' UNet2DModel.forward can carry skip_sample through the blocks without a shape
 * error: skip_conv is wired to 3 channels (so the input sample, and the output it is added to, must
 * have 3), a skip down block that downsamples needs the skip sample at its level (every block
 * before it a skip block too), and once an up block has made the image-space skip every later up
 * block must be a skip block that upsamples it.
 */
function checkSkipPath(where: string, downTypes: string[], upTypes: string[], inChannels: number, outChannels: number): void {
  const n = downTypes.length;
  const firstOther = downTypes.findIndex((t) => !isSkipBlock(t));
  downTypes.forEach((t, i) => {
    if (!isSkipBlock(t) || i === n - 1) return;
    if (inChannels !== SKIP_SAMPLE_CHANNELS) throw new ConfigError(`${where}: ${t}'s skip_conv takes ${SKIP_SAMPLE_CHANNELS}-channel samples, in_channels is ${inChannels}`);
    if (firstOther >= 0 && firstOther < i) throw new ConfigError(`${where}: down block ${i} (${t}) gets the skip sample at full size after ${downTypes[firstOther]} downsampled the hidden states (diffusers fails on this)`);
  });
  const making = upTypes.findIndex((t, i) => isSkipBlock(t) && i < n - 1);
  if (making >= 0) {
    if (outChannels !== SKIP_SAMPLE_CHANNELS) throw new ConfigError(`${where}: ${upTypes[making]}'s skip_conv makes a ${SKIP_SAMPLE_CHANNELS}-channel skip for the output, out_channels is ${outChannels}`);
    const after = upTypes.slice(making + 1).find((t) => !isSkipBlock(t));
    if (after) throw new ConfigError(`${where}: up block ${upTypes.indexOf(after, making + 1)} (${after}) does not upsample the skip that up block ${making} (${upTypes[making]}) made (diffusers fails on this)`);
  }
}
