// VQModel's config.json read and checked (diffusers v0.25.1 defaults). No GPU code.
import { modelConfigReader, scalingFactor } from './config.ts';
import type { NamedConfig } from './config_types.ts';
import { readVaeDecoderConfig, type VaeDecoderConfig } from './vae_config.ts';
import { ConfigError } from '../errors.ts';

/** VQModel's constructor arguments in diffusers 0.25. */
const VQ_MODEL_KEYS = [
  'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'act_fn', 'latent_channels', 'sample_size', 'num_vq_embeddings', 'norm_num_groups', 'vq_embed_dim',
  'scaling_factor', 'norm_type', 'mid_block_add_attention', 'lookup_from_codebook', 'force_upcast',
];

export interface VQModelConfig extends NamedConfig {
  latentChannels: number;
  /** vq_embed_dim: the codebook's vector size, the channels decode() takes. */
  embedDim: number;
  outChannels: number;
  numEmbeddings: number;
  scalingFactor: number;
  /** decoder.normType 'spatial' (MoVQ) conditions every decoder norm on the quantized latents. */
  decoder: VaeDecoderConfig;
}

/** Reads and checks a VQModel config.json. */
export function readVQModelConfig(config: Record<string, unknown>, where = 'VQModel'): VQModelConfig {
  const c = modelConfigReader(config, where, 'VQModel', VQ_MODEL_KEYS);
  c.only('norm_type', ['group', 'spatial']);
  const spatial = c.raw('norm_type') === 'spatial';
  c.only('lookup_from_codebook', [false]);
  c.bool('force_upcast', false);
  const latentChannels = c.int('latent_channels', 3, 1);
  const embedDim = c.int('vq_embed_dim', latentChannels, 1);
  const outChannels = c.int('out_channels', 3, 1);
  const numEmbeddings = c.int('num_vq_embeddings', 256, 1);
  // diffusers sizes the SpatialNorms' 1x1 convs for latent_channels inputs but feeds them the
  // vq_embed_dim quantized latents: the two must agree (diffusers itself fails otherwise).
  if (spatial && embedDim !== latentChannels) throw new ConfigError(`${where}: norm_type 'spatial' needs vq_embed_dim (${embedDim}) = latent_channels (${latentChannels}): the decoder's SpatialNorms take the quantized latents`);
  return {
    where, latentChannels, embedDim, outChannels, numEmbeddings,
    scalingFactor: scalingFactor(c, 0.18215),
    decoder: readVaeDecoderConfig(c, spatial ? 'spatial' : 'group'),
  };
}
