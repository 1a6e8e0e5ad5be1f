// A/B of a GEMM shader variant against the shipped shaders/gemm.wgsl on the U-Net step, on one
// device: each side gets its own Runtime (pipelines are cached by key, and the keys are the same),
// built while shaderSources.gemm holds its text. Runs alternate; also reports each side's summed
// GEMM kernel time from timestamps (when the device has them) and the largest output difference
// between the two sides. Used by ab.ts (browser) and ab_node.ts (Node, e.g. lavapipe).
import type { GpuContext } from '../../src/gpu/device.ts';
import { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import type { ModelFolder } from '../../src/io/model_folder.ts';
import { shaderSources } from '../../src/kernels/shaders.gen.ts';
import { UNet2DModel } from '../../src/models/unet_2d.ts';
import { readUNet2DConfig } from '../../src/models/unet_2d_config.ts';
import { buildModel } from '../../src/models/model_loader.ts';
import { profileGraph } from './profile.ts';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function abGemm(ctx: GpuContext, folder: ModelFolder, variant: string, batches: number[], runs: number, warmup: number) {
  const shipped = shaderSources.gemm!;
  const sides = [
    { name: 'shipped', src: shipped },
    { name: 'variant', src: variant },
  ].map((s) => {
    const rt = new Runtime(ctx);
    return { ...s, rt, unet: buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig(folder.config, 'unet')) };
  });
  const out = [];
  for (const B of batches) {
    const unet = sides[0]!.unet;
    const n = B * unet.inChannels * unet.sampleSize ** 2;
    const sample = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 1.5);
    const labels = Uint32Array.from({ length: B }, (_, i) => (B > 1 && i >= B / 2 ? 10 : 7));
    const built = sides.map((s) => {
      shaderSources.gemm = s.src;
      try {
        const rt = s.rt;
        const input = { buffer: rt.upload(sample, 'in'), shape: [B, unet.inChannels, unet.sampleSize, unet.sampleSize], label: 'in' };
        const labelT = { buffer: rt.upload(labels, 'labels'), shape: [B], label: 'labels' };
        const g = new Graph(rt, `${s.name}-b${B}`);
        const y = s.unet.forward(g, input, { timesteps: rt.upload(new Float32Array([500]), 't'), broadcast: true, classLabels: labelT });
        g.finalize();
        const run = async () => {
          const enc = rt.device.createCommandEncoder();
          g.record(enc);
          rt.device.queue.submit([enc.finish()]);
          await rt.device.queue.onSubmittedWorkDone();
        };
        return { s, g, y, run, ms: [] as number[] };
      } finally {
        shaderSources.gemm = shipped;
      }
    });
    const outs = [];
    for (const b of built) {
      await b.run();
      await b.s.rt.assertHealthy();
      outs.push(await b.s.rt.read(b.y.buffer, n * 4));
    }
    let maxAbsDiff = 0;
    for (let i = 0; i < n; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(outs[0]![i]! - outs[1]![i]!));
    for (let r = 0; r < warmup + runs; r++) {
      for (const b of built) {
        const t = performance.now();
        await b.run();
        if (r >= warmup) b.ms.push(performance.now() - t);
      }
    }
    const gemmMs = [];
    for (const b of built) {
      const k = ctx.features.has('timestamp-query') ? await profileGraph(b.s.rt, b.g) : [];
      gemmMs.push(k.filter((x) => x.name.startsWith('gemm:')).reduce((s, x) => s + x.ms, 0));
      b.g.destroy();
    }
    const row = {
      batch: B,
      maxAbsDiff,
      shippedMs: median(built[0]!.ms),
      variantMs: median(built[1]!.ms),
      shippedGemmKernelMs: gemmMs[0]!,
      variantGemmKernelMs: gemmMs[1]!,
      shippedRuns: built[0]!.ms,
      variantRuns: built[1]!.ms,
    };
    console.log(JSON.stringify(row));
    out.push(row);
  }
  for (const s of sides) s.unet.destroy();
  return { adapter: ctx.adapterName, runs, warmup, results: out };
}

