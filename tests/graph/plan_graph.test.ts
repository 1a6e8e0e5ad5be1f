// planGraph: a graph that fits WebGPU's default limits is planned within them; one that does not
// falls back to the device's own limits where they are larger, with the same result; past those
// too, the error names the image size. Planning errors leave no error scope open behind them.
import { describe, expect, it } from 'vitest';
import { GpuError, PlanLimitError, type Runtime } from '../../src/gpu/runtime.ts';
import { planGraph } from '../../src/graph/graph.ts';
import { scale } from '../../src/kernels/elementwise.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import { loadLdmFolder } from '../../src/pipelines/ldm_folder.ts';
import { input, randn, runtime } from '../helpers/gpu.ts';

/** Runs f with rt's plan limits (and, with `device`, its device limits) lowered. */
async function withLimits<T>(rt: Runtime, plan: Runtime['planLimits'], device: Runtime['deviceLimits'] | null, f: () => Promise<T>): Promise<T> {
  const saved = { plan: rt.planLimits, device: rt.deviceLimits };
  rt.planLimits = plan;
  if (device) (rt as { deviceLimits: Runtime['deviceLimits'] }).deviceLimits = device;
  try {
    return await f();
  } finally {
    rt.planLimits = saved.plan;
    (rt as { deviceLimits: Runtime['deviceLimits'] }).deviceLimits = saved.device;
  }
}

describe('planGraph', () => {
  it('keeps to the plan limits when the graph fits them, and falls back to the device limits when not', async () => {
    const rt = await runtime();
    const x = input(rt, randn(4096, 1), [4096], 'x');
    const build = (g: Parameters<Parameters<typeof planGraph>[2]>[0]) => scale(g, 'double', x, 2);
    await withLimits(rt, { binding: 65536, buffer: 65536 }, null, async () => {
      const { g } = planGraph(rt, 'fits', build);
      expect(g.limits).toBe(rt.planLimits);
      g.destroy();
    });
    // 16 KiB tensors over 4 KiB plan limits: planned again within the device's limits.
    await withLimits(rt, { binding: 4096, buffer: 4096 }, null, async () => {
      const { g, out } = planGraph(rt, 'falls-back', build);
      expect(g.limits.binding).toBe(rt.deviceLimits.binding);
      g.submit();
      await rt.assertHealthy();
      const got = await rt.read(out.buffer, 4096 * 4);
      const want = randn(4096, 1).map((v) => v * 2);
      expect(Array.from(got)).toEqual(Array.from(want));
      g.destroy();
    });
    // Device limits no larger than the plan's: the plan error stands.
    await withLimits(rt, { binding: 4096, buffer: 4096 }, { binding: 4096, buffer: 4096 }, async () => {
      expect(() => planGraph(rt, 'too-big', build)).toThrow(PlanLimitError);
    });
    // The failed finalize popped its error scopes: a later validation error is still reported.
    await rt.assertHealthy();
    rt.watch('bad copy', () => {
      const enc = rt.device.createCommandEncoder();
      enc.copyBufferToBuffer(x.buffer, 0, x.buffer, 0, 4);
      rt.device.queue.submit([enc.finish()]);
    });
    await expect(rt.assertHealthy()).rejects.toThrow(GpuError);
  });

  it('a generation over the plan limits runs within the device limits, as it does within the defaults; past both, the error names the size', async () => {
    const rt = await runtime();
    const model = await loadLdmFolder(rt, 'weights/fashion-ldm');
    try {
      const opts = { classLabels: [7], nullClass: 10, guidanceScale: 3, steps: 2, scheduler: 'ddim' as const, seed: 5 };
      const plain = await generateClassConditional(rt, model, opts);
      const held = rt.liveBytes;
      // 16 KiB: the VAE decoder's first plan chunks its convs (slicing their weights) and then
      // meets tensors it cannot split; the U-Net's whole tensors do not fit either.
      const low = await withLimits(rt, { binding: 16384, buffer: 16384 }, null, () => generateClassConditional(rt, model, opts));
      expect(Array.from(low.image)).toEqual(Array.from(plain.image));
      // The abandoned plans' weight slices (the VAE decoder's chunked convs) were freed with them.
      expect(rt.liveBytes).toBe(held);
      await withLimits(rt, { binding: 4096, buffer: 4096 }, { binding: 4096, buffer: 4096 }, async () => {
        await expect(generateClassConditional(rt, model, opts)).rejects.toThrow(/32x32 images are too large for this model on this adapter: .*(needs \d+ bytes|over the binding limit)/);
      });
    } finally {
      model.destroy();
    }
  });
});
