// StableDiffusionControlNetPipeline on sd-tiny: diffusers v0.25.1's own traces
// (tests/fixtures/pipeline-sd-tiny-controlnet*, scripts/reference/make_issue14.py: one net, start /
// end with a resized control image, two nets), then properties on the tiny ControlNet of
// tests/fixtures/variants/controlnet-tiny (made by diffusers' own ControlNetModel; its outputs are
// checked there): the scale and keep flags per step, several nets summed, control image batching,
// and the errors for inputs that do not fit.
import { describe, expect, it } from 'vitest';
import { loadSdFolder, type SdModel } from '../../src/pipelines/sd_folder.ts';
import { generateFromText, type TextToImageOptions } from '../../src/pipelines/text_to_image.ts';
import { checkPipelineControlNet, controlKeep } from '../../src/pipelines/controlnet.ts';
import { readJson } from '../../src/io/model_folder.ts';
import { readControlNetConfig } from '../../src/models/controlnet_config.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { runtime } from '../helpers/gpu.ts';
import { traceTests } from '../helpers/traces.ts';
import { ConfigError } from '../../src/errors.ts';
import { readFileSync } from 'node:fs';
import { nodeFolderReader } from '../../src/io/model_folder.ts';
import { RandomWeightStore } from '../../src/io/random_weights.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { CLIPTextModel } from '../../src/models/clip_text_model.ts';
import { readClipTextConfig } from '../../src/models/clip_text_config.ts';
import { ControlNetModel } from '../../src/models/controlnet.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { UNet2DConditionModel } from '../../src/models/unet_2d_condition.ts';
import { CLIPTokenizer } from '../../src/text/clip_tokenizer.ts';

const SD = 'tests/fixtures/sd-tiny';
const CN = 'tests/fixtures/variants/controlnet-tiny';
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const models: Record<string, SdModel> = {};
async function model(nets: string[]): Promise<SdModel> {
  const key = nets.join(',');
  models[key] ??= await loadSdFolder(await runtime(), SD, { controlnets: nets });
  return models[key]!;
}

const image = (seed: number) => Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => (Math.sin(i * 0.37 + seed) + 1) / 2);
const latents = Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i * 0.7) * 1.2);
const base: TextToImageOptions = { prompt: 'a red house', negativePrompt: 'fog', steps: 4, scheduler: 'ddim', guidanceScale: 6, latents };

/** Every step's guided eps, and the image. */
async function run(m: SdModel, opts: Partial<TextToImageOptions>): Promise<{ eps: Float32Array[]; image: Float32Array }> {
  const eps: Float32Array[] = [];
  const r = await generateFromText(await runtime(), m, { ...base, ...opts, trace: (_i, e) => eps.push(e) });
  return { eps, image: r.image };
}

const TRACES = ['pipeline-sd-tiny-controlnet', 'pipeline-sd-tiny-controlnet-startend', 'pipeline-sd-tiny-controlnet-multi'];

describe("diffusers' StableDiffusionControlNetPipeline traces: the control images and per-step scales exactly, every step's eps and latents, the image", () => {
  for (const name of TRACES) traceTests(name);
});

