// Stable Diffusion XL base's U-Net config, as stabilityai/stable-diffusion-xl-base-1.0 ships it
// (unet/config.json), is accepted as it is and runs, narrowed to fit a CPU adapter: every width
// divided by 8 (so 8-wide heads) and the norm groups to 8; the per-level head counts, transformer
// layers [1, 2, 10], linear projections and the 'text_time' add embedding with its six time ids are
// kept. Weights are random: the numbers are checked by tests/fixtures/variants/unet-cond-sdxl*.
import { describe, expect, it } from 'vitest';
import { RandomWeightStore } from '../../src/io/random_weights.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { input, runGraph, runtime } from '../helpers/gpu.ts';

const SDXL_BASE_UNET: Record<string, unknown> = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: '0.19.0.dev0',
  act_fn: 'silu',
  addition_embed_type: 'text_time',
  addition_embed_type_num_heads: 64,
  addition_time_embed_dim: 256,
  attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280],
  center_input_sample: false,
  class_embed_type: null,
  class_embeddings_concat: false,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  cross_attention_dim: 2048,
  cross_attention_norm: null,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  downsample_padding: 1,
  dual_cross_attention: false,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_only_cross_attention: null,
  mid_block_scale_factor: 1,
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  norm_eps: 1e-5,
  norm_num_groups: 32,
  num_attention_heads: null,
  num_class_embeds: null,
  only_cross_attention: false,
  out_channels: 4,
  projection_class_embeddings_input_dim: 2816,
  resnet_out_scale_factor: 1.0,
  resnet_skip_time_act: false,
  resnet_time_scale_shift: 'default',
  sample_size: 128,
  time_cond_proj_dim: null,
  time_embedding_act_fn: null,
  time_embedding_dim: null,
  time_embedding_type: 'positional',
  timestep_post_act: null,
  transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  upcast_attention: null,
  use_linear_projection: true,
};

describe('Stable Diffusion XL base U-Net layout (widths / 8, random weights)', () => {
  it('builds from its real config and runs with text_embeds and six time ids to a finite output', async () => {
    const rt = await runtime();
    const d = 8;
    const config = {
      ...SDXL_BASE_UNET,
      block_out_channels: (SDXL_BASE_UNET.block_out_channels as number[]).map((c) => c / d),
      cross_attention_dim: 2048 / d,
      addition_time_embed_dim: 256 / d,
      // The pooled text embedding (1280 in SDXL) and six time ids of addition_time_embed_dim each.
      projection_class_embeddings_input_dim: 1280 / d + 6 * (256 / d),
      norm_num_groups: 8,
    };
    const unet = buildModel(UNet2DConditionModel, rt, new RandomWeightStore(3), readUNet2DConditionConfig(config, 'sdxl-base'));
    try {
      expect(unet.additionEmbedType).toBe('text_time');
      expect(unet.crossAttentionDim).toBe(256);
      const B = 2;
      const rnd = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.8);
      const out = await runGraph(rt, (g) =>
        unet.forward(
          g,
          input(rt, rnd(B * 4 * 8 * 8, 1), [B, 4, 8, 8], 'sample', 'f32'),
          {
            timesteps: input(rt, [999, 999], [B], 'timesteps', 'f32'),
            broadcast: false,
            textEmbeds: input(rt, rnd(B * 160, 2), [B, 160], 'text_embeds', 'f32'),
            // (original height, width, crop top, left, target height, width), as the SDXL pipeline gives them.
            timeIds: input(rt, [1024, 1024, 0, 0, 1024, 1024, 768, 1344, 0, 0, 1024, 1024], [B, 6], 'time_ids', 'f32'),
          },
          input(rt, rnd(B * 7 * 256, 3), [B, 7, 256], 'encoder_hidden_states', 'f32'),
        ),
      );
      expect(out.length).toBe(B * 4 * 8 * 8);
      expect(out.every(Number.isFinite)).toBe(true);
      // The two samples differ in sample, text and time ids: their outputs must too.
      const half = out.length / 2;
      expect(out.slice(0, half).some((v, i) => v !== out[half + i])).toBe(true);
    } finally {
      unet.destroy();
    }
  });
});
