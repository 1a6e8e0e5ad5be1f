// ControlNetModel: its config reader's refusals (no GPU), the check that a ControlNet fits a U-Net,
// weight and input errors, and the diffusers cases in f16 (tests/fixtures/variants/controlnet-* and
// unet-cond-controlnet-*, made by diffusers v0.25.1's own code: scripts/reference/make_controlnet_cases.py;
// their f32 runs are in tests/models/variants.test.ts).
import { describe, expect, it } from 'vitest';
import { runModelCase } from '../../src/conformance/model_case.ts';
import { Graph } from '../../src/graph/graph.ts';
import { loadModelFolder, readJson } from '../../src/io/model_folder.ts';
import { ControlNetModel } from '../../src/models/controlnet.ts';
import { checkControlNetFits, readControlNetConfig, residualLayout } from '../../src/models/controlnet_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { readUNet2DConditionConfig } from '../../src/models/unet_2d_condition_config.ts';
import { hasF16, runtime } from '../helpers/gpu.ts';
import { runtimeWithoutF16 } from '../helpers/weights.ts';
import { ConfigError } from '../../src/errors.ts';
import { readSafetensorsFile, toFloat32, toInt64Numbers } from '../../src/io/safetensors.ts';
import { castTo } from '../../src/kernels/cast.ts';
import { addScaledInto } from '../../src/kernels/elementwise.ts';
import { numel, type Tensor } from '../../src/graph/tensor.ts';
import { measure } from '../../src/conformance/measure.ts';

const CASE = 'tests/fixtures/variants/controlnet-tiny';
const CASES = ['controlnet-tiny', 'controlnet-bgr-mid-resnet', 'controlnet-text-time', 'unet-cond-controlnet-residuals', 'unet-cond-controlnet-no-mid'];

describe('ControlNetModel config reader', async () => {
  const base = await readJson(`${CASE}/config.json`);
  const read = (over: Record<string, unknown>) => () => readControlNetConfig({ ...base, ...over }, 'cn');

  it('reads the tiny case: sd-tiny\'s layout, a 2x conditioning embedding', () => {
    const c = readControlNetConfig(base, 'cn');
    expect(c.channels).toEqual([32, 64]);
    expect(c.conditioningEmbeddingChannels).toEqual([8, 16]);
    expect(c.layers).toBe(1);
    expect(c.heads).toEqual([8, 8]);
    expect(c.channelOrder).toBe('rgb');
    expect(residualLayout(c.channels, [1, 1])).toEqual([{ channels: 32, level: 0 }, { channels: 32, level: 0 }, { channels: 32, level: 1 }, { channels: 64, level: 1 }]);
  });

  it('refuses, by name, what it does not build', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ global_pool_conditions: true }, /global_pool_conditions = true is not supported \(global pooling/],
      [{ controlnet_conditioning_channel_order: 'rbg' }, /controlnet_conditioning_channel_order = "rbg"/],
      [{ addition_embed_type: 'text' }, /addition_embed_type = "text"/],
      [{ class_embed_type: 'simple_projection', projection_class_embeddings_input_dim: 4 }, /class_embed_type = "simple_projection"/],
      [{ class_embed_type: 'timestep', act_fn: 'mish' }, /class_embed_type 'timestep' with act_fn "mish"/],
      [{ encoder_hid_dim: 32 }, /encoder_hid_dim = 32 is not supported/],
      [{ mid_block_type: null }, /mid_block_type = null is not a mid block ControlNetModel builds/],
      [{ mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' }, /UNetMidBlock2DSimpleCrossAttn/],
      [{ layers_per_block: [1, 1] }, /layers_per_block = \[1,1\]: ControlNetModel takes one int/],
      [{ cross_attention_dim: [64, 64] }, /cross_attention_dim = \[64,64\]/],
      [{ transformer_layers_per_block: [[1], [1]] }, /per-layer lists/],
      [{ down_block_types: ['CrossAttnDownBlock2D', 'SimpleCrossAttnDownBlock2D'] }, /down block type SimpleCrossAttnDownBlock2D is not supported/],
      [{ conditioning_embedding_out_channels: [] }, /conditioning_embedding_out_channels = \[\] is not a non-empty list/],
      [{ addition_embed_type: 'text_time', addition_time_embed_dim: 4 }, /requires projection_class_embeddings_input_dim/],
      [{ attention_head_dim: [8, 8, 8] }, /attention_head_dim has 3 entries for 2 down blocks/],
      [{ _class_name: 'UNet2DConditionModel' }, /_class_name/],
      [{ reverse_transformer_layers_per_block: [1, 1] }, /reverse_transformer_layers_per_block is not supported \(not part of this model class/],
    ];
    for (const [over, message] of cases) {
      expect(read(over), JSON.stringify(over)).toThrow(ConfigError);
      expect(read(over), JSON.stringify(over)).toThrow(message);
    }
  });

  it('num_attention_heads wins over attention_head_dim, as diffusers (num_attention_heads or attention_head_dim)', () => {
    expect(readControlNetConfig({ ...base, num_attention_heads: [2, 4] }).heads).toEqual([2, 4]);
  });
});

