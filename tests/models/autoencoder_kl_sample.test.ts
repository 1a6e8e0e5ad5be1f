// AutoencoderKL.encode: a sample mean + std·ε of the posterior with ε from the Philox noise, on
// the vae-kl-encode fixture (whose output is diffusers' posterior mean).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { readSafetensorsFile, toFloat32 } from '../../src/io/safetensors.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { compare } from '../helpers/compare.ts';
import { input, runGraph, runtime } from '../helpers/gpu.ts';

const FIX = 'tests/fixtures/vae-kl-encode';
/** Copies of the fixture image in one batch: each gets its own noise, so one run gives R draws per latent. */
const R = 64;
const LAT = [4, 4, 4];
const per = LAT.reduce((a, b) => a * b, 1);

let rt: Runtime;
let vae: AutoencoderKL;
let image: Float32Array;
let refMean: Float32Array;

const imageT = (batch: number): Tensor => {
  const data = new Float32Array(batch * image.length);
  for (let b = 0; b < batch; b++) data.set(image, b * image.length);
  return input(rt, data, [batch, 3, 8, 8], 'image');
};
const sample = (batch: number, seed: number) => runGraph(rt, (g) => vae.encode(g, imageT(batch), { seed }));
const withNoise = (batch: number, value: number) =>
  runGraph(rt, (g) => vae.encode(g, imageT(batch), { noise: input(rt, new Float32Array(batch * per).fill(value), [batch, ...LAT], 'eps') }));

beforeAll(async () => {
  rt = await runtime();
  const folder = await loadModelFolder(FIX);
  vae = buildModel(AutoencoderKL, rt, folder.weights, readAutoencoderKLConfig(folder.config));
  const io = await readSafetensorsFile(`${FIX}/io.safetensors`);
  image = Float32Array.from(toFloat32(io.get('image')!));
  refMean = Float32Array.from(toFloat32(io.get('out')!));
});

describe('AutoencoderKL.encode (posterior sample)', () => {
  it('with ε = 0 is exactly encodeMean, which matches diffusers\' mean', async () => {
    const zero = await withNoise(2, 0);
    const mean = await runGraph(rt, (g) => vae.encodeMean(g, imageT(2)));
    expect(Array.from(zero)).toEqual(Array.from(mean));
    const cmp = compare(zero.subarray(0, per), refMean, 1e-4, 1e-3);
    console.log(`encode(ε = 0) vs diffusers mean: ${cmp.report.split('\n')[0]}`);
    expect(cmp.ok, cmp.report).toBe(true);
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const a = await sample(2, 11);
    const b = await sample(2, 11);
    const c = await sample(2, 12);
    expect(Array.from(a)).toEqual(Array.from(b));
    const differ = a.filter((v, i) => v !== c[i]).length;
    expect(differ).toBe(a.length);
    // The two batch copies of one image draw different noise too.
    expect(a.subarray(0, per).some((v, i) => v !== a[per + i])).toBe(true);
  });

  it('per channel, (sample − mean) / std over many draws is standard normal', async () => {
    // std·1 = encode(ε = 1) − encode(ε = 0): the model's own std, from the logvar half of quant_conv.
    const zero = (await withNoise(1, 0)).subarray(0, per);
    const std = (await withNoise(1, 1)).map((v, i) => v - zero[i]!);
    expect(std.every((s) => s > 0 && Number.isFinite(s))).toBe(true);
    const draws = await sample(R, 2024);
    const [C, h, w] = LAT as [number, number, number];
    const n = R * h * w;
    for (let c = 0; c < C; c++) {
      let s1 = 0;
      let s2 = 0;
      let m1 = 0;
      for (let r = 0; r < R; r++)
        for (let p = 0; p < h * w; p++) {
          const j = c * h * w + p;
          // Centered on diffusers' mean (the fixture), scaled by the std.
          const z = (draws[r * per + j]! - refMean[j]!) / std[j]!;
          s1 += z;
          s2 += z * z;
          m1 += draws[r * per + j]!;
        }
      const zMean = s1 / n;
      const zStd = Math.sqrt(s2 / n - zMean * zMean);
      let refC = 0;
      for (let p = 0; p < h * w; p++) refC += refMean[c * h * w + p]!;
      console.log(`channel ${c}: z mean ${zMean.toFixed(4)} z std ${zStd.toFixed(4)} (n ${n}); sample mean ${(m1 / n).toFixed(4)} vs diffusers mean ${(refC / (h * w)).toFixed(4)}`);
      // 5 standard errors: 1/√n for the mean, 1/√(2n) for the std of a normal sample.
      expect(Math.abs(zMean)).toBeLessThan(5 / Math.sqrt(n));
      expect(Math.abs(zStd - 1)).toBeLessThan(5 / Math.sqrt(2 * n));
    }
  });

  it('names a noise tensor of the wrong shape', async () => {
    await expect(runGraph(rt, (g) => vae.encode(g, imageT(1), { noise: input(rt, new Float32Array(per * 2), [2, ...LAT], 'eps') }))).rejects.toThrow(/noise \[2, 4, 4, 4\] should be \[1, 4, 4, 4\]/);
  });
});
