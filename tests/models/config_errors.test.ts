// Options we read but do not implement are errors naming the option, raised by the config readers
// without a GPU device; weights that do not fit the config are errors naming the key, raised while building.
import { describe, expect, it } from 'vitest';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { RandomWeightStore } from '../../src/io/random_weights.ts';
import { readSafetensorsFile } from '../../src/io/safetensors.ts';
import { WeightStore } from '../../src/io/weights.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { AutoencoderTiny } from '../../src/models/autoencoder_tiny.ts';
import { readAutoencoderTinyConfig } from '../../src/models/autoencoder_tiny_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { UNet2DModel } from '../../src/models/unet_2d.ts';
import { readUNet2DConfig } from '../../src/models/unet_2d_config.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { VQModel } from '../../src/models/vq_model.ts';
import { readVQModelConfig } from '../../src/models/vq_model_config.ts';
import { createScheduler } from '../../src/schedulers/scheduler.ts';
import { Graph } from '../../src/graph/graph.ts';
import { runtime } from '../helpers/gpu.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { ConfigError, SchedulerConfigError } from '../../src/errors.ts';

/**
 * Runs `body` with a scratch graph and a zero-filled input maker, then frees them and `models`
 * (forward calls here only need to reach their shape checks).
 */
function withScratch(rt: Runtime, label: string, models: { destroy(): void }[], body: (g: Graph, t: (shape: number[], label: string) => Tensor) => void): void {
  const g = new Graph(rt, label);
  const buffers: GPUBuffer[] = [];
  const t = (shape: number[], name: string): Tensor => {
    const x = { buffer: rt.upload(new Float32Array(shape.reduce((a, b) => a * b, 1)), name), shape, label: name };
    buffers.push(x.buffer);
    return x;
  };
  try {
    body(g, t);
  } finally {
    g.destroy();
    for (const m of models) m.destroy();
    for (const b of buffers) rt.destroyBuffer(b);
  }
}

const unsupportedUnet: [string, unknown, RegExp][] = [
  // silu/swish, mish, gelu and relu are built (tests/fixtures/variants/*-act-*); diffusers' get_activation has no other.
  ['act_fn', 'tanh', /act_fn = "tanh" is not supported \(supported: "silu", "swish", "mish", "gelu", "relu"\)/],
  // 'positional', 'fourier' and 'learned' are built (tests/fixtures/variants/unet2d-fourier*, unet2d-learned-time);
  // diffusers crashes on any other value.
  ['time_embedding_type', 'sinusoidal', /time_embedding_type = "sinusoidal"/],
  // An nn.Embedding of num_train_timesteps rows needs that number.
  ['time_embedding_type', 'learned', /time_embedding_type 'learned' requires num_train_timesteps/],
  // 'timestep' and 'identity' are built (tests/fixtures/variants/unet2d-class-*); diffusers' UNet2DModel
  // silently drops any other value, Fresco refuses it.
  ['class_embed_type', 'projection', /class_embed_type = "projection"/],
  // scale_shift is built (tests/models/resnet_scale_shift.test.ts); the norm-replacing variants are not.
  ['resnet_time_scale_shift', 'ada_group', /resnet_time_scale_shift = "ada_group"/],
  // 'conv' and 'resnet' are built (tests/fixtures/variants/unet2d-resnet-*); diffusers' AttnDownBlock2D /
  // AttnUpBlock2D silently build no resampler for any other value, which Fresco refuses.
  ['downsample_type', 'fir', /downsample_type = "fir"/],
  ['upsample_type', 'fir', /upsample_type = "fir"/],
  // NCSN++'s skip blocks are built (tests/fixtures/variants/unet2d-ncsnpp*), where diffusers can run them: their
  // skip_conv takes and makes 3-channel images, and this fixture has 4 channels (see also 'NCSN++ skip blocks' below).
  ['down_block_types', ['SkipDownBlock2D', 'AttnDownBlock2D'], /SkipDownBlock2D's skip_conv takes 3-channel samples, in_channels is 4/],
  ['up_block_types', ['AttnSkipUpBlock2D', 'UpBlock2D'], /AttnSkipUpBlock2D's skip_conv makes a 3-channel skip for the output, out_channels is 4/],
  // Block types of the VAE are not U-Net blocks.
  ['up_block_types', ['UpDecoderBlock2D', 'UpBlock2D'], /up block type UpDecoderBlock2D is not supported \(supported: UpBlock2D, AttnUpBlock2D, ResnetUpsampleBlock2D, SkipUpBlock2D, AttnSkipUpBlock2D\)/],
  // Values of the wrong type are named, never coerced.
  ['layers_per_block', '1', /layers_per_block = "1" is not an integer/],
  ['flip_sin_to_cos', 'false', /flip_sin_to_cos = "false" is not true or false/],
  ['block_out_channels', 32, /block_out_channels = 32 is not a non-empty list/],
  ['attention_head_dim', 'auto', /attention_head_dim = "auto" is not a positive integer or null/],
  // null (NCSN++'s configs) builds only the skip blocks, which compute their own group counts, as in diffusers.
  ['norm_num_groups', null, /norm_num_groups = null is not supported with DownBlock2D/],
  ['sample_size', [8, 16], /sample_size = \[8,16\] \(non-square\) is not supported/],
  // Keys UNet2DModel does not have are not silently ignored.
  ['cross_attention_dim', 768, /cross_attention_dim is not supported/],
];

describe('UNet2DModel config and weight errors', () => {
  for (const [key, value, message] of unsupportedUnet) {
    it(`${key} = ${JSON.stringify(value)} is rejected by name`, async () => {
      const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
      expect(() => readUNet2DConfig({ ...folder.config, [key]: value })).toThrow(message);
    });
  }

  it('a missing weight names its key', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    const raw = await readSafetensorsFile('tests/fixtures/unet2d-classcond/diffusion_pytorch_model.safetensors');
    raw.delete('mid_block.attentions.0.to_k.weight');
    expect(() => buildModel(UNet2DModel, rt, new WeightStore(raw, 'unet'), readUNet2DConfig(folder.config))).toThrow(/mid_block\.attentions\.0\.to_k\.weight/);
  });

  it('a config that does not match the weights names the misshapen key', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    expect(() => buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig({ ...folder.config, block_out_channels: [32, 48] }))).toThrow(/down_blocks\.1\.resnets\.0\.\S+ .*\[48/);
  });

  it('an unused weight is an error listing it', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    // Without class embeddings the class_embedding table is left over.
    expect(() => buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig({ ...folder.config, num_class_embeds: null }))).toThrow(/class_embedding\.weight/);
  });
});

