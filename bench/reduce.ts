// Times the kernels that reduce across a workgroup (shaders/wg_reduce.wgsl) in both forms: the
// subgroup form (Runtime.subgroupReduce, where the device has subgroups and WGSL's subgroup_id)
// and the workgroup-memory tree. Group norm (statistics + apply, as the models run it), layer
// norm, and the GEMM attention path's row softmax alone. Each result is checked against the float64
// reference (group and layer norm) or against the other form (softmax) before it is timed.
// Run `node scripts/bundle-shaders.mjs` first if shaders/ changed.
//   npx tsx bench/reduce.ts            shapes of the shipped model and SD 1.5's U-Net
//   npx tsx bench/reduce.ts --big      adds the SD VAE decoder's 512x512 group norm
import { getGpu } from '../src/gpu/device.ts';
import { canReduceBySubgroup, Runtime } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/graph.ts';
import type { Tensor } from '../src/graph/tensor.ts';
import { softmaxRows } from '../src/kernels/attention.ts';
import { groupNorm } from '../src/kernels/group_norm.ts';
import { layerNorm } from '../src/kernels/layer_norm.ts';
import { compare } from '../tests/helpers/compare.ts';
import { randn } from '../tests/helpers/gpu.ts';
import { groupNormRef } from '../tests/ref/group_norm.ts';
import { layerNormRef } from '../tests/ref/layer_norm.ts';
import { timeGraph } from './core/time_graph.ts';

type Case = { name: string; n: number; shape: number[]; build: (g: Graph, x: Tensor, p: [Tensor, Tensor]) => Tensor; ref?: (x: Float32Array, gamma: Float32Array, beta: Float32Array) => ArrayLike<number>; C: number };

const gn = (B: number, C: number, H: number, W: number, groups: number, note: string): Case => ({
  name: `group norm [${B},${C},${H},${W}] groups ${groups} +silu (${note})`,
  n: B * C * H * W,
  shape: [B, C, H, W],
  C,
  build: (g, x, [gamma, beta]) => groupNorm(g, 'gn', x, gamma, beta, { groups, eps: 1e-6, silu: true }),
  ref: B * C * H * W <= 1 << 22 ? (x, gamma, beta) => groupNormRef(x, gamma, beta, B, C, H * W, groups, 1e-6, true) : undefined,
});
const ln = (rows: number, C: number, note: string): Case => ({
  name: `layer norm [${rows},${C}] (${note})`,
  n: rows * C,
  shape: [rows, C],
  C,
  build: (g, x, [gamma, beta]) => layerNorm(g, 'ln', x, gamma, beta, 1e-5),
  ref: (x, gamma, beta) => layerNormRef(x, gamma, beta, C, 1e-5),
});
// The row softmax on a score scratch of rows x cols, as the GEMM attention path dispatches it.
const softmax = (rows: number, cols: number, note: string): Case => ({
  name: `softmax rows ${rows} x ${cols} (${note})`,
  n: rows * cols,
  shape: [rows, cols],
  C: 1,
  build: (g, x) => {
    softmaxRows(g, 'softmax', x, { rows, cols, rowsPerZ: rows, r0: 0, causal: false });
    return x;
  },
});

const cases: Case[] = [
  gn(2, 64, 8, 8, 32, 'fashion-ldm U-Net'),
  gn(1, 32, 32, 32, 32, 'fashion-ldm VAE'),
  gn(2, 320, 64, 64, 32, 'SD 1.5 U-Net, 64x64 latents'),
  gn(2, 1280, 8, 8, 32, 'SD 1.5 U-Net, 8x8'),
  ln(2 * 4096, 320, 'SD 1.5 transformer, 4096 tokens'),
  ln(2 * 77, 768, 'CLIP text encoder'),
  softmax(4096, 4096, 'SD VAE mid-block attention, one chunk'),
  softmax(2 * 8 * 1024, 77, 'cross-attention scores, d40 heads'),
];
if (process.argv.includes('--big')) cases.push(gn(1, 128, 512, 512, 32, 'SD VAE decoder at 512x512'));

const rt = new Runtime(await getGpu());
if (!canReduceBySubgroup(rt.gpu)) {
  console.log(`adapter: ${rt.gpu.adapterName}: no subgroups (or no WGSL subgroup_id); nothing to compare`);
  process.exit(0);
}
console.log(`adapter: ${rt.gpu.adapterName}; statistics in parts: ${rt.splitNormStats}; GPU time, median of 5 (min)`);
for (const c of cases) {
  const x = randn(c.n, 1);
  const gamma = randn(c.C, 2);
  const beta = randn(c.C, 3);
  const ref = c.ref?.(x, gamma, beta);
  const results: { form: string; ms: string; out: Float32Array }[] = [];
  for (const sub of [false, true]) {
    rt.subgroupReduce = sub;
    const g = new Graph(rt, 'bench-reduce');
    const xin = g.alloc(c.shape, 'x');
    const p = [gamma, beta].map((v) => {
      const t = g.alloc([c.C], 'p');
      rt.device.queue.writeBuffer(t.buffer, 0, v);
      return t;
    }) as [Tensor, Tensor];
    const out = c.build(g, xin, p);
    g.finalize();
    // The softmax works in place: every timed run starts from the same scores.
    const reset = () => rt.device.queue.writeBuffer(xin.buffer, 0, x);
    reset();
    const t = await timeGraph(rt, g, 5, 1);
    reset();
    await timeGraph(rt, g, 1, 0);
    const got = await rt.read(out.buffer, c.n * 4);
    const ms = t.gpuMedianMs ?? t.medianMs;
    const min = t.gpuMinMs ?? t.minMs;
    results.push({ form: sub ? 'subgroups' : 'tree', ms: `${ms.toFixed(3)} ms (${min.toFixed(3)})`, out: got });
    g.destroy();
  }
  console.log(c.name);
  for (const r of results) {
    const against = ref ?? results[0]!.out;
    const cmp = compare(r.out, against, 1e-5, 1e-4);
    const verdict = cmp.ok ? `ok (max|err| ${cmp.maxAbsErr.toExponential(1)} vs ${ref ? 'float64' : 'tree'})` : `WRONG: ${cmp.report.split('\n')[0]}`;
    console.log(`  ${r.form.padEnd(9)} ${r.ms.padStart(24)}  ${verdict}`);
  }
}
process.exit(0);
