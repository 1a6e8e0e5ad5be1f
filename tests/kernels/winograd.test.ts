// Which convs take the Winograd path (src/kernels/winograd.ts winogradPlan) and what the weight
// transform refuses; the op table's [winograd] rows check what the path computes.
import { describe, expect, it } from 'vitest';
import { isCpuAdapter } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { uploadQuantized } from '../../src/kernels/cast.ts';
import { makeWinogradWeight, registerDerived, transformOnce, winogradPlan } from '../../src/kernels/winograd.ts';
import { quantize } from '../../src/io/quant.ts';
import { GpuError } from '../../src/errors.ts';
import { input, randn, runtime, withRuntime } from '../helpers/gpu.ts';

describe('Winograd convs', () => {
  it('are on by default on CPU adapters only', async () => {
    const rt = await runtime();
    expect(rt.winograd).toBe(isCpuAdapter(rt.gpu.adapterName));
  });

  it('take a registered float 3x3 stride-1 conv with enough rows times channels, within the binding limit, and nothing else', async () => {
    const rt = await runtime();
    const C = 64;
    const owned = input(rt, randn(C * C * 9), [C, C, 3, 3], 'owned');
    registerDerived(owned, transformOnce(rt));
    const unowned = input(rt, randn(C * C * 9), [C, C, 3, 3], 'unowned');
    const pointwise = input(rt, randn(C * C), [C, C, 1, 1], 'pointwise');
    registerDerived(pointwise, transformOnce(rt));
    // 8x8 outputs at batch 1: 16 tiles of 2x2 times 64 channels = 1024, the default threshold.
    const at = { stride: 1, B: 1, Hout: 8, Wout: 8, dtype: 'f32' as const };
    await withRuntime(rt, { winograd: true }, async () => {
      const g = new Graph(rt, 'plans');
      const plan = winogradPlan(g, owned, at);
      expect(plan).not.toBeNull();
      // 16 planes of 64 rows in groups of four (vec4s of Cin each), tiles of the 8x8 output.
      expect(plan).toMatchObject({ wPlane: (64 / 4) * C, tw: 4, tiles: 16, Mw: 16 });
      expect(plan!.w.shape).toEqual([16 * C, C]);
      expect(plan!.w.layout).toBe('n4');
      expect(winogradPlan(g, owned, at)!.w).toBe(plan!.w);
      expect(winogradPlan(g, owned, { ...at, stride: 2 })).toBeNull();
      expect(winogradPlan(g, owned, { ...at, Hout: 6, Wout: 6 })).toBeNull();
      expect(winogradPlan(g, unowned, at)).toBeNull();
      expect(winogradPlan(g, pointwise, at)).toBeNull();
      await withRuntime(rt, { winogradMinWork: 0 }, async () => expect(winogradPlan(g, owned, { ...at, Hout: 2, Wout: 2 })).not.toBeNull());
      // The transformed weight alone is 16·64·64·4 = 256 KiB.
      await withRuntime(rt, { planLimits: { ...rt.planLimits, binding: 128 * 1024 } }, async () => expect(winogradPlan(g, owned, at)).toBeNull());
      g.destroy();
    });
    await withRuntime(rt, { winograd: false }, async () => expect(winogradPlan(new Graph(rt, 'off'), owned, at)).toBeNull());
  });

  it('refuse to transform anything but a float [Cout, Cin, 3, 3] weight, naming it', async () => {
    const rt = await runtime();
    expect(() => makeWinogradWeight(rt, input(rt, randn(16), [4, 4, 1, 1], 'proj'))).toThrow(GpuError);
    expect(() => makeWinogradWeight(rt, input(rt, randn(16), [4, 4, 1, 1], 'proj'))).toThrow(/proj: a Winograd weight transform needs a float \[Cout, Cin, 3, 3\] weight, not \[4, 4, 1, 1\]/);
    const q = uploadQuantized(rt, quantize('q8', randn(4 * 36), 4, 36), [4, 4, 3, 3], 'quantized conv');
    expect(() => makeWinogradWeight(rt, q)).toThrow(/quantized conv: .* not a q8 one/);
  });
});
