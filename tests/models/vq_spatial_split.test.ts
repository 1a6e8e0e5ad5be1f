// VQModel norm_type 'spatial' with an up level split into channel chunks (as a large decode is
// under the default binding limit): each chunk's SpatialNorm takes the matching rows of conv_y /
// conv_b, so the result equals the unsplit plan. With the vq-spatial-odd weights (64 × 64 × 3 × 3
// f32 convs: 147456 bytes) and a 16 × 16 latent, a 150000-byte binding limit keeps the mid block
// whole (64 × 16² f32 = 65536 bytes) and cuts the 64 × 32² level (262144 bytes) in two.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { loadModelFolder } from '../../src/io/model_folder.ts';
import { VQModel } from '../../src/models/vq_model.ts';
import { readVQModelConfig } from '../../src/models/vq_model_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { compare } from '../helpers/compare.ts';
import { input, randn, runGraphWithPlan, runtime } from '../helpers/gpu.ts';

const LATENT = 16;

function decode(rt: Runtime, vq: VQModel, z: Float32Array): Promise<{ out: Float32Array; g: Graph }> {
  return runGraphWithPlan(rt, 'vq-spatial-split', (g) => vq.decode(g, input(rt, z, [1, 4, LATENT, LATENT], 'z')));
}

describe('VQModel spatial decode over channel chunks', () => {
  it('equals the unsplit plan', async () => {
    const rt = await runtime();
    const saved = rt.planLimits;
    const folder = await loadModelFolder('tests/fixtures/variants/vq-spatial-odd');
    const vq = buildModel(VQModel, rt, folder.weights, readVQModelConfig(folder.config));
    const z = randn(4 * LATENT * LATENT, 21);
    try {
      const plain = await decode(rt, vq, z);
      rt.planLimits = { binding: 150000, buffer: saved.buffer };
      const split = await decode(rt, vq, z);
      expect(plain.g.stats.maxBindingBytes).toBeGreaterThan(150000);
      expect(split.g.stats.maxBindingBytes).toBeLessThanOrEqual(150000);
      const c = compare(split.out, plain.out, 1e-5, 1e-5);
      console.log(`split vs unsplit spatial decode: max|err| ${c.maxAbsErr.toExponential(2)}, max|ref| ${c.maxAbsRef.toFixed(3)}`);
      expect(c.ok, c.report).toBe(true);
    } finally {
      rt.planLimits = saved;
      vq.destroy();
    }
  });
});