describe('ControlNet pipeline (sd-tiny + the tiny ControlNet)', () => {
  it("keep follows diffusers' 1 - float(i/n < start or (i+1)/n > end)", () => {
    expect([0, 1, 2, 3].map((i) => controlKeep(i, 4, 0.5, 1))).toEqual([0, 0, 1, 1]);
    expect([0, 1, 2, 3].map((i) => controlKeep(i, 4, 0, 0.5))).toEqual([1, 1, 0, 0]);
    // PNDM's 11 calls for 10 steps: (i + 1)/11 > 0.8 from i = 8.
    expect(Array.from({ length: 11 }, (_, i) => controlKeep(i, 11, 0.1, 0.8))).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  });

  it('scale 0 draws exactly what the pipeline without a ControlNet draws; scale 1 changes it', async () => {
    const plain = await run(await model([]), {});
    const off = await run(await model([CN]), { control: [{ image: image(1), scale: 0 }] });
    const on = await run(await model([CN]), { control: [{ image: image(1) }] });
    expect(maxDiff(off.image, plain.image)).toBe(0);
    console.log(`scale 1 vs none: max|Δimage| ${maxDiff(on.image, plain.image).toExponential(2)}`);
    expect(maxDiff(on.image, plain.image)).toBeGreaterThan(0.02);
  });

  it('control_guidance_start / end: the steps outside them are the plain U-Net\'s, exactly', async () => {
    const m = await model([CN]);
    const plain = await run(await model([]), {});
    const full = await run(m, { control: [{ image: image(2), scale: 0.9 }] });
    // Steps 0, 1 without the net (start 0.5 of 4 steps): the same eps as without it.
    const late = await run(m, { control: [{ image: image(2), scale: 0.9, start: 0.5 }] });
    expect(maxDiff(late.eps[0]!, plain.eps[0]!)).toBe(0);
    expect(maxDiff(late.eps[1]!, plain.eps[1]!)).toBe(0);
    expect(maxDiff(late.eps[2]!, plain.eps[2]!)).toBeGreaterThan(1e-3);
    // Steps 0, 1 with it (end 0.5): the full run's; then the plain U-Net's on those latents.
    const early = await run(m, { control: [{ image: image(2), scale: 0.9, end: 0.5 }] });
    expect(maxDiff(early.eps[0]!, full.eps[0]!)).toBe(0);
    expect(maxDiff(early.eps[1]!, full.eps[1]!)).toBe(0);
    expect(maxDiff(early.eps[2]!, full.eps[2]!)).toBeGreaterThan(1e-4);
  });

  it('two nets add their residuals: the same net twice at a and b is the net once at a + b; a second net at 0 changes nothing', async () => {
    const two = await model([CN, CN]);
    const one = await model([CN]);
    const img = image(3);
    const sum = await run(two, { control: [{ image: img, scale: 0.3 }, { image: img, scale: 0.5 }] });
    const once = await run(one, { control: [{ image: img, scale: 0.8 }] });
    const err = maxDiff(sum.image, once.image) / maxAbs(once.image);
    console.log(`nets at 0.3 + 0.5 vs one at 0.8: ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(1e-5);
    const zero = await run(two, { control: [{ image: img, scale: 0.8 }, { image: image(4), scale: 0 }] });
    expect(maxDiff(zero.image, once.image)).toBe(0);
  });

  it('one control image per prompt, or one for all: each image of a batch is what it is alone', async () => {
    const m = await model([CN]);
    const rt = await runtime();
    const [ia, ib] = [image(5), image(6)];
    const both = await generateFromText(rt, m, { ...base, prompt: ['a red house', 'a red house'], negativePrompt: 'fog', latents: Float32Array.from([...latents, ...latents]), control: [{ image: Float32Array.from([...ia, ...ib]), scale: 1.2 }] });
    const a = await generateFromText(rt, m, { ...base, control: [{ image: ia, scale: 1.2 }] });
    const b = await generateFromText(rt, m, { ...base, control: [{ image: ib, scale: 1.2 }] });
    const half = a.image.length;
    expect(maxDiff(both.image.subarray(0, half), a.image) / maxAbs(a.image)).toBeLessThanOrEqual(1e-5);
    expect(maxDiff(both.image.subarray(half), b.image) / maxAbs(b.image)).toBeLessThanOrEqual(1e-5);
  });

  it('refuses inputs that do not fit, naming them', async () => {
    const rt = await runtime();
    const m = await model([CN]);
    const gen = (m2: SdModel, opts: Partial<TextToImageOptions>) => generateFromText(rt, m2, { ...base, ...opts });
    await expect(gen(m, {})).rejects.toThrow('tests/fixtures/sd-tiny was loaded with 1 ControlNet: 1 control input is needed, 0 given');
    await expect(gen(await model([]), { control: [{ image: image(1) }] })).rejects.toThrow('control inputs were given, but tests/fixtures/sd-tiny was loaded without a ControlNet');
    await expect(gen(m, { control: [{ image: image(1), start: 0.6, end: 0.6 }] })).rejects.toThrow('ControlNet 0 start 0.6 must be below its end 0.6');
    await expect(gen(m, { control: [{ image: image(1), end: 1.5 }] })).rejects.toThrow('ControlNet 0 end 1.5 cannot be above 1');
    await expect(gen(m, { control: [{ image: image(1), start: -0.1 }] })).rejects.toThrow('ControlNet 0 start -0.1 cannot be below 0');
    await expect(gen(m, { control: [{ image: image(1), scale: NaN }] })).rejects.toThrow('ControlNet 0 scale must be a finite number');
    await expect(gen(m, { control: [{ image: new Float32Array(3 * 8 * 8) }] })).rejects.toThrow("ControlNet 0's control image has 192 values; expected [3, 16, 16] or [1, 3, 16, 16]");
    await expect(gen(m, { control: [{ image: image(1) }], initImage: new Float32Array(3 * 16 * 16) })).rejects.toThrow(/ControlNets with img2img or inpainting are not supported/);
  });

  it('a ControlNet whose layout does not fit the U-Net is refused at load, before any weight is read', async () => {
    const rt = await runtime();
    const load = loadSdFolder(rt, SD, { controlnets: ['tests/fixtures/variants/controlnet-bgr-mid-resnet'] });
    await expect(load).rejects.toThrow(ConfigError);
    await expect(loadSdFolder(rt, SD, { controlnets: ['tests/fixtures/variants/controlnet-bgr-mid-resnet'] })).rejects.toThrow('controlnet-bgr-mid-resnet: gives 9 down residuals');
    await expect(loadSdFolder(rt, SD, { controlnets: ['tests/fixtures/variants/controlnet-text-time'] })).rejects.toThrow("tests/fixtures/variants/controlnet-text-time: in_channels 3 does not match the U-Net's 4");
  });

  it('inputs StableDiffusionControlNetPipeline never gives a ControlNet are refused from the configs (no GPU)', async () => {
    const unet = readUNet2DConditionConfig(await readJson(`${SD}/unet/config.json`), 'unet');
    const tiny = await readJson(`${CN}/config.json`);
    const check = (over: Record<string, unknown>, xl = false) => () => checkPipelineControlNet(readControlNetConfig({ ...tiny, ...over }, 'cn'), unet, 2, xl);
    expect(check({})).not.toThrow();
    expect(check({}, true)).toThrow('cn: ControlNets with Stable Diffusion XL (StableDiffusionXLControlNetPipeline) are not supported');
    expect(check({ conditioning_channels: 1 })).toThrow('cn: conditioning_channels 1: StableDiffusionControlNetPipeline gives the ControlNet RGB control images (3 channels)');
    expect(check({ addition_embed_type: 'text_time', addition_time_embed_dim: 4, projection_class_embeddings_input_dim: 40 })).toThrow("cn: addition_embed_type 'text_time' needs text_embeds and time_ids");
    expect(check({ num_class_embeds: 10 })).toThrow('cn: a class-conditional ControlNet (class_embed_type / num_class_embeds) needs class labels');
    expect(check({ class_embed_type: 'identity' })).toThrow(ConfigError);
  });
});

/**
 * The ControlNet config diffusers v0.25.1's ControlNetModel.from_unet(unet) writes for a U-Net
 * config (the layout of the lllyasviel/sd-controlnet-* and SD 2.1 ControlNets): the U-Net's own
 * values for every argument it passes, RGB, conditioning_embedding_out_channels (16, 32, 96, 256).
 */
function fromUnet(unet: Record<string, unknown>): Record<string, unknown> {
  const keys = ['encoder_hid_dim', 'encoder_hid_dim_type', 'addition_embed_type', 'addition_time_embed_dim', 'transformer_layers_per_block', 'in_channels', 'flip_sin_to_cos', 'freq_shift', 'down_block_types', 'only_cross_attention', 'block_out_channels', 'layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'act_fn', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'attention_head_dim', 'num_attention_heads', 'use_linear_projection', 'class_embed_type', 'num_class_embeds', 'upcast_attention', 'resnet_time_scale_shift', 'projection_class_embeddings_input_dim', 'mid_block_type'];
  const out: Record<string, unknown> = { _class_name: 'ControlNetModel', controlnet_conditioning_channel_order: 'rgb', conditioning_embedding_out_channels: [16, 32, 96, 256], conditioning_channels: 3 };
  for (const k of keys) if (unet[k] !== undefined) out[k] = unet[k];
  return out;
}

describe('the SD 1.5 and 2.1 ControlNet layouts (from_unet of their real U-Net configs)', () => {
  type Configs = Record<string, Record<string, unknown>>;
  const configs = (name: string) => JSON.parse(readFileSync(`bench/sd-configs/${name}.json`, 'utf8')) as Configs;

  it('are accepted and fit their U-Nets at the VAE factor 8 (no GPU)', () => {
    for (const name of ['sd15', 'sd21']) {
      const c = configs(name);
      const unet = readUNet2DConditionConfig(c.unet!, `${name}/unet`);
      const cn = readControlNetConfig(fromUnet(c.unet!), `${name}/controlnet`);
      expect(() => checkPipelineControlNet(cn, unet, 8, false)).not.toThrow();
      expect(cn.heads).toEqual(unet.heads);
    }
  });

  it('sd21 narrowed (widths / 8, 8 groups; linear projections, per-level heads): a ControlNet on random weights runs text-to-image to a finite 64x48 image', async () => {
    const rt = await runtime();
    const c = configs('sd21');
    const div = (v: unknown) => (v as number) / 8;
    const unetCfg = { ...c.unet!, block_out_channels: (c.unet!.block_out_channels as number[]).map(div), cross_attention_dim: div(c.unet!.cross_attention_dim), norm_num_groups: 8, sample_size: 8 };
    const vaeCfg = { ...c.vae!, block_out_channels: (c.vae!.block_out_channels as number[]).map(div), norm_num_groups: 8 };
    const te = c.text_encoder!;
    const textCfg = { ...te, hidden_size: div(te.hidden_size), intermediate_size: div(te.intermediate_size), projection_dim: div(te.projection_dim) };
    const store = new RandomWeightStore(7);
    const unet = buildModel(UNet2DConditionModel, rt, store, readUNet2DConditionConfig(unetCfg, 'unet'));
    const vae = buildModel(AutoencoderKL, rt, store, readAutoencoderKLConfig(vaeCfg, 'vae'));
    const textEncoder = buildModel(CLIPTextModel, rt, store, readClipTextConfig(textCfg, 'text_encoder'));
    const cnConfig = readControlNetConfig(fromUnet(unetCfg), 'controlnet');
    checkPipelineControlNet(cnConfig, unet.config, vae.scaleFactor, false);
    const net = buildModel(ControlNetModel, rt, new RandomWeightStore(8), cnConfig);
    const tokenizer = await CLIPTokenizer.load(nodeFolderReader('tests/fixtures/tokenizer-clip'));
    const m: SdModel = { dir: 'sd21-narrowed', unet, vae, textEncoder, tokenizer, schedulerConfig: c.scheduler!, precision: unet.precision, weightBytes: 0, controlnets: [net], destroy: () => [unet, vae, textEncoder, net].forEach((x) => x.destroy()) };
    try {
      const img = Float32Array.from({ length: 3 * 48 * 64 }, (_, i) => (i % 5 === 0 ? 1 : 0));
      const r = await generateFromText(rt, m, { prompt: 'a castle on a hill at dawn', steps: 2, guidanceScale: 7.5, seed: 1, scheduler: 'ddim', width: 64, height: 48, control: [{ image: img, scale: 0.5 }] });
      expect(r.imageShape).toEqual([1, 3, 48, 64]);
      expect(r.image.every((v) => Number.isFinite(v))).toBe(true);
    } finally {
      m.destroy();
    }
  });
});
