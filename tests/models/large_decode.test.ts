// A VAE decode whose activations pass WebGPU's default 128 MiB binding limit runs within the
// default limits (channel chunks), and equals the same decode planned as whole tensors where the
// adapter allows bindings that large. Narrow channels keep the arithmetic small: 8 channels at
// 2064×2064 in f32 are 136 MB, the same overflow Stable Diffusion's VAE has at 512×512 with 256.
import { describe, expect, it } from 'vitest';
import { DEFAULT_PLAN_LIMITS, type Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { RandomWeightStore } from '../../src/io/random_weights.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { compare } from '../helpers/compare.ts';
import { input, randn, runGraphWithPlan, runtime } from '../helpers/gpu.ts';

const config = {
  _class_name: 'AutoencoderKL',
  in_channels: 3,
  out_channels: 3,
  latent_channels: 4,
  block_out_channels: [4, 8],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  // Attention over a 1032² latent would be 10^12 scores; the test is about the high-res levels.
  mid_block_add_attention: false,
};
const LATENT = 1032;

function decode(rt: Runtime, vae: AutoencoderKL, z: Float32Array): Promise<{ out: Float32Array; g: Graph }> {
  return runGraphWithPlan(rt, 'large-decode', (g) => vae.decode(g, input(rt, z, [1, 4, LATENT, LATENT], 'z')));
}

describe('a decode past the default binding limit', () => {
  it('runs within WebGPU default limits and matches the unsplit plan', async () => {
    const rt = await runtime();
    const saved = rt.planLimits;
    const vae = buildModel(AutoencoderKL, rt, new RandomWeightStore(7), readAutoencoderKLConfig(config));
    const z = randn(4 * LATENT * LATENT, 11);
    try {
      rt.planLimits = { ...DEFAULT_PLAN_LIMITS };
      const split = await decode(rt, vae, z);
      console.log(`split decode: largest binding ${split.g.stats.maxBindingBytes} bytes, largest buffer ${split.g.stats.maxBufferBytes} bytes`);
      expect(split.g.stats.maxBindingBytes).toBeLessThanOrEqual(DEFAULT_PLAN_LIMITS.binding);
      expect(split.g.stats.maxBufferBytes).toBeLessThanOrEqual(DEFAULT_PLAN_LIMITS.buffer);
      expect(split.out.every(Number.isFinite)).toBe(true);

      const l = rt.device.limits;
      const need = 8 * (2 * LATENT) ** 2 * 4;
      if (l.maxStorageBufferBindingSize < need || l.maxBufferSize < need) {
        console.log(`adapter binds at most ${l.maxStorageBufferBindingSize} bytes: no unsplit plan to compare with`);
        return;
      }
      rt.planLimits = { binding: l.maxStorageBufferBindingSize, buffer: l.maxBufferSize };
      const plain = await decode(rt, vae, z);
      expect(plain.g.stats.maxBindingBytes).toBeGreaterThan(DEFAULT_PLAN_LIMITS.binding);
      const c = compare(split.out, plain.out, 1e-5, 1e-5);
      console.log(`split vs unsplit decode: max|err| ${c.maxAbsErr.toExponential(2)}, max|ref| ${c.maxAbsRef.toFixed(3)}`);
      expect(c.ok, c.report).toBe(true);
    } finally {
      rt.planLimits = saved;
      vae.destroy();
    }
  });
});
