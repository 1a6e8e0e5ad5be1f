// A VAE whose up blocks have attention (AttnUpDecoderBlock2D) under a binding limit that chunks
// the attention's level: the attention mixes every channel of a pixel, so whole() refuses the
// chunked tensor by name (a PlanLimitError), and planGraph then plans within the device's own
// limits, where the decode equals the unchunked one. vae-decode-attn's finest level is
// 2 x 8 x 20 x 28 f32 = 35840 bytes; a 20000-byte limit cuts it.
import { describe, expect, it } from 'vitest';
import { Graph, planGraph } from '../../src/graph/graph.ts';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { AutoencoderKL } from '../../src/models/autoencoder_kl.ts';
import { readAutoencoderKLConfig } from '../../src/models/autoencoder_kl_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { compare } from '../helpers/compare.ts';
import { input, randn, runGraphWithPlan, runtime } from '../helpers/gpu.ts';
import { PlanLimitError } from '../../src/errors.ts';

describe('AutoencoderKL decode with attention blocks over channel chunks', () => {
  it('refuses to chunk an attention input by name, and planGraph falls back to the device limits', async () => {
    const rt = await runtime();
    const saved = rt.planLimits;
    const folder = await loadModelFolder('tests/fixtures/variants/vae-decode-attn');
    const vae = buildModel(AutoencoderKL, rt, folder.weights, readAutoencoderKLConfig(folder.config));
    const z = randn(2 * 3 * 5 * 7, 5);
    try {
      const plain = await runGraphWithPlan(rt, 'vae-attn-plain', (g) => vae.decode(g, input(rt, z, [2, 3, 5, 7], 'z')));
      rt.planLimits = { binding: 20000, buffer: saved.buffer };
      const g = new Graph(rt, 'vae-attn-chunked');
      try {
        expect(() => vae.decode(g, input(rt, z, [2, 3, 5, 7], 'z'))).toThrow(PlanLimitError);
        expect(() => vae.decode(g, input(rt, z, [2, 3, 5, 7], 'z'))).toThrow(/up_blocks\.2\.attentions\.0.*needs it whole/);
      } finally {
        g.destroy();
      }
      const zt = input(rt, z, [2, 3, 5, 7], 'z');
      const { g: planned, out } = planGraph(rt, 'vae-attn-fallback', (pg) => vae.decode(pg, zt));
      try {
        expect(planned.stats.maxBindingBytes).toBeGreaterThan(20000);
        planned.submit();
        await rt.assertHealthy();
        const got = await rt.read(out.buffer, plain.out.length * 4);
        const c = compare(got, plain.out, 1e-6, 1e-6);
        expect(c.ok, c.report).toBe(true);
      } finally {
        planned.destroy();
        rt.destroyBuffer(zt.buffer);
      }
    } finally {
      rt.planLimits = saved;
      vae.destroy();
    }
  });
});
