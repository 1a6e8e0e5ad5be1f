// generate()'s options against a model's JSON alone (no GPU): defaults, batching, the grid, init
// images, and every bad option as a GenerateOptionsError before anything is loaded.
import { describe, expect, it } from 'vitest';
import { inspectModel, resolveGenerateOptions, type GenerateOptions } from '../../src/api.ts';
import { initTensors } from '../../src/generate_options.ts';
import { GenerateOptionsError } from '../../src/errors.ts';

const fashion = await inspectModel('weights/fashion-ldm');
const sd = await inspectModel('tests/fixtures/sd-tiny');
const xl = await inspectModel('tests/fixtures/sdxl-tiny');
const rgba = (width: number, height: number) => ({ width, height, data: new Uint8ClampedArray(width * height * 4).fill(200) });

describe('resolveGenerateOptions', () => {
  it("fills in the model's defaults, the batch and the grid", () => {
    const o = resolveGenerateOptions(fashion, { class: ['Bag', 'coat'], count: 3, seed: 4 }, 'fashion');
    expect(o).toMatchObject({ seed: 4, steps: 25, guidance: 3, scheduler: 'ddim', batch: 6, columns: 3, height: 32, width: 32, classLabels: [8, 8, 8, 4, 4, 4] });
    const t = resolveGenerateOptions(sd, { prompt: ['a', 'b'], steps: 3 }, 'sd');
    expect(t).toMatchObject({ steps: 3, guidance: 7.5, scheduler: 'pndm', batch: 2, columns: 2, prompts: ['a', 'b'], height: sd.imageSize[0], width: sd.imageSize[1] });
    expect(Number.isSafeInteger(t.seed)).toBe(true);
  });

  it('text img2img without a size generates at the init image size, rounded down to the VAE multiple, as diffusers', () => {
    const f = sd.scaleFactor;
    const opts = { prompt: 'a', initImage: rgba(3 * f + f - 1, 2 * f), steps: 4 };
    const o = resolveGenerateOptions(sd, opts, 'sd');
    expect([o.height, o.width]).toEqual([2 * f, 3 * f]);
    const init = initTensors(opts, o, sd.imageChannels);
    expect(init.initImage).toHaveLength(3 * 2 * f * 3 * f);
    expect(init.strength).toBe(0.8);
    // With a size given, another init size needs resize.
    expect(() => resolveGenerateOptions(sd, { prompt: 'a', initImage: rgba(3 * f, 2 * f), width: 2 * f, height: 2 * f }, 'sd')).toThrow(`initImage is ${3 * f}x${2 * f} but the images generated are ${2 * f}x${2 * f}; pass resize: true`);
  });

  const bad: [string, GenerateOptions, RegExp][] = [
    ['eta with the default scheduler, not ddim', { prompt: 'a', eta: 0.5 }, /eta applies to the ddim scheduler only; this run uses pndm/],
    ['steps x strength leaving no step', { class: 1, steps: 3, strength: 0.2, initImage: rgba(32, 32) }, /strength 0\.2 with 3 steps leaves no denoising step/],
    ['a negative seed', { class: 1, seed: -1 }, /seed must be a whole number >= 0, got -1/],
    ['a fractional step count', { class: 1, steps: 2.5 }, /steps must be a whole number >= 1, got 2\.5/],
    ['guidance NaN', { class: 1, guidance: NaN }, /guidance must be a finite number >= 0/],
    ['a prompt that is not text', { prompt: 123 as unknown as string }, /prompt must be a string or a non-empty list of strings, got 123/],
    ['an empty prompt list', { prompt: [] }, /prompt must be a string or a non-empty list/],
    ['a mask without an init image', { class: 1, mask: rgba(32, 32) }, /mask needs initImage/],
    ['width on a class model', { class: 1, width: 64 }, /generates 32x32 images only: width and height apply to text models/],
    ['a size off the VAE multiple', { prompt: 'a', width: 2 * sd.scaleFactor + 1 }, new RegExp(`width must be a positive multiple of ${sd.scaleFactor} for this model`)],
  ];
  it.each(bad)('refuses %s', (_what, opts, message) => {
    const info = opts.prompt !== undefined ? sd : fashion;
    expect(() => resolveGenerateOptions(info, opts, 'm')).toThrow(GenerateOptionsError);
    expect(() => resolveGenerateOptions(info, opts, 'm')).toThrow(message);
  });

  it('refuses img2img and SD 1.x options across pipeline kinds', () => {
    expect(() => resolveGenerateOptions(xl, { prompt: 'a', initImage: rgba(16, 16) }, 'xl')).toThrow(/not supported for Stable Diffusion XL/);
    expect(() => resolveGenerateOptions(sd, { prompt: 'a', prompt2: 'b' }, 'sd')).toThrow(/prompt2 applies to Stable Diffusion XL pipelines only \(sd is a StableDiffusionPipeline\)/);
  });
});