describe('a ControlNet must fit the U-Net', async () => {
  const unet = readUNet2DConditionConfig(await readJson('tests/fixtures/sd-tiny/unet/config.json'), 'sd-tiny/unet');
  const base = await readJson(`${CASE}/config.json`);
  const fits = (over: Record<string, unknown>, vae = 2) => () => checkControlNetFits(readControlNetConfig({ ...base, ...over }, 'cn'), unet, vae);

  it('the tiny case fits sd-tiny', () => {
    expect(fits({})).not.toThrow();
  });

  it('a layout, width or scale that does not fit is refused naming both sides', () => {
    expect(fits({ layers_per_block: 2 })).toThrow('cn: gives 6 down residuals (block_out_channels [32,64], layers_per_block 2) but the U-Net (sd-tiny/unet) keeps 4 skips (block_out_channels [32,64], layers_per_block [1,1])');
    expect(fits({ block_out_channels: [32, 128] })).toThrow('cn: down residual 3 has 128 channels at 1/2 but the U-Net\'s skip 3 has 64 channels at 1/2');
    expect(fits({ block_out_channels: [16, 64], norm_num_groups: 8 })).toThrow(/down residual 0 has 16 channels at 1\/1 but the U-Net's skip 0 has 32 channels/);
    expect(fits({ in_channels: 9 })).toThrow('cn: in_channels 9 does not match the U-Net\'s 4 (the ControlNet takes the same latents)');
    expect(fits({ cross_attention_dim: 32 })).toThrow("cn: cross_attention_dim 32 does not match the U-Net's 64");
    expect(fits({}, 8)).toThrow('cn: conditioning_embedding_out_channels [8,16] shrinks control images 2x, but the VAE\'s latents are 1/8 of the image size');
    for (const f of [fits({ layers_per_block: 2 }), fits({}, 8)]) expect(f).toThrow(ConfigError);
  });
});

describe('ControlNetModel weights and inputs', () => {
  it('a missing zero conv or a misshapen conditioning weight is named; every weight must be used', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder(CASE);
    const config = readControlNetConfig(folder.config, CASE);
    // Three blocks in the conditioning embedding where the file has two: blocks.2 is missing.
    expect(() => buildModel(ControlNetModel, rt, folder.weights, { ...config, conditioningEmbeddingChannels: [8, 16, 16] })).toThrow(/controlnet_cond_embedding\.blocks\.2\.weight/);
    const again = await loadModelFolder(CASE);
    expect(() => buildModel(ControlNetModel, rt, again.weights, { ...config, conditioningChannels: 4 })).toThrow(/controlnet_cond_embedding\.conv_in\.weight/);
  });

  it('a control image that does not match the latents is refused before anything is recorded', async () => {
    const rt = await runtime();
    const folder = await loadModelFolder(CASE);
    const net = buildModel(ControlNetModel, rt, folder.weights, readControlNetConfig(folder.config, 'cn'));
    const g = new Graph(rt, 'cn');
    const buffers: GPUBuffer[] = [];
    const t = (shape: number[], label: string) => {
      const buffer = rt.upload(new Float32Array(shape.reduce((a, b) => a * b, 1)), label);
      buffers.push(buffer);
      return { buffer, shape, label };
    };
    try {
      const run = (cond: number[]) => () => net.forward(g, t([1, 4, 8, 8], 'sample'), { timesteps: t([1], 'ts'), broadcast: false }, t([1, 3, 64], 'ctx'), t(cond, 'cond'));
      expect(run([1, 3, 8, 8])).toThrow('cn: controlnet_cond [1, 3, 8, 8] should be [1, 3, 16, 16]: the control image at 2x the latents\' 8x8');
      expect(run([2, 3, 16, 16])).toThrow(ConfigError);
    } finally {
      g.destroy();
      net.destroy();
      for (const b of buffers) rt.destroyBuffer(b);
    }
  });
});

