// AutoencoderTiny's (TAESD's) config.json read and checked (diffusers v0.25.1 defaults). No GPU code.
import type { Activation } from '../kernels/activation.ts';
import { modelConfigReader } from './config.ts';
import type { NamedConfig } from './config_types.ts';
import { ConfigError } from '../errors.ts';

/** AutoencoderTiny's constructor arguments in diffusers 0.25, plus block_out_channels, which it registers itself. */
const AUTOENCODER_TINY_KEYS = [
  'in_channels', 'out_channels', 'encoder_block_out_channels', 'decoder_block_out_channels', 'act_fn', 'latent_channels',
  'upsampling_scaling_factor', 'num_encoder_blocks', 'num_decoder_blocks', 'latent_magnitude', 'latent_shift',
  'force_upcast', 'scaling_factor', 'block_out_channels',
];

export interface AutoencoderTinyConfig extends NamedConfig {
  /** act_fn: inside every AutoencoderTinyBlock and after the decoder's conv_in (the blocks' fuse stays ReLU). */
  act: Activation;
  latentChannels: number;
  outChannels: number;
  inChannels: number;
  /** Used by scale_latents / unscale_latents, which decode does not apply. */
  scalingFactor: number;
  /** The one width of every stage (each stage's convs map its width to itself, as in diffusers). */
  decoderChannels: number;
  /** AutoencoderTinyBlocks per stage. */
  decoderBlocks: number[];
  encoderChannels: number;
  encoderBlocks: number[];
}

/** Reads and checks an AutoencoderTiny config.json. */
export function readAutoencoderTinyConfig(config: Record<string, unknown>, where = 'AutoencoderTiny'): AutoencoderTinyConfig {
  const c = modelConfigReader(config, where, 'AutoencoderTiny', AUTOENCODER_TINY_KEYS);
  const act = c.activation('act_fn', 'relu');
  // Upsampling is fused into the following conv's read, which knows only 2×.
  c.only('upsampling_scaling_factor', [2]);
  const latentChannels = c.int('latent_channels', 4, 1);
  const outChannels = c.int('out_channels', 3, 1);
  const inChannels = c.int('in_channels', 3, 1);
  const scalingFactor = c.num('scaling_factor', 1);
  const decoderWidths = c.intList('decoder_block_out_channels', [64, 64, 64, 64]);
  const decoderBlocks = c.intList('num_decoder_blocks', [3, 3, 3, 1]);
  if (decoderWidths.length !== decoderBlocks.length) throw new ConfigError(`${where}: decoder_block_out_channels and num_decoder_blocks must have the same length`);
  const encoderWidths = c.intList('encoder_block_out_channels', [64, 64, 64, 64]);
  const encoderBlocks = c.intList('num_encoder_blocks', [1, 3, 3, 3]);
  if (encoderWidths.length !== encoderBlocks.length) throw new ConfigError(`${where}: encoder_block_out_channels and num_encoder_blocks must have the same length`);
  if (decoderWidths.some((ch) => ch !== decoderWidths[0])) throw new ConfigError(`${where}: decoder_block_out_channels ${JSON.stringify(decoderWidths)} differ; DecoderTiny only chains stages of equal width`);
  if (encoderWidths.some((ch) => ch !== encoderWidths[0])) throw new ConfigError(`${where}: encoder_block_out_channels ${JSON.stringify(encoderWidths)} differ; EncoderTiny only chains stages of equal width`);
  return { where, act, latentChannels, outChannels, inChannels, scalingFactor, decoderChannels: decoderWidths[0]!, decoderBlocks, encoderChannels: encoderWidths[0]!, encoderBlocks };
}
