// precision 'auto' on a device without shader-f16: f32 activations beside f16 weights, read as
// packed u32 words (src/kernels/dtype.ts weightParams). The models still reproduce diffusers within
// the f16 bound, and their weights take half the GPU memory of the f32 build.
import { describe, expect, it } from 'vitest';
import { runModelCase } from '../../src/conformance/model_case.ts';
import { runPipelineCase } from '../../src/conformance/pipeline_case.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { bytesFor, type DType } from '../../src/graph/tensor.ts';
import { conv2d } from '../../src/kernels/gemm.ts';
import { groupNorm } from '../../src/kernels/group_norm.ts';
import { chunkStarts, single, splitConv, splitGroupNorm, WeightSlices } from '../../src/models/channel_split.ts';
import { compare } from '../helpers/compare.ts';
import { runAndRead } from '../helpers/split.ts';
import { input, randn, withGemmFeed } from '../helpers/gpu.ts';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import type { Precision } from '../../src/models/precision.ts';
import { UNet2DModel } from '../../src/models/unet_2d.ts';
import { readUNet2DConfig } from '../../src/models/unet_2d_config.ts';
import { runtimeWithoutF16 } from '../helpers/weights.ts';

// The diffusers fixtures, and variant cases for the weights the fixtures do not read: a learned
// time table (nn.Embedding over timesteps), a class table, the f32 Fourier projection beside f16
// weights, SDXL's added embeddings, odd channel counts and SpatialNorm's sliced convs.
const cases = [
  ...['unet2d-classcond', 'unet2d-cond', 'unet2d-ddpm', 'vae-kl-decode', 'vae-kl-encode', 'vq', 'taesd', 'clip-text-tiny'],
  ...['unet2d-learned-time', 'unet-cond-class-embed', 'unet2d-fourier', 'unet-cond-sdxl', 'unet2d-odd', 'vq-spatial-odd'].map((v) => `variants/${v}`),
];

