// planGraph: a graph that fits WebGPU's default limits is planned within them; one that does not
// falls back to the device's own limits where they are larger, with the same result; past those
// too, the error names the image size. Planning errors leave no error scope open behind them.
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { planGraph } from '../../src/graph/graph.ts';
import { scale } from '../../src/kernels/elementwise.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import { loadLdmFolder } from '../../src/pipelines/ldm_folder.ts';
import { loadSdFolder } from '../../src/pipelines/sd_folder.ts';
import { generateFromText } from '../../src/pipelines/text_to_image.ts';
import { hasF16, input, randn, runtime } from '../helpers/gpu.ts';
import { GpuError, PlanLimitError } from '../../src/errors.ts';

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

  // The U-Net's whole tensors pass through the chunked conv (ResnetBlock2D.forward is its split
  // path on one chunk): a size whose conv output must be chunked while its input and residual are
  // one tensor over the binding limit cannot run, and says so by the image size, as a smaller
  // overshoot does (sd-tiny at 4096x4096 once failed with "residual chunks [0] differ from the
  // output's [...]" in f32 and "slice rows of 2 bytes are not whole 4-byte words" in f16).
  it('a Stable Diffusion U-Net whose resnet tensors pass both limits names the image size, in f32 and f16', async () => {
    const rt = await runtime();
    for (const precision of hasF16(rt) ? (['f32', 'f16'] as const) : (['f32'] as const)) {
      const sd = await loadSdFolder(rt, 'tests/fixtures/sd-tiny', { precision });
      const saved = { plan: rt.planLimits, device: rt.deviceLimits };
      try {
        // 32 KiB bindings (and large buffers, as lavapipe has) from the U-Net on: the text encoder
        // binds its whole token table. At 64x64 (32x32 latents) conv_in's output [B, 32, 32, 32]
        // passes that in f32 and f16, and the resnet's conv1 after it would be chunked.
        const unet = sd.unet;
        const forward = unet.forward.bind(unet);
        unet.forward = (...args) => {
          rt.planLimits = { binding: 32768, buffer: 1 << 24 };
          (rt as { deviceLimits: Runtime['deviceLimits'] }).deviceLimits = rt.planLimits;
          return forward(...args);
        };
        const run = generateFromText(rt, sd, { prompt: 'a cat', steps: 1, width: 64, height: 64, seed: 1 });
        await expect(run, precision).rejects.toThrow(PlanLimitError);
        await expect(run, precision).rejects.toThrow(/^64x64 images are too large for this model on this adapter: down_blocks\.0\.resnets\.0\.conv1: tensor .* needs \d+ bytes in one binding, over the planned maxStorageBufferBindingSize 32768$/);
      } finally {
        rt.planLimits = saved.plan;
        (rt as { deviceLimits: Runtime['deviceLimits'] }).deviceLimits = saved.device;
        sd.destroy();
      }
    }
  });
});