describe('UNet2DModel with NCSN++ skip blocks', () => {
  // The skip path as diffusers v0.25.1 can run it; each row breaks it one way (diffusers fails on each:
  // a shape mismatch in forward, or GroupNorm refusing its groups in __init__). Random weights: only the config matters.
  const base = {
    _class_name: 'UNet2DModel', in_channels: 3, out_channels: 3, block_out_channels: [32, 32, 32], layers_per_block: 1,
    norm_num_groups: null, attention_head_dim: null, time_embedding_type: 'fourier',
    down_block_types: ['SkipDownBlock2D', 'AttnSkipDownBlock2D', 'SkipDownBlock2D'], up_block_types: ['SkipUpBlock2D', 'AttnSkipUpBlock2D', 'SkipUpBlock2D'],
  };
  const configRows: [string, Record<string, unknown>, RegExp][] = [
    ['a skip down block after one that downsampled', { norm_num_groups: 8, down_block_types: ['DownBlock2D', 'SkipDownBlock2D', 'SkipDownBlock2D'] }, /down block 1 \(SkipDownBlock2D\) gets the skip sample at full size after DownBlock2D/],
    ['an up block that does not upsample the skip', { norm_num_groups: 8, up_block_types: ['SkipUpBlock2D', 'UpBlock2D', 'SkipUpBlock2D'] }, /up block 1 \(UpBlock2D\) does not upsample the skip that up block 0 \(SkipUpBlock2D\) made/],
    ['norm_num_groups null beside another block type', { down_block_types: ['SkipDownBlock2D', 'SkipDownBlock2D', 'DownBlock2D'] }, /norm_num_groups = null is not supported with DownBlock2D/],
  ];
  // The group counts the skip blocks compute from their own channels are checked where each block is built.
  const buildRows: [string, Record<string, unknown>, RegExp][] = [
    ['a skip attention whose 32-group norm cannot split its channels', { block_out_channels: [16, 16, 16] }, /down_blocks\.1\.attentions\.0: the skip blocks' attention norm takes 32 groups, and 16 channels/],
    // AttnSkipUpBlock2D's min(in + skip // 4, 32): 32 groups for 32 + 16 channels.
    ['AttnSkipUpBlock2D groups that do not split the concatenated channels', { block_out_channels: [16, 32, 32] }, /up_blocks\.1\.resnets\.1: 48 channels do not split into 32 groups/],
  ];

  it('the base config builds', async () => {
    const rt = await runtime();
    buildModel(UNet2DModel, rt, new RandomWeightStore(1), readUNet2DConfig(base)).destroy();
  });
  for (const [what, change, message] of configRows) {
    it(`refuses ${what}`, () => {
      expect(() => readUNet2DConfig({ ...base, ...change })).toThrow(message);
    });
  }
  for (const [what, change, message] of buildRows) {
    it(`refuses ${what}`, async () => {
      const rt = await runtime();
      const config = readUNet2DConfig({ ...base, ...change });
      expect(() => buildModel(UNet2DModel, rt, new RandomWeightStore(1), config).destroy()).toThrow(message);
    });
  }

  it('a final SkipUpBlock2D without a skip to carry builds on UpBlock2D weights (diffusers adds 0)', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-classcond');
    buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig({ ...folder.config, up_block_types: ['AttnUpBlock2D', 'SkipUpBlock2D'] })).destroy();
  });
});

