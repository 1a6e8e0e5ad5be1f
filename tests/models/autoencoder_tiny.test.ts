// AutoencoderTiny.encode has no diffusers fixture: check the GPU graph against a float64 CPU
// transcription of diffusers' EncoderTiny, run on the taesd fixture's (random) weights.
import { describe, expect, it } from 'vitest';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { AutoencoderTiny } from '../../src/models/autoencoder_tiny.ts';
import { readAutoencoderTinyConfig } from '../../src/models/autoencoder_tiny_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { input, randn, runGraph, runtime } from '../helpers/gpu.ts';
import { conv2dRef } from '../ref/gemm.ts';

const DIR = 'tests/fixtures/taesd';

/** EncoderTiny.forward: layers((x + 1) / 2), with the layer list diffusers builds for this config. */
async function encodeRef(image: Float32Array, S: number): Promise<Float64Array> {
  const { weights: store, config } = await loadModelFolder(DIR);
  const ch = (config.encoder_block_out_channels as number[])[0]!;
  const blocks = config.num_encoder_blocks as number[];
  const latent = config.latent_channels as number;
  let C = 3, H = S, W = S;
  let x: ArrayLike<number> = Float64Array.from(image, (v) => (v + 1) / 2);
  const conv = (idx: string, cout: number, stride: number, relu: boolean, residual?: ArrayLike<number>) => {
    const weight = store.take(`encoder.layers.${idx}.weight`, [cout, C, 3, 3]);
    // The stride-2 downsampling convs have no bias.
    const bias = store.optional(`encoder.layers.${idx}.bias`, [cout]);
    const r = conv2dRef(x, weight, bias, { B: 1, Cin: C, H, W, Cout: cout, kh: 3, kw: 3, stride, pad: [1, 1, 1, 1] });
    const out = r.out.map((v, i) => {
      const y = v + (residual ? residual[i]! : 0);
      return relu ? Math.max(y, 0) : y;
    });
    return { out, H: r.Hout, W: r.Wout };
  };
  let idx = 0;
  const step = (o: { out: Float64Array; H: number; W: number }, cout: number) => ((x = o.out), (H = o.H), (W = o.W), (C = cout));
  blocks.forEach((n, i) => {
    step(conv(`${idx++}`, ch, i === 0 ? 1 : 2, false), ch);
    for (let b = 0; b < n; b++) {
      const skip = x;
      step(conv(`${idx}.conv.0`, ch, 1, true), ch);
      step(conv(`${idx}.conv.2`, ch, 1, true), ch);
      step(conv(`${idx}.conv.4`, ch, 1, true, skip), ch);
      idx++;
    }
  });
  step(conv(`${idx}`, latent, 1, false), latent);
  return x as Float64Array;
}

describe('AutoencoderTiny.encode', () => {
  it('matches a CPU transcription of EncoderTiny (odd size 20x20)', async () => {
    const rt = await runtime();
    const S = 20;
    const image = randn(3 * S * S, 4242);
    const folder = await loadModelFolder(DIR);
    const m = buildModel(AutoencoderTiny, rt, folder.weights, readAutoencoderTinyConfig(folder.config));
    try {
      const got = await runGraph(rt, (g) => m.encode(g, input(rt, image, [1, 3, S, S])));
      const ref = await encodeRef(image, S);
      expect(got.length).toBe(ref.length);
      let maxErr = 0, maxRef = 0;
      ref.forEach((r, i) => ((maxErr = Math.max(maxErr, Math.abs(got[i]! - r))), (maxRef = Math.max(maxRef, Math.abs(r)))));
      console.log(`taesd encode: max|err| ${maxErr.toExponential(2)} max|ref| ${maxRef.toExponential(2)} ratio ${(maxErr / maxRef).toExponential(2)}`);
      expect(maxErr).toBeLessThanOrEqual(1e-3 * maxRef);
    } finally {
      m.destroy();
    }
  });
});
