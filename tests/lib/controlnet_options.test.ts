// The library's ControlNet options: inspectModel / loadModel with `controlnet`, generate()'s
// controlImage, controlScale, controlStart, controlEnd checked without the GPU, the control image
// prepared as diffusers' control image processor does, and one generation through the API.
import { describe, expect, it } from 'vitest';
import { cannyEdges, generate, inspectModel, loadModel, resolveGenerateOptions, type GenerateOptions } from '../../src/api.ts';
import { cannyRef } from '../ref/canny.ts';
import { controlTensors } from '../../src/generate_options.ts';
import { ConfigError, GenerateOptionsError } from '../../src/errors.ts';

const SD = 'tests/fixtures/sd-tiny';
const CN = 'tests/fixtures/variants/controlnet-tiny';
const plain = await inspectModel(SD);
const one = await inspectModel(SD, { controlnet: CN });
const two = await inspectModel(SD, { controlnet: [CN, CN] });
const rgba = (width: number, height: number, v = 200) => ({ width, height, data: new Uint8ClampedArray(width * height * 4).map((_, i) => (i % 4 === 3 ? 255 : (v + i) % 256)) });

describe('ControlNet options', () => {
  it('inspectModel counts the ControlNets and checks each against the U-Net from the configs', async () => {
    expect(plain.controlnets).toBeUndefined();
    expect(one.controlnets).toBe(1);
    expect(two.controlnets).toBe(2);
    await expect(inspectModel(SD, { controlnet: 'tests/fixtures/variants/controlnet-bgr-mid-resnet' })).rejects.toThrow(ConfigError);
    await expect(inspectModel(SD, { controlnet: 'tests/fixtures/variants/controlnet-bgr-mid-resnet' })).rejects.toThrow(/gives 9 down residuals .* keeps 4 skips/);
    await expect(inspectModel('weights/fashion-ldm', { controlnet: CN })).rejects.toThrow('ControlNets apply to Stable Diffusion pipelines (model_index.json); weights/fashion-ldm is a class-conditional model folder');
    await expect(inspectModel(SD, { controlnet: 'tests/fixtures/sd-tiny/unet' })).rejects.toThrow(/_class_name = "UNet2DConditionModel"/);
  });

  it('defaults: scale 1 over all the steps; one number for all nets or one per net', () => {
    const o = resolveGenerateOptions(one, { prompt: 'a', controlImage: rgba(16, 16), width: 16, height: 16 }, 'sd');
    expect(o.control).toEqual({ weights: [{ scale: 1, start: 0, end: 1 }], resize: false });
    const t = resolveGenerateOptions(two, { prompt: 'a', controlImage: [rgba(16, 16), rgba(16, 16)], controlScale: [0.5, 1.5], controlStart: 0.2, controlEnd: [0.9, 1] }, 'sd');
    expect(t.control!.weights).toEqual([{ scale: 0.5, start: 0.2, end: 0.9 }, { scale: 1.5, start: 0.2, end: 1 }]);
    expect(resolveGenerateOptions(plain, { prompt: 'a' }, 'sd').control).toBeNull();
  });

  it('without a size the first control image gives it, rounded down to the VAE multiple (as diffusers); with one, another size needs resize', () => {
    const o = resolveGenerateOptions(one, { prompt: 'a', controlImage: rgba(21, 13) }, 'sd');
    expect([o.height, o.width]).toEqual([12, 20]);
    expect(o.control!.resize).toBe(true);
    const [t] = controlTensors({ controlImage: rgba(21, 13) }, o);
    expect(t).toHaveLength(3 * 12 * 20);
    expect(() => resolveGenerateOptions(one, { prompt: 'a', controlImage: rgba(20, 12), width: 16, height: 16 }, 'sd')).toThrow('controlImage is 20x12 but the images generated are 16x16; pass resize: true to resize it');
    expect(resolveGenerateOptions(one, { prompt: 'a', controlImage: rgba(20, 12), width: 16, height: 16, resize: true }, 'sd').control!.resize).toBe(true);
    expect(() => resolveGenerateOptions(two, { prompt: 'a', controlImage: [rgba(20, 12), rgba(16, 16)] }, 'sd')).toThrow('controlImage[1] is 16x16 but the first control image is 20x12; pass resize: true to resize it');
    // One side given: the other comes from the control image, side by side, as diffusers' get_default_height_width.
    const w = resolveGenerateOptions(one, { prompt: 'a', controlImage: rgba(40, 40), width: 24 }, 'sd');
    expect([w.height, w.width, w.control!.resize]).toEqual([40, 24, true]);
    const h = resolveGenerateOptions(one, { prompt: 'a', controlImage: rgba(21, 13), height: 8 }, 'sd');
    expect([h.height, h.width]).toEqual([8, 20]);
  });

  it('the control image is RGB / 255 in float32, alpha ignored, channel-major', () => {
    const img = { width: 2, height: 2, data: new Uint8ClampedArray([255, 128, 0, 7, 1, 2, 3, 0, 10, 20, 30, 40, 50, 60, 70, 80]) };
    const o = resolveGenerateOptions(one, { prompt: 'a', controlImage: img }, 'sd');
    expect([o.height, o.width]).toEqual([2, 2]);
    const [t] = controlTensors({ controlImage: img }, o);
    expect(Array.from(t!)).toEqual([255, 1, 10, 50, 128, 2, 20, 60, 0, 3, 30, 70].map((v) => Math.fround(v / 255)));
  });

  const bad: [string, GenerateOptions, RegExp][] = [
    ['control options on a model without a ControlNet', { prompt: 'a', controlImage: rgba(16, 16), controlScale: 1 }, /controlImage, controlScale apply to a model loaded with a ControlNet \(loadModel's controlnet option\); sd has none/],
    ['no control image for a ControlNet model', { prompt: 'a' }, /this model was loaded with 1 ControlNet: controlImage needs one image, got 0/],
    ['one image for two nets', { prompt: 'a', controlImage: rgba(16, 16) }, /loaded with 2 ControlNets: controlImage needs 2 images, one per net, got 1/],
    ['three scales for two nets', { prompt: 'a', controlImage: [rgba(16, 16), rgba(16, 16)], controlScale: [1, 1, 1] }, /controlScale: 3 values for 2 ControlNets \(give one number for all, or one per net\)/],
    ['start after end', { prompt: 'a', controlImage: rgba(16, 16), controlStart: 0.7, controlEnd: 0.3 }, /ControlNet: start 0\.7 must be below its end 0\.3/],
    ['end above 1', { prompt: 'a', controlImage: rgba(16, 16), controlEnd: 1.2 }, /ControlNet: end 1\.2 cannot be above 1/],
    ['a negative start of net 1', { prompt: 'a', controlImage: [rgba(16, 16), rgba(16, 16)], controlStart: [0, -0.5] }, /ControlNet 1: start -0\.5 cannot be below 0/],
    ['a scale that is not a number', { prompt: 'a', controlImage: rgba(16, 16), controlScale: 'big' as unknown as number }, /controlScale: "big" for 1 ControlNet/],
    ['a scale of NaN', { prompt: 'a', controlImage: rgba(16, 16), controlScale: NaN }, /ControlNet: scale must be a finite number, got NaN/],
    ['an image that is not RGBA pixels', { prompt: 'a', controlImage: { width: 4, height: 4, data: new Uint8Array(10) } }, /controlImage is 4x4, which needs 64 RGBA bytes; its data has 10/],
    ['img2img with a ControlNet', { prompt: 'a', controlImage: rgba(16, 16), initImage: rgba(16, 16) }, /initImage and mask \(img2img, inpainting\) do not go with ControlNets/],
  ];
  for (const [what, opts, message] of bad) {
    it(`refuses ${what}`, () => {
      const info = /two nets|three scales|net 1/.test(what) ? two : /without a ControlNet/.test(what) ? plain : one;
      expect(() => resolveGenerateOptions(info, opts, 'sd')).toThrow(GenerateOptionsError);
      expect(() => resolveGenerateOptions(info, opts, 'sd')).toThrow(message);
    });
  }
  it('refuses control options for a class-conditional model', async () => {
    const fashion = await inspectModel('weights/fashion-ldm');
    expect(() => resolveGenerateOptions(fashion, { class: 1, controlImage: rgba(32, 32) }, 'fashion')).toThrow('fashion is class-conditional: controlImage (ControlNet) apply to Stable Diffusion models loaded with a ControlNet');
  });

  it('loadModel with a ControlNet generates through generate(); the ControlNet changes the image', async () => {
    const files = new Set<string>();
    const m = await loadModel(SD, { controlnet: CN, precision: 'f32', onProgress: (_l, _t, file) => files.add(file) });
    const base = await loadModel(SD, { precision: 'f32' });
    // The ControlNet's weights stream with the pipeline's, reported under its own name.
    expect([...files].filter((f) => f.endsWith('.safetensors')).sort()).toEqual(['controlnet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors']);
    try {
      expect(m.info.controlnets).toBe(1);
      const opts = { prompt: 'a boat', steps: 3, seed: 7, scheduler: 'ddim' as const };
      const r = await generate(m, { ...opts, controlImage: rgba(16, 16, 30), controlScale: 1.5 });
      const off = await generate(m, { ...opts, controlImage: rgba(16, 16, 30), controlScale: 0 });
      const none = await generate(base, opts);
      expect(r.rawShape).toEqual([1, 3, 16, 16]);
      expect(Array.from(off.raw)).toEqual(Array.from(none.raw));
      expect(r.raw.some((v, i) => Math.abs(v - none.raw[i]!) > 0.01)).toBe(true);
    } finally {
      m.destroy();
      base.destroy();
    }
  });

  it('cannyEdges makes white-on-black edge pixels of the same size, as the reference Canny', async () => {
    const img = rgba(24, 16, 90);
    const edges = await cannyEdges(img, { low: 50, high: 150 });
    expect([edges.width, edges.height]).toEqual([24, 16]);
    const ref = cannyRef(img.data, 24, 16, 50, 150);
    expect(Array.from({ length: 24 * 16 }, (_, p) => edges.data[4 * p])).toEqual(Array.from(ref));
    expect(ref.some((v) => v === 255)).toBe(true);
  });
});
