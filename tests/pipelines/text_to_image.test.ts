// Stable Diffusion text-to-image on the tiny diffusers pipeline folder (random weights): the two
// diffusers traces step by step, batching, image sizes, img2img and inpainting with text, and the
// CLI's --prompt path with its errors.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPipelineCase } from '../../src/conformance/pipeline_case.ts';
import { decodePng } from '../../src/io/png.ts';
import { loadSdFolder, type SdModel } from '../../src/pipelines/sd_folder.ts';
import { generateFromText } from '../../src/pipelines/text_to_image.ts';
import { runtime } from '../helpers/gpu.ts';
import { runFresco } from '../helpers/cli.ts';

const MODEL = 'tests/fixtures/sd-tiny';
let model: SdModel | null = null;
async function sd(): Promise<SdModel> {
  model ??= await loadSdFolder(await runtime(), MODEL);
  return model;
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const latents = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + seed) * 1.3);

describe('Stable Diffusion text-to-image (sd-tiny)', () => {
  for (const name of ['pipeline-sd-tiny', 'pipeline-sd-tiny-ddim']) {
    it(`reproduces diffusers' ${name} trace: token ids exactly, text states, every step, latents and image within 1e-3·max|ref|`, async () => {
      const r = await runPipelineCase(await runtime(), `tests/fixtures/${name}`);
      console.log(`${name}: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-3);
      expect(r.pass).toBe(true);
    });
  }

  it('each image of a batch of two prompts equals the image generated alone', async () => {
    const rt = await runtime();
    const m = await sd();
    const n = 4 * 8 * 8;
    const [la, lb] = [latents(n, 1), latents(n, 2)];
    const base = { guidanceScale: 5, steps: 3, scheduler: 'ddim' as const };
    const both = await generateFromText(rt, m, { ...base, prompt: ['a cat', 'a dog on a hill'], negativePrompt: ['', 'fog'], latents: Float32Array.from([...la, ...lb]) });
    const a = await generateFromText(rt, m, { ...base, prompt: 'a cat', latents: la });
    const b = await generateFromText(rt, m, { ...base, prompt: 'a dog on a hill', negativePrompt: 'fog', latents: lb });
    const half = a.image.length;
    const errA = maxDiff(both.image.subarray(0, half), a.image) / maxAbs(a.image);
    const errB = maxDiff(both.image.subarray(half), b.image) / maxAbs(b.image);
    console.log(`batch of 2 vs alone: ${errA.toExponential(2)}, ${errB.toExponential(2)}`);
    expect(errA).toBeLessThanOrEqual(1e-5);
    expect(errB).toBeLessThanOrEqual(1e-5);
    // The prompts matter: the two images differ.
    expect(maxDiff(a.image, b.image)).toBeGreaterThan(0.05);
  });

  it('latents given with init_noise_sigma already in them (as the traces record them) are not scaled again (Euler: σ0 > 1)', async () => {
    const rt = await runtime();
    const m = await sd();
    const l = latents(4 * 8 * 8, 3);
    const base = { prompt: 'a kite', steps: 3, guidanceScale: 5, scheduler: 'euler' as const };
    const plain = await generateFromText(rt, m, { ...base, latents: l });
    const sigma = plain.scheduler.initNoiseSigma;
    expect(sigma).toBeGreaterThan(1);
    const scaled = await generateFromText(rt, m, { ...base, latents: l.map((v) => Math.fround(v * sigma)), latentsScaled: true });
    const err = maxDiff(scaled.latents, plain.latents) / maxAbs(plain.latents);
    console.log(`pre-scaled vs scaled-by-the-loop latents (σ0 ${sigma.toFixed(3)}): rel ${err.toExponential(2)}`);
    expect(err).toBeLessThanOrEqual(1e-6);
  });

  it('guidance_rescale rescales the guided prediction by φ·std(cond)/std(guided) + 1 − φ (first step)', async () => {
    const rt = await runtime();
    const m = await sd();
    const l = latents(4 * 8 * 8, 4);
    const first = async (guidanceScale: number, guidanceRescale: number) => {
      let eps: Float32Array | null = null;
      await generateFromText(rt, m, { prompt: 'a tree', negativePrompt: 'snow', steps: 2, scheduler: 'ddim', latents: l, guidanceScale, guidanceRescale, trace: (i, e) => (eps ??= e) });
      return eps!;
    };
    const [cond, guided, rescaled] = [await first(1, 0), await first(7.5, 0), await first(7.5, 0.7)];
    const std = (v: Float32Array) => {
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
    };
    const f = (0.7 * std(cond)) / std(guided) + 0.3;
    const err = maxDiff(rescaled, guided.map((v) => v * f)) / maxAbs(rescaled);
    console.log(`guidance_rescale 0.7: factor ${f.toFixed(4)}, rel err ${err.toExponential(2)}`);
    expect(Math.abs(f - 1)).toBeGreaterThan(1e-3);
    expect(err).toBeLessThanOrEqual(1e-5);
  });

  it('takes other sizes (24x16 → 12x8 latents, an odd 20x12 → 10x6) and refuses sizes the VAE cannot make', async () => {
    const rt = await runtime();
    const m = await sd();
    for (const [width, height] of [[24, 16], [20, 12]] as const) {
      const r = await generateFromText(rt, m, { prompt: 'a boat', width, height, steps: 2, guidanceScale: 3, seed: 5, scheduler: 'euler' });
      expect(r.imageShape).toEqual([1, 3, height, width]);
      expect(r.image.every(Number.isFinite)).toBe(true);
    }
    await expect(generateFromText(rt, m, { prompt: 'a boat', width: 17, steps: 1 })).rejects.toThrow(/width 17 must be a positive multiple of 2/);
  });

  it('img2img and inpainting with a prompt: an all-zero mask keeps the encoded init image', async () => {
    const rt = await runtime();
    const m = await sd();
    const img = Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.cos(i * 0.37) * 0.8);
    const r = await generateFromText(rt, m, { prompt: 'a house', steps: 4, guidanceScale: 4, scheduler: 'ddim', seed: 9, initImage: img, strength: 0.5, mask: new Float32Array(16 * 16) });
    expect(r.startStep).toBe(2);
    const keep = maxDiff(r.latents, r.initLatents!) / maxAbs(r.initLatents!);
    console.log(`text inpainting, zero mask: final vs init latents rel ${keep.toExponential(2)}`);
    expect(keep).toBeLessThanOrEqual(1e-6);
    const moved = await generateFromText(rt, m, { prompt: 'a house', steps: 4, guidanceScale: 4, scheduler: 'ddim', seed: 9, initImage: img, strength: 0.5 });
    expect(maxDiff(moved.latents, moved.initLatents!)).toBeGreaterThan(0.01);
  });
});

describe('fresco generate --prompt (CLI)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fresco-sd-'));
  const fresco = (...args: string[]) => runFresco(['generate', ...args]);

  it('writes the image for a prompt with a negative prompt and a size', () => {
    const out = join(dir, 'sd.png');
    const r = fresco('--model', MODEL, '--prompt', 'a lighthouse', '--negative-prompt', 'blurry', '--width', '24', '--height', '16', '--steps', '3', '--seed', '2', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/3 pndm steps/);
    const png = decodePng(new Uint8Array(readFileSync(out)));
    expect([png.width, png.height]).toEqual([24, 16]);
  });

  it('a prompt for a class-conditional model, a class for a text model, or no prompt are usage errors', () => {
    const classForText = fresco('--model', MODEL, '--class', '1', '--out', join(dir, 'x.png'));
    expect(classForText.status).toBe(2);
    expect(classForText.stderr).toMatch(/text-to-image model: --prompt is required|takes --prompt, not --class/);
    const promptForClass = fresco('--prompt', 'a shoe', '--out', join(dir, 'y.png'));
    expect(promptForClass.status).toBe(2);
    expect(promptForClass.stderr).toMatch(/class-conditional: it takes --class, not --prompt/);
    const both = fresco('--model', MODEL, '--prompt', 'a', '--class', '1');
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--prompt and --class do not go together/);
  });
});
