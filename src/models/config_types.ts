// The option values the model configs resolve to and the blocks are built with; no GPU code.
import type { Activation } from '../kernels/activation.ts';

/**
 * How class labels become an embedding (diffusers' class_embed_type): 'embedding' is nn.Embedding
 * (class_embed_type null with num_class_embeds set), 'timestep' sends the labels through the same
 * sinusoidal projection as the timesteps and then a TimestepEmbedding of its own, 'identity' adds
 * the labels, [B, time_embed_dim], as they are; 'projection' sends float class vectors
 * [B, projection_class_embeddings_input_dim] through a TimestepEmbedding (SiLU, whatever act_fn is:
 * diffusers builds it with its default), 'simple_projection' through one Linear.
 */
export type ClassEmbedType = 'embedding' | 'timestep' | 'identity' | 'projection' | 'simple_projection';

/**
 * UNet2DModel's time_embedding_type: what the timesteps (and 'timestep' class labels) go through
 * before TimestepEmbedding. 'positional' is the sinusoidal Timesteps projection (width projDim);
 * 'fourier' GaussianFourierProjection(projDim, scale 16, log) of ln t, [sin | cos] (width 2·projDim,
 * weight time_proj.weight; flip_sin_to_cos is not passed to it); 'learned' nn.Embedding(num_train_timesteps,
 * projDim) indexed by the timestep (time_proj.weight).
 */
export type TimeEmbeddingType = 'positional' | 'fourier' | 'learned';

/** resnet_time_scale_shift: how a ResnetBlock2D takes the time embedding ('spatial': SpatialNorms over the quantized latents). */
export type TimeEmbeddingNorm = 'default' | 'scale_shift' | 'spatial';

/**
 * How a block resamples: 'conv' is Downsample2D / Upsample2D with their 3x3 conv, 'resnet' a
 * ResnetBlock2D with down=True / up=True (AttnDownBlock2D / AttnUpBlock2D under the U-Net's
 * downsample_type / upsample_type 'resnet', and always in ResnetDownsampleBlock2D / ResnetUpsampleBlock2D).
 */
export type ResampleType = 'conv' | 'resnet';

/** What every model config carries. */
export interface NamedConfig {
  /** Names the model in errors (the folder, usually). */
  where: string;
}

/** What UNet2DModel's and UNet2DConditionModel's configs share. */
export interface UNetCommonConfig extends NamedConfig {
  inChannels: number;
  outChannels: number;
  sampleSize: number;
  centerInput: boolean;
  /** act_fn: the ResNets' activation (see each config for where else it applies). */
  act: Activation;
  timeEmbeddingNorm: TimeEmbeddingNorm;
  /** block_out_channels. */
  channels: number[];
  downTypes: string[];
  upTypes: string[];
  /** norm_num_groups of the blocks and conv_norm_out. */
  groups: number;
  eps: number;
  flipSinToCos: boolean;
  freqShift: number;
  midBlockScaleFactor: number;
  downsamplePadding: number;
  /** time_embed_dim. */
  timeEmbedDim: number;
}
