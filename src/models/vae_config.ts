// The config of the VAEs' Encoder and Decoder (AutoencoderKL's and VQModel's), read from their
// model's config.json. No GPU code.
import type { Activation } from '../kernels/activation.ts';
import { checkBlockTypes, type ConfigReader } from './config.ts';
import { ConfigError } from '../errors.ts';

/** SpatialNorm's GroupNorm always takes 32 groups, whatever norm_num_groups says (diffusers' SpatialNorm). */
export const SPATIAL_NORM_GROUPS = 32;

export type DecoderNormType = 'group' | 'spatial';

interface TowerConfig {
  /** act_fn: every resnet's activation (resnet_act_fn); conv_act after conv_norm_out is always SiLU in diffusers. */
  act: Activation;
  /** block_out_channels. */
  channels: number[];
  layersPerBlock: number;
  groups: number;
  midBlockAddAttention: boolean;
}

export interface VaeEncoderConfig extends TowerConfig {
  downTypes: string[];
}

export interface VaeDecoderConfig extends TowerConfig {
  upTypes: string[];
  /** 'spatial' (MoVQ): every norm is a SpatialNorm over the quantized latents, and groups is 32. */
  normType: DecoderNormType;
}

export const ENCODER_TYPES = ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'];
export const DECODER_TYPES = ['UpDecoderBlock2D', 'AttnUpDecoderBlock2D'];

export function readVaeEncoderConfig(c: ConfigReader): VaeEncoderConfig {
  const act = c.activation('act_fn');
  const channels = c.intList('block_out_channels', [64]);
  const downTypes = c.strList('down_block_types', ['DownEncoderBlock2D']);
  if (downTypes.length !== channels.length) throw new ConfigError(`${c.where}: down_block_types and block_out_channels must have the same length`);
  const layersPerBlock = c.int('layers_per_block', 1, 1);
  const groups = c.int('norm_num_groups', 32, 1);
  checkBlockTypes(c.where, 'down', downTypes, ENCODER_TYPES);
  return { act, channels, downTypes, layersPerBlock, groups, midBlockAddAttention: c.bool('mid_block_add_attention', true) };
}

/** `normType`: the decoder the model builds; a config naming another is refused. */
export function readVaeDecoderConfig(c: ConfigReader, normType: DecoderNormType = 'group'): VaeDecoderConfig {
  const act = c.activation('act_fn');
  c.only('norm_type', [normType]);
  const channels = c.intList('block_out_channels', [64]);
  const upTypes = c.strList('up_block_types', ['UpDecoderBlock2D']);
  if (upTypes.length !== channels.length) throw new ConfigError(`${c.where}: up_block_types and block_out_channels must have the same length`);
  const layersPerBlock = c.int('layers_per_block', 1, 1);
  // SpatialNorm always takes 32 groups: norm_num_groups reaches no decoder norm under 'spatial'.
  const groups = normType === 'spatial' ? SPATIAL_NORM_GROUPS : c.int('norm_num_groups', 32, 1);
  if (normType === 'spatial') {
    for (const ch of channels) if (ch % SPATIAL_NORM_GROUPS !== 0) throw new ConfigError(`${c.where}: norm_type 'spatial' needs block_out_channels divisible by 32 (SpatialNorm's group count), got ${ch}`);
  }
  const midBlockAddAttention = c.bool('mid_block_add_attention', true);
  checkBlockTypes(c.where, 'up', upTypes, DECODER_TYPES);
  return { act, channels, upTypes, layersPerBlock, groups, midBlockAddAttention, normType };
}