describe('UNet2DConditionModel class conditioning', () => {
  it('names the class embedding weights a class-conditional config needs', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-cond');
    expect(() => buildModel(UNet2DConditionModel, rt, folder.weights, readUNet2DConditionConfig({ ...folder.config, num_class_embeds: 10 }))).toThrow(/class_embedding\.weight/);
    const again = await loadModelFolder('tests/fixtures/unet2d-cond');
    expect(() => buildModel(UNet2DConditionModel, rt, again.weights, readUNet2DConditionConfig({ ...again.config, class_embed_type: 'timestep' }))).toThrow(/class_embedding\.linear_1\.weight/);
  });

  it('asks for class labels where the config is class-conditional, and refuses them where it is not', async () => {
    const rt = await runtime();
    const dims = (m: UNet2DConditionModel) => ({ sample: [1, m.inChannels, 8, 8], context: [1, 3, m.crossAttentionDim] });
    const tensor = (shape: number[], label: string) => ({ buffer: rt.upload(new Float32Array(shape.reduce((a, b) => a * b, 1)), label), shape, label });
    // 'identity' has no weights of its own, so the plain fixture builds with it.
    const folder = await loadModelFolder('tests/fixtures/unet2d-cond');
    const identity = buildModel(UNet2DConditionModel, rt, folder.weights, readUNet2DConditionConfig({ ...folder.config, class_embed_type: 'identity' }));
    const plainFolder = await loadModelFolder('tests/fixtures/unet2d-cond');
    const plain = buildModel(UNet2DConditionModel, rt, plainFolder.weights, readUNet2DConditionConfig(plainFolder.config));
    const g = new Graph(rt, 'class-labels');
    const buffers: GPUBuffer[] = [];
    const t = (shape: number[], label: string) => {
      const x = tensor(shape, label);
      buffers.push(x.buffer);
      return x;
    };
    try {
      expect(identity.classEmbedType).toBe('identity');
      expect(identity.numClasses).toBeNull();
      const d = dims(identity);
      const timesteps = t([1], 'timesteps');
      expect(() => identity.forward(g, t(d.sample, 'sample'), { timesteps, broadcast: false }, t(d.context, 'context'))).toThrow(/class_embed_type is 'identity'\): class labels are required/);
      // 'identity' labels are [B, time_embed_dim] rows (128 for block_out_channels[0] = 32).
      expect(() => identity.uploadClassLabels(rt, [1, 2], 1)).toThrow(/\[1, 128\]/);
      expect(() => identity.forward(g, t(d.sample, 'sample'), { timesteps, broadcast: false, classLabels: t([1, 64], 'labels') }, t(d.context, 'context'))).toThrow(ConfigError);
      expect(plain.classEmbedType).toBeNull();
      expect(() => plain.forward(g, t(d.sample, 'sample'), { timesteps, broadcast: false, classLabels: t([1], 'labels') }, t(d.context, 'context'))).toThrow(/no class embedding/);
      expect(() => plain.uploadClassLabels(rt, [0], 1)).toThrow(/no class embedding/);
    } finally {
      g.destroy();
      identity.destroy();
      plain.destroy();
      for (const b of buffers) rt.destroyBuffer(b);
    }
  });
});