describe("precision 'auto' without shader-f16 (f32 activations, f16 weights) reproduces diffusers (max|err| <= 1e-2·max|ref|)", () => {
  for (const name of cases) {
    it(name, async () => {
      const rt = await runtimeWithoutF16();
      const r = await runModelCase(rt, `tests/fixtures/${name}`, 'auto');
      console.log(`${name} [f16 weights]: max|err| ${r.maxAbsErr.toExponential(2)} max|ref| ${r.maxAbsRef.toExponential(2)} ratio ${r.ratio.toExponential(2)}${r.detail ? ` (${r.detail})` : ''}`);
      expect(r.note).toBeUndefined();
      expect(r.ratio).toBeLessThanOrEqual(1e-2);
      expect(r.pass).toBe(true);
    });
  }

  it('the fashion-ldm pipeline run: every step, the latents and the image within 1e-2·max|ref|', async () => {
    const rt = await runtimeWithoutF16();
    const r = await runPipelineCase(rt, 'tests/fixtures/pipeline-fashion-ldm', 'auto');
    console.log(`pipeline-fashion-ldm [f16 weights]: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
    expect(r.note).toBeUndefined();
    expect(r.pass).toBe(true);
    // The f16 models' guided-eps allowance (7e-2 at guidance 3) is not needed: only the weights are rounded.
    expect(r.ratio).toBeLessThanOrEqual(1e-2);
  });
});

/** GPU bytes a build holds (Runtime.liveBytes counts every buffer the runtime creates). */
async function weightBytes<M extends { destroy(): void }>(rt: Runtime, build: (precision: Precision) => Promise<M>, precision: Precision): Promise<number> {
  const before = rt.liveBytes;
  const m = await build(precision);
  try {
    await rt.assertHealthy();
    return rt.liveBytes - before;
  } finally {
    m.destroy();
  }
}

/** What the file's tensors take stored in `dtype`, buffer by buffer as Runtime.createBuffer rounds them (16 bytes). */
async function fileBytes(dir: string, dtype: DType): Promise<number> {
  const { weights } = await loadModelFolder(dir);
  let sum = 0;
  for (const key of weights.keys()) {
    const n = weights.info(key)!.shape.reduce((a, b) => a * b, 1);
    sum += Math.max(16, Math.ceil(bytesFor(n, dtype) / 16) * 16);
  }
  return sum;
}

describe('f16 weights beside f32 activations take half the memory', () => {
  const models: { dir: string; build: (rt: Runtime, precision: Precision) => Promise<{ destroy(): void }> }[] = [
    {
      dir: 'weights/fashion-ldm/unet',
      build: async (rt: Runtime, precision: Precision) => {
        const f = await loadModelFolder('weights/fashion-ldm/unet');
        return buildModel(UNet2DModel, rt, f.weights, readUNet2DConfig(f.config, 'weights/fashion-ldm/unet'), { precision });
      },
    },
    {
      dir: 'tests/fixtures/vae-kl-decode',
      build: async (rt: Runtime, precision: Precision) => {
        const f = await loadModelFolder('tests/fixtures/vae-kl-decode');
        return buildModel(AutoencoderKL, rt, f.weights, readAutoencoderKLConfig(f.config, 'tests/fixtures/vae-kl-decode'), { precision });
      },
    },
  ];
  for (const m of models) {
    it(`${m.dir}: the GPU holds the f16 size of every weight ('auto'), about half the f32 build`, async () => {
      const rt = await runtimeWithoutF16();
      // Loaded for the tiled feed, GEMM weights are stored as the file has them (row-major); for
      // the direct feed ('n4', Tensor.layout) their output channels are padded to a multiple of 4.
      for (const feed of ['tiled', 'direct'] as const) {
        const f32 = await withGemmFeed(rt, feed, () => weightBytes(rt, (p) => m.build(rt, p), 'f32'));
        const auto = await withGemmFeed(rt, feed, () => weightBytes(rt, (p) => m.build(rt, p), 'auto'));
        const ratio = auto / f32;
        console.log(`${m.dir} [${feed} feed]: weights on the GPU f32 ${(f32 / 2 ** 20).toFixed(2)} MiB, f16 beside f32 activations ${(auto / 2 ** 20).toFixed(2)} MiB (${ratio.toFixed(4)})`);
        if (feed === 'tiled') {
          expect(f32).toBe(await fileBytes(m.dir, 'f32'));
          expect(auto).toBe(await fileBytes(m.dir, 'f16'));
        }
        // Half, but for the 16-byte rounding of small tensors (biases, norms).
        expect(ratio).toBeGreaterThanOrEqual(0.5);
        expect(ratio).toBeLessThan(0.51);
      }
    });
  }
});

// Weight slices (channel_split.ts WeightSlices) copy whole 4-byte words: with f16 weights a slice
// must start at an even channel, even where the activations are f32 and their groups are odd.
describe('channel chunks with f16 weights beside f32 activations', () => {
  it('chunks start at even channels where the weights are f16', () => {
    // 10 channels of 8x8 f32 (256 bytes each), 3 to a 768-byte binding, groups of one channel.
    const limits = { binding: 768, buffer: 1 << 20 };
    expect(chunkStarts([1, 10, 8, 8], 'f32', limits, 10)).toEqual([0, 3, 6, 9]);
    expect(chunkStarts([1, 10, 8, 8], 'f32', limits, 10, 'f16')).toEqual([0, 2, 4, 6, 8]);
    expect(chunkStarts([1, 10, 8, 8], 'f32', limits, 10, 'f32')).toEqual([0, 3, 6, 9]);
  });

  it('a chunked conv, norm and conv over chunks (weights sliced on the GPU) equal the plain kernels, on a device without shader-f16', async () => {
    const rt = await runtimeWithoutF16();
    const [B, C, H, W, C1, C2] = [1, 3, 8, 8, 10, 4];
    const f16 = (data: Float32Array, shape: number[], label: string) => input(rt, data, shape, label, 'f16');
    const x = input(rt, randn(B * C * H * W, 31), [B, C, H, W], 'x', 'f32');
    const conv1 = { weight: f16(randn(C1 * C * 9, 32, 0.3), [C1, C, 3, 3], 'w1'), bias: f16(randn(C1, 33, 0.5), [C1], 'b1') };
    const norm = { weight: f16(randn(C1, 34, 0.5).map((v) => v + 1), [C1], 'gamma'), bias: f16(randn(C1, 35, 0.5), [C1], 'beta') };
    const conv2 = { weight: f16(randn(C2 * C1 * 9, 36, 0.3), [C2, C1, 3, 3], 'w2'), bias: f16(randn(C2, 37, 0.5), [C2], 'b2') };
    const opts = { groups: C1, eps: 1e-6, silu: true };

    const plain = new Graph(rt, 'plain');
    const h = conv2d(plain, 'c1', x, conv1.weight, { bias: conv1.bias, padding: 1 });
    const n = groupNorm(plain, 'n', h, norm.weight, norm.bias, opts);
    const y = conv2d(plain, 'c2', n, conv2.weight, { bias: conv2.bias, padding: 1 });
    const refs = await runAndRead(rt, plain, [h, n, y]);

    const owned: GPUBuffer[] = [];
    const slices = new WeightSlices(rt, (b) => owned.push(b));
    const saved = rt.planLimits;
    rt.planLimits = { binding: 768, buffer: saved.buffer };
    try {
      const g = new Graph(rt, 'split');
      const hs = splitConv(g, slices, 'c1', single(x), conv1, { groups: C1, padding: 1 });
      const ns = splitGroupNorm(g, slices, 'n', hs, norm, opts);
      const ys = splitConv(g, slices, 'c2', ns, conv2, { groups: C2, padding: 1 });
      // Five chunks of two channels: bias, norm and input-channel slices at even channels.
      expect(hs.starts).toEqual([0, 2, 4, 6, 8]);
      expect(hs.parts.every((p) => p.dtype === 'f32' || p.dtype === undefined)).toBe(true);
      const gots = await runAndRead(rt, g, [hs, ns, ys]);
      for (const [i, what] of ['conv', 'norm + silu', 'conv summed over five input chunks'].entries()) {
        const c = compare(gots[i]!, refs[i]!, 1e-5, 1e-5);
        console.log(`chunked ${what} [f16 weights]: max|err| ${c.maxAbsErr.toExponential(2)}`);
        expect(c.ok, c.report).toBe(true);
      }
    } finally {
      rt.planLimits = saved;
      for (const b of owned) rt.destroyBuffer(b);
    }
  });
});