describe("ControlNet cases in f16 (max|err| <= 1e-2·max|ref|)", () => {
  for (const name of CASES) {
    it(`${name}: precision 'auto' without shader-f16 (f16 weights)`, async () => {
      const rt = await runtimeWithoutF16();
      const r = await runModelCase(rt, `tests/fixtures/variants/${name}`, 'auto');
      console.log(`${name} [f16 weights]: ratio ${r.ratio.toExponential(2)}${r.detail ? ` (${r.detail})` : ''}`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-2);
    });
    it(`${name}: precision 'f16' (shader-f16)`, async (ctx) => {
      const rt = await runtime();
      if (!hasF16(rt)) {
        console.warn(`skipped f16 ${name}: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
        return ctx.skip();
      }
      const r = await runModelCase(rt, `tests/fixtures/variants/${name}`, 'f16');
      console.log(`${name} [f16]: ratio ${r.ratio.toExponential(2)}${r.detail ? ` (${r.detail})` : ''}`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-2);
    });
  }
});

// The ControlNet folders diffusers saved for the pipeline traces (tests/fixtures/controlnet-tiny,
// f32, and controlnet-tiny-b, stored in f16; scripts/reference/make_issue14.py), run on a trace's
// first U-Net call: its model input, [uncond, cond] text states, timestep, control images and
// conditioning scales give the residuals the U-Net got there (step0_down_residual_j, step0_mid_residual;
// with two nets, their sum).
describe("ControlNetModel on diffusers' pipeline traces: the first step's residuals (<= 1e-3·max|ref|)", () => {
  const cases: [string, string[]][] = [
    ['pipeline-sd-tiny-controlnet', ['controlnet-tiny']],
    ['pipeline-sd-tiny-controlnet-multi', ['controlnet-tiny', 'controlnet-tiny-b']],
  ];
  for (const [trace, nets] of cases) {
    it(`${trace}: ${nets.join(' + ')}`, async () => {
      const rt = await runtime();
      const t = await readSafetensorsFile(`tests/fixtures/${trace}/trace.safetensors`);
      const get = (k: string) => {
        const v = t.get(k);
        if (!v) throw new Error(`${trace}: no ${k}`);
        return v;
      };
      const models = await Promise.all(nets.map(async (n) => {
        const f = await loadModelFolder(`tests/fixtures/${n}`);
        return buildModel(ControlNetModel, rt, f.weights, readControlNetConfig(f.config, n));
      }));
      const g = new Graph(rt, 'controlnet-step0');
      const buffers: GPUBuffer[] = [];
      const up = (data: Float32Array, shape: number[], label: string): Tensor => {
        const buffer = rt.upload(data, label);
        buffers.push(buffer);
        return { buffer, shape, label };
      };
      try {
        const x = get('step0_model_input');
        const sample = up(toFloat32(x), x.shape, 'sample');
        const neg = toFloat32(get('negative_prompt_embeds'));
        const pos = toFloat32(get('prompt_embeds'));
        // diffusers' batch order: [uncond, cond].
        const ctx = up(Float32Array.from([...neg, ...pos]), [2, ...get('prompt_embeds').shape.slice(1)], 'context');
        const ts = up(Float32Array.of(toInt64Numbers(get('timesteps'))[0]!), [1], 'timestep');
        const scales = toFloat32(get('controlnet_scales')).subarray(0, nets.length);
        const outs = models.map((m, k) => {
          const c = get(nets.length === 1 ? 'control_image' : `control_image_${k}`);
          return m.forward(g, sample, { timesteps: ts, broadcast: true }, ctx, up(toFloat32(c), c.shape, `control_image_${k}`), { conditioningScale: scales[k]! });
        });
        // MultiControlNetModel: the nets' scaled residuals summed.
        for (const o of outs.slice(1)) {
          o.down.forEach((d, i) => addScaledInto(g, `sum.${i}`, outs[0]!.down[i]!, d, 1));
          addScaledInto(g, 'sum.mid', outs[0]!.mid, o.mid, 1);
        }
        const keys = [...outs[0]!.down.map((_, i) => `step0_down_residual_${i}`), 'step0_mid_residual'];
        const got = [...outs[0]!.down, outs[0]!.mid].map((r, i) => castTo(g, keys[i]!, r, 'f32'));
        g.finalize();
        g.submit('controlnet-step0');
        await rt.assertHealthy();
        for (const [i, key] of keys.entries()) {
          const m = measure(await rt.read(got[i]!.buffer, numel(got[i]!.shape) * 4), toFloat32(get(key)), 1e-3);
          console.log(`${trace} ${key}: ratio ${m.ratio.toExponential(2)}`);
          expect(m.note).toBeUndefined();
          expect(m.ratio).toBeLessThanOrEqual(1e-3);
        }
      } finally {
        g.destroy();
        models.forEach((m) => m.destroy());
        buffers.forEach((b) => rt.destroyBuffer(b));
      }
    });
  }
});