describe('UNet2DConditionModel mid block, only_cross_attention and time_cond_proj_dim', () => {
  it('names the weights each mid_block_type and time_cond_proj_dim needs or leaves over', async () => {
    const rt = await runtime();
    const load = () => loadModelFolder('tests/fixtures/unet2d-cond');
    // UNetMidBlock2D is one resnet: the fixture's mid attention and second resnet are left over.
    let f = await load();
    expect(() => buildModel(UNet2DConditionModel, rt, f.weights, readUNet2DConditionConfig({ ...f.config, mid_block_type: 'UNetMidBlock2D' }))).toThrow(/mid_block\.attentions\.0\./);
    f = await load();
    expect(() => buildModel(UNet2DConditionModel, rt, f.weights, readUNet2DConditionConfig({ ...f.config, mid_block_type: null }))).toThrow(/weights were never used: mid_block\./);
    f = await load();
    expect(() => buildModel(UNet2DConditionModel, rt, f.weights, readUNet2DConditionConfig({ ...f.config, time_cond_proj_dim: 8 }))).toThrow(/time_embedding\.cond_proj\.weight/);
    // attn1 of an only_cross_attention block reads [dim, cross_attention_dim] keys: a 48-wide context does not fit the fixture's.
    f = await load();
    expect(() => buildModel(UNet2DConditionModel, rt, f.weights, readUNet2DConditionConfig({ ...f.config, only_cross_attention: true, cross_attention_dim: 48 }))).toThrow(/attn1\.to_k\.weight/);
  });

  it('refuses a timestep_cond for a model without cond_proj, and one of the wrong shape', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder('tests/fixtures/unet2d-cond');
    const plain = buildModel(UNet2DConditionModel, rt, folder.weights, readUNet2DConditionConfig(folder.config));
    const lcmFolder = await loadModelFolder('tests/fixtures/variants/unet-cond-lcm');
    const lcm = buildModel(UNet2DConditionModel, rt, lcmFolder.weights, readUNet2DConditionConfig(lcmFolder.config));
    withScratch(rt, 'timestep-cond', [plain, lcm], (g, t) => {
      const run = (m: UNet2DConditionModel, cond: number[]) => m.forward(g, t([1, m.inChannels, 8, 8], 'sample'), { timesteps: t([1], 'timesteps'), broadcast: false, timestepCond: t(cond, 'cond') }, t([1, 3, m.crossAttentionDim], 'context'));
      expect(() => run(plain, [1, 4])).toThrow(/timestep_cond was given, but this model has no time_embedding\.cond_proj/);
      // unet-cond-lcm has time_cond_proj_dim 5.
      expect(() => run(lcm, [1, 4])).toThrow(/timestep_cond \[1, 4\] should be \[1, 5\]/);
    });
  });
});

