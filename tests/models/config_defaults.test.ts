// The config readers resolve absent options to the defaults of diffusers v0.25.1's constructors
// (transformers' for CLIP), and per-block options to one entry per block. No GPU device.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { readAutoencoderTinyConfig } from '../../src/models/autoencoder_tiny_config.ts';
import { readClipTextConfig } from '../../src/models/clip_text_config.ts';
import { readUNet2DConfig } from '../../src/models/unet_2d_config.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { readVQModelConfig } from '../../src/models/vq_model_config.ts';

describe('config readers: diffusers defaults', () => {
  it('UNet2DModel', () => {
    const c = readUNet2DConfig({ _class_name: 'UNet2DModel' });
    expect(c).toMatchObject({
      where: 'UNet2DModel', inChannels: 3, outChannels: 3, act: 'silu', timeEmbeddingType: 'positional', numTrainTimesteps: null,
      flipSinToCos: true, freqShift: 0, classEmbedType: null, numClassEmbeds: null, timeEmbeddingNorm: 'default',
      downsampleType: 'conv', upsampleType: 'conv', channels: [224, 448, 672, 896], layersPerBlock: 2, skipPath: false,
      downTypes: ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'], upTypes: ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
      groups: 32, midGroups: 32, eps: 1e-5, attentionHeadDim: 8, midBlockScaleFactor: 1, downsamplePadding: 1, addAttention: true,
      // UNetMidBlock2D: attn_norm_num_groups None under the default time embedding norm is norm_num_groups.
      attnGroups: 32,
      timeEmbedDim: 4 * 224,
    });
  });

  it('UNet2DModel: attention_head_dim null is one head per block, "UNetRes" prefixes go, scale_shift drops the mid attention norm', () => {
    const c = readUNet2DConfig({ _class_name: 'UNet2DModel', attention_head_dim: null, block_out_channels: [32, 64], down_block_types: ['UNetResDownBlock2D', 'AttnDownBlock2D'], up_block_types: ['AttnUpBlock2D', 'UpBlock2D'], resnet_time_scale_shift: 'scale_shift' }, 'unet');
    expect(c).toMatchObject({ where: 'unet', attentionHeadDim: null, downTypes: ['DownBlock2D', 'AttnDownBlock2D'], attnGroups: null, timeEmbedDim: 128 });
  });

  it('UNet2DModel: NCSN++ norm_num_groups null takes min(C // 4, 32) groups', () => {
    const skip = { _class_name: 'UNet2DModel', norm_num_groups: null, block_out_channels: [32, 256], down_block_types: ['SkipDownBlock2D', 'SkipDownBlock2D'], up_block_types: ['SkipUpBlock2D', 'SkipUpBlock2D'] };
    expect(readUNet2DConfig(skip)).toMatchObject({ skipPath: true, groups: 8, midGroups: 32 });
  });

  it('UNet2DConditionModel: per-block lists from the scalar defaults', () => {
    const c = readUNet2DConditionConfig({ _class_name: 'UNet2DConditionModel' });
    expect(c).toMatchObject({
      inChannels: 4, outChannels: 4, sampleSize: 64, act: 'silu', midBlockType: 'UNetMidBlock2DCrossAttn', timeEmbeddingNorm: 'default',
      additionEmbedType: null, textTime: null, channels: [320, 640, 1280, 1280],
      downTypes: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
      upTypes: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
      crossAttentionDims: [1280, 1280, 1280, 1280], crossAttentionDim: 1280, layers: [2, 2, 2, 2], heads: [8, 8, 8, 8],
      transformerLayers: [1, 1, 1, 1], onlyCrossAttention: [false, false, false, false], linearProjection: false,
      convInKernel: 3, convOutKernel: 3, groups: 32, eps: 1e-5, timeCondProjDim: null, timeEmbedDim: 1280, embedAct: null, postAct: null,
      flipSinToCos: true, freqShift: 0, classEmbedType: null, numClassEmbeds: null, projectionInputDim: null,
    });
  });

  it("UNet2DConditionModel: Stable Diffusion 1.5's and 2.1's configs", () => {
    const sd = (name: string) => (JSON.parse(readFileSync(`bench/sd-configs/${name}.json`, 'utf8')) as { unet: Record<string, unknown> }).unet;
    expect(readUNet2DConditionConfig(sd('sd15'))).toMatchObject({ crossAttentionDim: 768, heads: [8, 8, 8, 8], layers: [2, 2, 2, 2], linearProjection: false });
    // SD 2.1: attention_head_dim is a per-block list (diffusers' head counts), use_linear_projection.
    expect(readUNet2DConditionConfig(sd('sd21'))).toMatchObject({ crossAttentionDim: 1024, heads: [5, 10, 20, 20], linearProjection: true });
  });

  it('UNet2DConditionModel: text_time and time_embedding_dim null', () => {
    const c = readUNet2DConditionConfig({ _class_name: 'UNet2DConditionModel', block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], addition_embed_type: 'text_time', addition_time_embed_dim: 8, projection_class_embeddings_input_dim: 60, time_embedding_dim: null, cross_attention_dim: [32, 32] });
    expect(c).toMatchObject({ additionEmbedType: 'text_time', textTime: { timeEmbedDim: 8, inputDim: 60 }, timeEmbedDim: 128, crossAttentionDims: [32, 32], crossAttentionDim: 32 });
  });

  it('AutoencoderKL', () => {
    const c = readAutoencoderKLConfig({ _class_name: 'AutoencoderKL' });
    const tower = { act: 'silu', channels: [64], layersPerBlock: 1, groups: 32, midBlockAddAttention: true };
    expect(c).toEqual({
      where: 'AutoencoderKL', latentChannels: 4, inChannels: 3, outChannels: 3, scalingFactor: 0.18215, scaleFactor: 1, usePostQuantConv: true,
      encoder: { ...tower, downTypes: ['DownEncoderBlock2D'] },
      decoder: { ...tower, upTypes: ['UpDecoderBlock2D'], normType: 'group' },
    });
    expect(readAutoencoderKLConfig({ _class_name: 'AutoencoderKL', block_out_channels: [128, 256, 512, 512], down_block_types: new Array(4).fill('DownEncoderBlock2D'), up_block_types: new Array(4).fill('UpDecoderBlock2D') }).scaleFactor).toBe(8);
  });

  it('VQModel: vq_embed_dim defaults to latent_channels; spatial norms take 32 groups', () => {
    expect(readVQModelConfig({ _class_name: 'VQModel' })).toMatchObject({ latentChannels: 3, embedDim: 3, outChannels: 3, numEmbeddings: 256, scalingFactor: 0.18215, decoder: { normType: 'group', groups: 32 } });
    expect(readVQModelConfig({ _class_name: 'VQModel', norm_type: 'spatial', norm_num_groups: 8, block_out_channels: [64] }).decoder).toMatchObject({ normType: 'spatial', groups: 32 });
  });

  it('AutoencoderTiny', () => {
    expect(readAutoencoderTinyConfig({ _class_name: 'AutoencoderTiny' })).toEqual({
      where: 'AutoencoderTiny', act: 'relu', latentChannels: 4, outChannels: 3, inChannels: 3, scalingFactor: 1,
      decoderChannels: 64, decoderBlocks: [3, 3, 3, 1], encoderChannels: 64, encoderBlocks: [1, 3, 3, 3],
    });
  });

  it("CLIPTextModel and CLIPTextModelWithProjection: transformers' defaults", () => {
    const base = { vocabSize: 49408, hiddenSize: 512, intermediateSize: 2048, layers: 12, heads: 8, maxPositions: 77, act: 'quick_gelu', eps: 1e-5, eosTokenId: 49407 };
    expect(readClipTextConfig({})).toEqual({ ...base, projectionDim: null });
    expect(readClipTextConfig({}, 'text_encoder_2', true)).toEqual({ ...base, projectionDim: 512 });
  });
});
