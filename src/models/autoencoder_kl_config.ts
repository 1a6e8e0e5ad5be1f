// AutoencoderKL's config.json read and checked (diffusers v0.25.1 defaults). No GPU code.
import { modelConfigReader, scalingFactor } from './config.ts';
import type { NamedConfig } from './config_types.ts';
import { readVaeDecoderConfig, readVaeEncoderConfig, type VaeDecoderConfig, type VaeEncoderConfig } from './vae_config.ts';

/** AutoencoderKL's constructor arguments (diffusers 0.25, plus the later quant-conv switches). */
const AUTOENCODER_KL_KEYS = [
  'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'act_fn', 'latent_channels', 'norm_num_groups', 'sample_size', 'scaling_factor', 'force_upcast',
  'use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention',
];

export interface AutoencoderKLConfig extends NamedConfig {
  latentChannels: number;
  inChannels: number;
  outChannels: number;
  scalingFactor: number;
  /** Image pixels per latent pixel along each side: 2^(levels − 1), diffusers' vae_scale_factor. */
  scaleFactor: number;
  usePostQuantConv: boolean;
  encoder: VaeEncoderConfig;
  decoder: VaeDecoderConfig;
}

/** Reads and checks an AutoencoderKL config.json. */
export function readAutoencoderKLConfig(config: Record<string, unknown>, where = 'AutoencoderKL'): AutoencoderKLConfig {
  const c = modelConfigReader(config, where, 'AutoencoderKL', AUTOENCODER_KL_KEYS);
  c.only('use_quant_conv', [true]);
  const latentChannels = c.int('latent_channels', 4, 1);
  const inChannels = c.int('in_channels', 3, 1);
  const outChannels = c.int('out_channels', 3, 1);
  const scaling = scalingFactor(c, 0.18215);
  return {
    where, latentChannels, inChannels, outChannels,
    scalingFactor: scaling,
    scaleFactor: 2 ** (c.intList('block_out_channels', [64]).length - 1),
    usePostQuantConv: c.bool('use_post_quant_conv', true),
    decoder: readVaeDecoderConfig(c),
    encoder: readVaeEncoderConfig(c),
  };
}