describe('UNet2DConditionModel addition_embed_type text_time and per-block cross_attention_dim', () => {
  it('names the add_embedding weights a text_time config needs', async () => {
    const rt = await runtime();
    const f = await loadModelFolder('tests/fixtures/unet2d-cond');
    expect(() => buildModel(UNet2DConditionModel, rt, f.weights, readUNet2DConditionConfig({ ...f.config, addition_embed_type: 'text_time', addition_time_embed_dim: 8, projection_class_embeddings_input_dim: 60 }))).toThrow(/add_embedding\.linear_1\.weight/);
  });

  it('builds a per-block list whose cross-attention blocks agree', async () => {
    const rt = await runtime();
    const f = await loadModelFolder('tests/fixtures/unet2d-cond');
    // The fixture's DownBlock2D level (entry 1) has no cross-attention; its mid block and CrossAttn blocks use entries 1 and 0.
    const m = buildModel(UNet2DConditionModel, rt, f.weights, readUNet2DConditionConfig({ ...f.config, cross_attention_dim: [32, 32] }));
    expect(m.crossAttentionDim).toBe(32);
    expect(m.additionEmbedType).toBeNull();
    m.destroy();
  });

  it('requires text_embeds and time_ids for text_time, checks their widths, and refuses them elsewhere', async () => {
    const rt = await runtime();
    const plainFolder = await loadModelFolder('tests/fixtures/unet2d-cond');
    const plain = buildModel(UNet2DConditionModel, rt, plainFolder.weights, readUNet2DConditionConfig(plainFolder.config));
    // unet-cond-sdxl-class: addition_time_embed_dim 7, projection_class_embeddings_input_dim 45 (10 + 5·7), a 'timestep' class embedding.
    const sdxlFolder = await loadModelFolder('tests/fixtures/variants/unet-cond-sdxl-class');
    const sdxl = buildModel(UNet2DConditionModel, rt, sdxlFolder.weights, readUNet2DConditionConfig(sdxlFolder.config));
    withScratch(rt, 'text-time', [plain, sdxl], (g, t) => {
      expect(sdxl.additionEmbedType).toBe('text_time');
      const run = (m: UNet2DConditionModel, extra: { textEmbeds?: number[]; timeIds?: number[] }, B = 1) =>
        m.forward(
          g,
          t([B, m.inChannels, 8, 8], 'sample'),
          {
            timesteps: t([B], 'timesteps'),
            broadcast: false,
            classLabels: m.classEmbedType ? t([B], 'labels') : undefined,
            textEmbeds: extra.textEmbeds && t(extra.textEmbeds, 'text_embeds'),
            timeIds: extra.timeIds && t(extra.timeIds, 'time_ids'),
          },
          t([B, 3, m.crossAttentionDim], 'context'),
        );
      expect(() => run(sdxl, {})).toThrow(ConfigError);
      expect(() => run(sdxl, {})).toThrow(/addition_embed_type 'text_time' \(SDXL\): text_embeds and time_ids are required/);
      expect(() => run(sdxl, { textEmbeds: [1, 10] })).toThrow(/time_ids is required/);
      expect(() => run(sdxl, { timeIds: [1, 5] })).toThrow(/text_embeds is required/);
      expect(() => run(sdxl, { textEmbeds: [1, 10], timeIds: [1, 6] })).toThrow(/give 10 \+ 6·7 = 52 features, but add_embedding takes 45/);
      expect(() => run(sdxl, { textEmbeds: [2, 10], timeIds: [2, 5] })).toThrow(/text_embeds \[2, 10\] should be \[1, P\]/);
      expect(() => run(sdxl, { textEmbeds: [1, 10], timeIds: [5] })).toThrow(/time_ids \[5\] should be \[1, N\]/);
      expect(() => run(plain, { textEmbeds: [1, 10], timeIds: [1, 5] })).toThrow(/text_embeds was given, but this model has no add_embedding \(addition_embed_type is null\)/);
      expect(() => run(plain, { timeIds: [1, 5] })).toThrow(/time_ids was given/);
    });
  });
});

describe('AutoencoderKL config errors', () => {
  it('rejects options newer diffusers added that change decoding', async () => {
    const folder = await loadModelFolder('tests/fixtures/vae-kl-decode');
    expect(() => readAutoencoderKLConfig({ ...folder.config, shift_factor: 0.1159 })).toThrow(/shift_factor is not supported/);
    expect(() => readAutoencoderKLConfig({ ...folder.config, use_quant_conv: false })).toThrow(/use_quant_conv = false is not supported/);
  });

  it('rejects an unknown up block type by name', async () => {
    const folder = await loadModelFolder('tests/fixtures/vae-kl-decode');
    expect(() => readAutoencoderKLConfig({ ...folder.config, up_block_types: ['UpDecoderBlock2D', 'KUpBlock2D'] })).toThrow(/KUpBlock2D is not supported/);
  });
});

// Every model class Fresco builds and the scheduler classes: options that are valid diffusers 0.25
// but not implemented here. Each must fail with the model's error class and a message naming the
// option (the key, and the value where one was given).
type Row = [key: string, value: unknown, message?: RegExp];

interface ModelTable {
  cls: string;
  fixture: string;
  /** The class's config reader. */
  read(config: Record<string, unknown>): unknown;
  build(rt: Runtime, store: WeightStore, config: Record<string, unknown>): { destroy(): void };
  rows: Row[];
}

