// Memory planning: activations share buffers by lifetime, a run reports its peak, and a run
// leaves nothing allocated behind it.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import { loadLdmFolder } from '../../src/pipelines/ldm_folder.ts';
import { input, randn, runtime } from '../helpers/gpu.ts';

describe('memory plan', () => {
  it('a U-Net step holds its activations in far fewer bytes than it allocates (lifetime aliasing)', async () => {
    const rt = await runtime();
    const model = await loadLdmFolder(rt, 'weights/fashion-ldm');
    try {
      const g = new Graph(rt, 'unet-plan');
      const x = input(rt, randn(2 * 4 * 8 * 8, 3), [2, 4, 8, 8], 'x');
      const labels = { buffer: rt.upload(new Uint32Array([1, 10]), 'labels'), shape: [2], label: 'labels' };
      const t = input(rt, [500, 500], [2], 't');
      model.unet.forward(g, x, { timesteps: t, broadcast: false, classLabels: labels });
      const { tensorBytes, bufferBytes } = g.stats;
      console.log(`U-Net step (batch 2): ${tensorBytes} bytes of tensors in ${bufferBytes} bytes of buffers (${((100 * bufferBytes) / tensorBytes).toFixed(1)}%)`);
      expect(bufferBytes).toBeGreaterThan(0);
      expect(bufferBytes).toBeLessThan(tensorBytes / 4);
      g.destroy();
      rt.destroyBuffer(x.buffer);
      rt.destroyBuffer(labels.buffer);
      rt.destroyBuffer(t.buffer);
    } finally {
      model.destroy();
    }
  });

  it('a generation reports its peak GPU memory, the same on every run, and frees all it allocated', async () => {
    const rt = await runtime();
    const model = await loadLdmFolder(rt, 'weights/fashion-ldm');
    try {
      const loaded = rt.liveBytes;
      const run = () => generateClassConditional(rt, model, { classLabels: [3, 4], nullClass: 10, guidanceScale: 3, steps: 2, seed: 1 });
      const a = await run();
      // What stays is the model's: its weights, and the Winograd transforms of its 3x3 conv weights
      // the first plan made (Runtime.winograd; kept with the weights, freed with the model).
      const weights = rt.liveBytes;
      const transforms = weights - loaded;
      if (rt.winograd) expect(transforms).toBeGreaterThan(0);
      else expect(transforms).toBe(0);
      const b = await run();
      console.log(`peak ${a.peakBytes} bytes with ${weights} bytes of weights resident (${transforms} of them Winograd transforms)`);
      expect(a.peakBytes).toBeGreaterThan(weights);
      expect(b.peakBytes).toBe(a.peakBytes);
      expect(rt.liveBytes).toBe(weights);
    } finally {
      model.destroy();
    }
  });
});
