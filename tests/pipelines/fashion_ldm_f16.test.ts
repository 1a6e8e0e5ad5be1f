// The f16 path of the shipped model: the same pipeline with weights and activations stored in
// half precision stays finite and close to the f32 path and to the diffusers reference run.
import { describe, expect, it } from 'vitest';
import { runPipelineCase } from '../../src/conformance/pipeline_case.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import { loadLdmFolder } from '../../src/pipelines/ldm_folder.ts';
import { hasF16, runtime } from '../helpers/gpu.ts';

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

describe('fashion-ldm in f16', () => {
  it('a few DDIM steps: finite, and within 2e-2·max|f32| of the f32 path', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) {
      console.warn(`skipped: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
      ctx.skip();
    }
    const L = Float32Array.from({ length: 2 * 4 * 8 * 8 }, (_, i) => Math.sin(i * 7.13) * 1.2);
    const opts = { classLabels: [7, 2], nullClass: 10, guidanceScale: 3, steps: 4, scheduler: 'ddim' as const, latents: L };
    const run = async (precision: 'f32' | 'f16') => {
      const m = await loadLdmFolder(rt, 'weights/fashion-ldm', { precision });
      try {
        expect(m.precision.dtype).toBe(precision);
        return await generateClassConditional(rt, m, opts);
      } finally {
        m.destroy();
      }
    };
    const a = await run('f32');
    const h = await run('f16');
    expect(h.image.every(Number.isFinite), 'f16 image has NaN/Inf').toBe(true);
    expect(h.latents.every(Number.isFinite), 'f16 latents have NaN/Inf').toBe(true);
    const err = maxAbs(h.image.map((v, i) => v - a.image[i]!));
    const ratio = err / maxAbs(a.image);
    console.log(`fashion-ldm f16 vs f32, 4 DDIM steps: image max|err| ${err.toExponential(2)} ratio ${ratio.toExponential(2)}`);
    // f16 storage is this sensitive to rounding: the same f16 run with the norms' f32 statistics
    // summed in another order (subgroup vs workgroup-tree reductions, 1e-5 apart in f32) moved
    // by 7e-3 to 1.2e-2·max over four inputs, and f16 against f32 measured 4.8e-3 to 1.3e-2
    // (2026-12-07). Against diffusers the f16 image stays within 1e-2 (the next test).
    expect(ratio).toBeLessThanOrEqual(2e-2);
    // Not the f32 result by another name: f16 storage must change the low bits.
    expect(err).toBeGreaterThan(0);
  });

  it('reproduces the diffusers run: latents and image within 1e-2·max|ref|, guided eps within 7e-2 (guidance 3)', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) {
      console.warn(`skipped: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
      ctx.skip();
    }
    const r = await runPipelineCase(rt, 'tests/fixtures/pipeline-fashion-ldm', 'f16');
    console.log(`pipeline-fashion-ldm [f16]: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
    expect(r.note).toBeUndefined();
    expect(r.ratio).toBeLessThanOrEqual(7e-2);
    expect(r.pass).toBe(true);
  });
});
