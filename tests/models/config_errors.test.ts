// Options we read but do not implement are errors naming the option; weights that do not fit
// the config are errors naming the key.
import { describe, expect, it } from 'vitest';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { readSafetensorsFile } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { UNet2DModel } from '../../src/models/unet_2d.ts';
import { runtime } from '../helpers/gpu.ts';

const unsupportedUnet: [string, unknown, RegExp][] = [
  ['act_fn', 'gelu', /act_fn = "gelu"/],
  ['time_embedding_type', 'fourier', /time_embedding_type = "fourier"/],
  ['class_embed_type', 'timestep', /class_embed_type = "timestep"/],
  ['resnet_time_scale_shift', 'scale_shift', /resnet_time_scale_shift = "scale_shift"/],
  ['downsample_type', 'resnet', /downsample_type = "resnet"/],
  ['upsample_type', 'resnet', /upsample_type = "resnet"/],
  ['center_input_sample', true, /center_input_sample = true/],
  ['down_block_types', ['DownBlock2D', 'SkipDownBlock2D'], /SkipDownBlock2D is not supported/],
  ['up_block_types', ['AttnSkipUpBlock2D', 'UpBlock2D'], /AttnSkipUpBlock2D is not supported/],
  // Block types of the VAE are not U-Net blocks.
  ['up_block_types', ['UpDecoderBlock2D', 'UpBlock2D'], /up block type UpDecoderBlock2D is not supported \(supported: UpBlock2D, AttnUpBlock2D\)/],
  // Values of the wrong type are named, never coerced.
  ['layers_per_block', '1', /layers_per_block = "1" is not an integer/],
  ['flip_sin_to_cos', 'false', /flip_sin_to_cos = "false" is not true or false/],
  ['block_out_channels', 32, /block_out_channels = 32 is not a non-empty list/],
  ['attention_head_dim', 'auto', /attention_head_dim = "auto" is not a positive integer or null/],
  ['norm_num_groups', null, /norm_num_groups = null is not supported/],
  ['sample_size', [8, 16], /sample_size = \[8,16\] \(non-square\) is not supported/],
  // Keys UNet2DModel does not have are not silently ignored.
  ['cross_attention_dim', 768, /cross_attention_dim is not supported/],
];

describe('UNet2DModel config and weight errors', () => {
  for (const [key, value, message] of unsupportedUnet) {
    it(`${key} = ${JSON.stringify(value)} is rejected by name`, async () => {
      const rt = await runtime();
      const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
      expect(() => new UNet2DModel(rt, folder.weights, { ...folder.config, [key]: value })).toThrow(message);
    });
  }

  it('a missing weight names its key', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    const raw = await readSafetensorsFile('tests/fixtures/unet2d-classcond/diffusion_pytorch_model.safetensors');
    raw.delete('mid_block.attentions.0.to_k.weight');
    expect(() => new UNet2DModel(rt, new WeightStore(raw, 'unet'), folder.config)).toThrow(/mid_block\.attentions\.0\.to_k\.weight/);
  });

  it('a config that does not match the weights names the misshapen key', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    expect(() => new UNet2DModel(rt, folder.weights, { ...folder.config, block_out_channels: [32, 48] })).toThrow(/down_blocks\.1\.resnets\.0\.\S+ .*\[48/);
  });

  it('an unused weight is an error listing it', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    // Without class embeddings the class_embedding table is left over.
    expect(() => new UNet2DModel(rt, folder.weights, { ...folder.config, num_class_embeds: null })).toThrow(/class_embedding\.weight/);
  });
});

describe('AutoencoderKL config errors', () => {
  it('rejects options newer diffusers added that change decoding', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/vae-kl-decode');
    expect(() => new AutoencoderKL(rt, folder.weights, { ...folder.config, shift_factor: 0.1159 })).toThrow(/shift_factor is not supported/);
    expect(() => new AutoencoderKL(rt, folder.weights, { ...folder.config, use_quant_conv: false })).toThrow(/use_quant_conv = false is not supported/);
  });

  it('rejects an unknown up block type by name', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/vae-kl-decode');
    expect(() => new AutoencoderKL(rt, folder.weights, { ...folder.config, up_block_types: ['UpDecoderBlock2D', 'AttnUpDecoderBlock2D'] })).toThrow(/AttnUpDecoderBlock2D is not supported/);
  });
});