const modelTables: ModelTable[] = [
  {
    cls: 'UNet2DModel',
    fixture: 'unet2d-classcond',
    read: (c) => readUNet2DConfig(c),
    build: (rt, s, c) => buildModel(UNet2DModel, rt, s, readUNet2DConfig(c)),
    rows: [
      // 'fourier' and 'learned' are built (tests/fixtures/variants/unet2d-fourier*, unet2d-learned-time); 'learned' needs its table size.
      ['time_embedding_type', 'learned', /time_embedding_type 'learned' requires num_train_timesteps/],
      // nn.Embedding, 'timestep' and 'identity' are built (tests/fixtures/variants/unet2d-odd, unet2d-class-*).
      ['class_embed_type', 'simple_projection'],
      ['resnet_time_scale_shift', 'ada_group'],
      ['resnet_time_scale_shift', 'spatial'],
      // downsample_type / upsample_type 'resnet' and ResnetDownsampleBlock2D / ResnetUpsampleBlock2D are built
      // (tests/fixtures/variants/unet2d-resnet-*), NCSN++'s skip blocks too (unet2d-ncsnpp*), but their skip_conv
      // takes and makes 3-channel images (this fixture has 4), as in diffusers.
      ['act_fn', 'tanh'],
      ['down_block_types', ['AttnSkipDownBlock2D', 'AttnDownBlock2D'], /AttnSkipDownBlock2D's skip_conv takes 3-channel samples, in_channels is 4/],
      ['up_block_types', ['SkipUpBlock2D', 'UpBlock2D'], /SkipUpBlock2D's skip_conv makes a 3-channel skip for the output, out_channels is 4/],
      ['norm_num_groups', null],
      ['encoder_hid_dim', 768, /encoder_hid_dim is not supported/],
    ],
  },
  {
    cls: 'UNet2DConditionModel',
    fixture: 'unet2d-cond',
    read: (c) => readUNet2DConditionConfig(c),
    build: (rt, s, c) => buildModel(UNet2DConditionModel, rt, s, readUNet2DConditionConfig(c)),
    rows: [
      // nn.Embedding (num_class_embeds), 'timestep' and 'identity' are built (tests/fixtures/variants/unet-cond-class-*),
      // 'projection' and 'simple_projection' too (unet-cond-time-proj, unet-cond-time-simple-proj), but need
      // projection_class_embeddings_input_dim, as in diffusers.
      ['class_embed_type', 'projection', /class_embed_type 'projection' requires projection_class_embeddings_input_dim/],
      ['class_embed_type', 'simple_projection', /class_embed_type 'simple_projection' requires projection_class_embeddings_input_dim/],
      ['class_embed_type', 'learned'],
      ['projection_class_embeddings_input_dim', 0, /projection_class_embeddings_input_dim/],
      // 'text_time' (SDXL) is built (tests/fixtures/variants/unet-cond-sdxl*), given its two widths, as
      // diffusers needs them; the other addition embeddings (Kandinsky, hints) are not.
      ['addition_embed_type', 'text_time', /addition_embed_type 'text_time' requires addition_time_embed_dim and projection_class_embeddings_input_dim/],
      ['addition_embed_type', 'text'],
      ['addition_embed_type', 'text_image'],
      ['addition_embed_type', 'image'],
      ['addition_embed_type', 'image_hint'],
      ['addition_embed_type', 'text_time_v2', /addition_embed_type = "text_time_v2" is not supported \(supported: "text_time"\)/],
      // Only 'text_time' reads addition_time_embed_dim (any other config ignores it, as diffusers does); it must be a width.
      ['addition_time_embed_dim', 0, /addition_time_embed_dim = 0 is not an integer >= 1/],
      ['time_embedding_type', 'fourier'],
      // time_embedding_act_fn, timestep_post_act and time_embedding_dim are built
      // (tests/fixtures/variants/unet-cond-time-*); they take get_activation's names only.
      ['time_embedding_act_fn', 'tanh'],
      ['timestep_post_act', 'tanh'],
      // time_cond_proj_dim, only_cross_attention (bool or per block), mid_block_type 'UNetMidBlock2D' and
      // null are built (tests/fixtures/variants/unet-cond-lcm, -only-cross, -mid-resnet, -no-mid);
      // mid_block_only_cross_attention only reaches UNetMidBlock2DSimpleCrossAttn, which is not.
      ['only_cross_attention', [true, false, true], /only_cross_attention has 3 entries for 2 down blocks/],
      ['only_cross_attention', 'yes', /only_cross_attention = "yes" is not true, false or a list of them/],
      ['mid_block_only_cross_attention', 1, /mid_block_only_cross_attention = 1 is not true, false or null/],
      ['time_cond_proj_dim', 0, /time_cond_proj_dim/],
      ['dual_cross_attention', true],
      ['mid_block_type', 'UNetMidBlock2DSimpleCrossAttn'],
      ['mid_block_type', 'UNetMidBlock2DCrossAttnSimple', /mid_block_type = "UNetMidBlock2DCrossAttnSimple"/],
      ['resnet_time_scale_shift', 'ada_group'],
      ['resnet_time_scale_shift', 'spatial'],
      // resnet_skip_time_act and resnet_out_scale_factor are accepted: in v0.25.1 they only reach the
      // Resnet*/SimpleCrossAttn block types (not built), so they have no effect (unet-cond-time-proj sets both).
      ['resnet_skip_time_act', 'yes', /resnet_skip_time_act = "yes" is not true or false/],
      ['resnet_out_scale_factor', 'big', /resnet_out_scale_factor/],
      ['attention_type', 'gated'],
      ['class_embeddings_concat', true],
      ['encoder_hid_dim', 768],
      ['encoder_hid_dim_type', 'text_proj'],
      ['cross_attention_norm', 'group_norm'],
      ['num_attention_heads', 8],
      ['reverse_transformer_layers_per_block', [[1, 1], [1, 1]]],
      // Per-block lists of ints are built (tests/fixtures/variants/unet-cond-layer-lists); per-layer
      // lists need reverse_transformer_layers_per_block, and a list must have one entry per block.
      ['transformer_layers_per_block', [[1, 2], [1, 1]], /transformer_layers_per_block = \[\[1,2\],\[1,1\]\] with per-layer lists is not supported/],
      ['transformer_layers_per_block', [1, 2, 3], /transformer_layers_per_block has 3 entries for 2 down blocks/],
      // Per-block cross_attention_dim lists are built (tests/fixtures/variants/unet-cond-cross-dim-list), one entry per
      // block; one encoder_hidden_states feeds every cross-attention block, so theirs must agree (here the
      // mid block's 48, the last entry, against the first level's 32).
      ['cross_attention_dim', [32, 48], /cross_attention_dim = \[32,48\] gives the cross-attention blocks different widths \(32, 48\)/],
      ['cross_attention_dim', [32, 32, 32], /cross_attention_dim has 3 entries for 2 down blocks/],
      ['layers_per_block', [1, 2, 1], /layers_per_block has 3 entries for 2 down blocks/],
      ['layers_per_block', [1, 0], /layers_per_block = \[1,0\] is not a non-empty list of positive integers/],
      ['conv_in_kernel', 4, /conv_in_kernel/],
      ['act_fn', 'tanh'],
      ['down_block_types', ['SimpleCrossAttnDownBlock2D', 'DownBlock2D'], /down block type SimpleCrossAttnDownBlock2D is not supported/],
      ['up_block_types', ['UpBlock2D', 'SimpleCrossAttnUpBlock2D'], /up block type SimpleCrossAttnUpBlock2D is not supported/],
      ['norm_num_groups', null],
    ],
  },
  {
    cls: 'AutoencoderKL',
    fixture: 'vae-kl-decode',
    read: (c) => readAutoencoderKLConfig(c),
    build: (rt, s, c) => buildModel(AutoencoderKL, rt, s, readAutoencoderKLConfig(c)),
    rows: [
      ['use_quant_conv', false],
      // Keys of later diffusers versions that change the latents.
      ['shift_factor', 0.1159, /shift_factor is not supported/],
      ['latents_mean', [0, 0, 0, 0], /latents_mean is not supported/],
      ['act_fn', 'tanh'],
      // The U-Net's blocks (temb, skips) are not encoder/decoder blocks; the Attn*EncoderBlock2D ones are built (variants/vae-*-attn).
      ['down_block_types', ['DownBlock2D', 'DownEncoderBlock2D'], /type DownBlock2D is not supported/],
      ['up_block_types', ['UpDecoderBlock2D', 'KUpBlock2D'], /KUpBlock2D is not supported/],
    ],
  },
  {
    cls: 'VQModel',
    fixture: 'vq',
    read: (c) => readVQModelConfig(c),
    build: (rt, s, c) => buildModel(VQModel, rt, s, readVQModelConfig(c)),
    rows: [
      // 'spatial' (SpatialNorm, MoVQ) is built: tests/fixtures/variants/vq-spatial-*.
      ['norm_type', 'layer'],
      ['lookup_from_codebook', true],
      ['act_fn', 'tanh'],
      ['up_block_types', ['KUpBlock2D', 'UpDecoderBlock2D'], /KUpBlock2D is not supported/],
      ['shift_factor', 0.1, /shift_factor is not supported/],
    ],
  },
  {
    cls: 'AutoencoderTiny',
    fixture: 'taesd',
    read: (c) => readAutoencoderTinyConfig(c),
    build: (rt, s, c) => buildModel(AutoencoderTiny, rt, s, readAutoencoderTinyConfig(c)),
    rows: [
      ['act_fn', 'leaky_relu'],
      ['upsampling_scaling_factor', 4],
      ['decoder_block_out_channels', [64, 32, 64, 64], /decoder_block_out_channels/],
      ['encoder_block_out_channels', [32, 64, 64, 64], /encoder_block_out_channels/],
      ['shift_factor', 0.1, /shift_factor is not supported/],
    ],
  },
];

describe('VQModel norm_type spatial', () => {
  it('refuses vq_embed_dim != latent_channels (the SpatialNorms take the quantized latents)', async () => {
    const folder = await loadModelFolder('tests/fixtures/vq');
    expect(() => readVQModelConfig({ ...folder.config, norm_type: 'spatial', vq_embed_dim: 4 })).toThrow(/norm_type 'spatial' needs vq_embed_dim \(4\) = latent_channels \(3\)/);
  });
});

describe('act_fn: every get_activation name builds, case-insensitive as diffusers lower-cases it', () => {
  // The numbers are checked by tests/fixtures/variants/*-act-*; here only that each class takes each name.
  const names = ['silu', 'swish', 'mish', 'gelu', 'relu', 'Mish', 'GELU', 'SiLU'];
  for (const t of modelTables) {
    it(`${t.cls}: ${names.join(', ')}`, async () => {
      const rt = await runtime();
      const folder = await loadModelFolder(`tests/fixtures/${t.fixture}`);
      for (const act_fn of names) t.build(rt, folder.weights, { ...folder.config, act_fn }).destroy();
    });
  }
});

/** `key = value` as ConfigReader.only writes it. */
const named = (key: string, value: unknown) => new RegExp(`${key} = ${JSON.stringify(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);

describe('unsupported diffusers options are ConfigErrors naming the option, for every model class', () => {
  for (const t of modelTables) {
    for (const [key, value, message] of t.rows) {
      it(`${t.cls}: ${key} = ${JSON.stringify(value)}`, async () => {
        const folder = await loadModelFolder(`tests/fixtures/${t.fixture}`);
        let err: unknown;
        try {
          t.read({ ...folder.config, [key]: value });
        } catch (e) {
          err = e;
        }
        expect(err, `${t.cls} accepted ${key} = ${JSON.stringify(value)}`).toBeInstanceOf(ConfigError);
        expect((err as Error).message).toMatch(message ?? named(key, value));
      });
    }
  }
});

const schedulerTables: [cls: string, rows: Row[]][] = [
  ['DDIMScheduler', [['timestep_spacing', 'karras'], ['beta_schedule', 'sigmoid'], ['prediction_type', 'flow']]],
  ['DDPMScheduler', [['variance_type', 'learned_range'], ['variance_type', 'fixed_large_log'], ['timestep_spacing', 'karras']]],
  ['EulerDiscreteScheduler', [['interpolation_type', 'log_linear'], ['timestep_spacing', 'karras']]],
  ['EulerAncestralDiscreteScheduler', [['prediction_type', 'sample'], ['timestep_spacing', 'karras']]],
  ['LCMScheduler', [['prediction_type', 'flow']]],
  ['DPMSolverMultistepScheduler', [['use_lu_lambdas', true], ['algorithm_type', 'sde-dpmsolver'], ['solver_order', 3], ['final_sigmas_type', 'zero'], ['variance_type', 'learned_range'], ['lambda_min_clipped', -5.1], ['timestep_spacing', 'karras']]],
  ['PNDMScheduler', [['skip_prk_steps', false], ['prediction_type', 'sample'], ['thresholding', true], ['timestep_spacing', 'karras']]],
];

describe('unsupported scheduler options are SchedulerConfigErrors naming the option', () => {
  for (const [cls, rows] of schedulerTables) {
    for (const [key, value] of rows) {
      it(`${cls}: ${key} = ${JSON.stringify(value)}`, () => {
        const config = { _class_name: cls, num_train_timesteps: 1000, skip_prk_steps: true, [key]: value };
        let err: unknown;
        try {
          createScheduler(config, 10);
        } catch (e) {
          err = e;
        }
        expect(err, `${cls} accepted ${key} = ${JSON.stringify(value)}`).toBeInstanceOf(SchedulerConfigError);
        expect((err as Error).message).toContain(key);
      });
    }
  }
});
