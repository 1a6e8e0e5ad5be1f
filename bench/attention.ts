// Times naive attention (bench/kernels/attention.v1.wgsl: full score matrix, three passes) against
// attention()'s two paths (src/kernels/attention.ts): the flash kernel (shaders/attention.wgsl)
// and two GEMMs on the GEMM core with a row softmax between them, each forced through
// Runtime.attentionGemmMinHead. Each version is checked before it is timed: against the float64
// reference where that is cheap, otherwise against the first version.
// Run `node scripts/bundle-shaders.mjs` first if shaders/ changed.
//   npx tsx bench/attention.ts            default shapes
//   npx tsx bench/attention.ts --big      adds 64x64 latents (4096 tokens)
//   npx tsx bench/attention.ts --tiles 1024,Infinity   the flash kernel at each key-tile budget
//                                         (Runtime.attentionTileFloats; default: the runtime's)
//   npx tsx bench/attention.ts --stage on,off   the flash kernel with K/V tiles staged in workgroup
//                                         memory and read from the inputs (Runtime.attentionStageKV)
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getGpu } from '../src/gpu/device.ts';
import { Runtime } from '../src/gpu/runtime.ts';
import { fold1d, Graph } from '../src/graph/graph.ts';
import type { Tensor } from '../src/graph/tensor.ts';
import { attention, attentionKeyTile, attentionPath } from '../src/kernels/attention.ts';
import { shaderSources } from '../src/kernels/shaders.gen.ts';
import { compare } from '../tests/helpers/compare.ts';
import { randn, withRuntime } from '../tests/helpers/gpu.ts';
import { attentionRef } from '../tests/ref/attention.ts';

// Bench-only shaders sit beside the bundled ones so they go through the same runtime.
shaderSources['attention.v1'] = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'kernels', 'attention.v1.wgsl'), 'utf8');

/** Query rows checked against the float64 reference where nothing else can check a big shape. */
const ROWS = 8;

interface Shape { B: number; Tq: number; Tk: number; C: number; heads: number; note: string }

const shapes: Shape[] = [
  { B: 2, Tq: 16, Tk: 16, C: 128, heads: 4, note: "fashion 4x4 level" },
  { B: 2, Tq: 4, Tk: 4, C: 128, heads: 4, note: "fashion 2x2 level and mid-block" },
  { B: 2, Tq: 64, Tk: 64, C: 128, heads: 4, note: "8x8 latent" },
  { B: 2, Tq: 64, Tk: 64, C: 64, heads: 1, note: "fashion VAE mid-block, d64" },
  { B: 2, Tq: 256, Tk: 256, C: 128, heads: 4, note: '16x16 latent' },
  { B: 1, Tq: 1024, Tk: 1024, C: 320, heads: 8, note: '32x32 latent, SD d40' },
  { B: 2, Tq: 1024, Tk: 77, C: 320, heads: 8, note: 'cross-attn on 77 tokens' },
  // Head dims between SD's and the VAE's, where the paths cross (Runtime.attentionGemmMinHead).
  { B: 1, Tq: 1024, Tk: 1024, C: 256, heads: 2, note: 'd128' },
  { B: 1, Tq: 1024, Tk: 1024, C: 256, heads: 1, note: 'd256' },
  { B: 1, Tq: 1024, Tk: 1024, C: 512, heads: 1, note: 'd512, a VAE mid-block at 256x256' },
];
if (process.argv.includes('--big')) {
  shapes.push(
    { B: 2, Tq: 4096, Tk: 4096, C: 320, heads: 8, note: 'SD 1.5 at 64x64 latents, d40' },
    { B: 1, Tq: 4096, Tk: 4096, C: 512, heads: 1, note: "SD VAE decoder's mid-block at 512x512, d512" },
  );
}

function naive(g: Graph, q: Tensor, k: Tensor, v: Tensor, s: Shape): Tensor {
  const d = s.C / s.heads;
  const scores = g.alloc([s.B, s.heads, s.Tq, s.Tk], 'scores');
  const out = g.alloc([s.B, s.Tq, s.C], 'out');
  const base = { B: s.B, Tq: s.Tq, Tk: s.Tk, C: s.C, heads: s.heads, d, scale: 1 / Math.sqrt(d) };
  const pass = (param: string, n: number, bind: Record<string, Tensor>) =>
    g.dispatch(`naive.${param}`, { shader: 'attention.v1', params: { [param]: true } }, bind, { ...base, n }, fold1d(Math.ceil(n / 64)));
  pass('SCORES', s.B * s.heads * s.Tq * s.Tk, { q, k, s: scores });
  pass('SOFTMAX', s.B * s.heads * s.Tq, { s: scores });
  pass('PV', s.B * s.Tq * s.C, { v, s: scores, out });
  return out;
}

async function time(rt: Runtime, g: Graph, reps: number): Promise<number> {
  const run = async () => {
    const enc = rt.device.createCommandEncoder();
    g.record(enc);
    rt.device.queue.submit([enc.finish()]);
    await rt.device.queue.onSubmittedWorkDone();
  };
  await run();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await run();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

const rt = new Runtime(await getGpu());
const tilesArg = process.argv.indexOf('--tiles');
const tiles = tilesArg >= 0 ? process.argv[tilesArg + 1]!.split(',').map(Number) : [rt.attentionTileFloats];
if (!tiles.every((t) => t >= 4)) throw new Error(`--tiles takes floats per key tile (Infinity: the kernel's 16 KiB), got ${process.argv[tilesArg + 1]}`);
const stageArg = process.argv.indexOf('--stage');
const stagings = stageArg >= 0 ? process.argv[stageArg + 1]!.split(',').map((x) => x === 'on') : [rt.attentionStageKV];
/** The flash variants to time: every tile budget with every staging. */
const flashForms = tiles.flatMap((t) => stagings.map((stage) => ({ t, stage })));
console.log(`adapter: ${rt.gpu.adapterName} (GEMM feed ${rt.gemmFeed}; attention() takes the GEMM path from head dim ${rt.attentionGemmMinHead} or ${rt.attentionGemmMinKeys} keys)`);
// The naive version's score matrix is one tensor: it must fit what graphs plan within.
const maxScores = Math.min(rt.planLimits.binding, rt.planLimits.buffer);
for (const s of shapes) {
  const q = randn(s.B * s.Tq * s.C, 1);
  const k = randn(s.B * s.Tk * s.C, 2);
  const v = randn(s.B * s.Tk * s.C, 3);
  const flops = 4 * s.B * s.Tq * s.Tk * s.C;
  const head = `B${s.B} Tq${s.Tq} Tk${s.Tk} C${s.C} heads${s.heads} (${s.note})`;
  // attention() with its path forced (a threshold of 1 takes every head dim to the GEMM path).
  // The runtime's choices are set while the version's graph is built (withRuntime puts them back).
  const forced =
    (minHead: number, tileFloats = rt.attentionTileFloats, stage = rt.attentionStageKV) =>
    (g: Graph, q: Tensor, k: Tensor, v: Tensor) =>
      withRuntime(rt, { attentionGemmMinHead: minHead, attentionGemmMinKeys: Infinity, attentionTileFloats: tileFloats, attentionStageKV: stage }, async () => attention(g, 'attn', q, k, v, s.heads));
  const versions: [string, (g: Graph, q: Tensor, k: Tensor, v: Tensor) => Tensor | Promise<Tensor>][] = [['gemm', forced(1)]];
  const d = s.C / s.heads;
  if (attentionKeyTile(d) >= 4) {
    const name = (t: number, stage: boolean) =>
      `flash${tiles.length > 1 ? `@${t === Infinity ? '16KiB' : t}` : ''}${stagings.length > 1 ? (stage ? '+wg' : '+direct') : ''}`;
    versions.unshift(...flashForms.map(({ t, stage }): (typeof versions)[number] => [name(t, stage), forced(Infinity, t, stage)]));
  }
  const scoreBytes = s.B * s.heads * s.Tq * s.Tk * 4;
  const naiveFits = scoreBytes <= maxScores;
  if (naiveFits) versions.unshift(['naive', (g, q, k, v) => naive(g, q, k, v, s)]);
  // The float64 reference costs about as much as the work itself; above ~1 GFLOP compare versions,
  // or, where the naive one cannot run, the first ROWS query rows against the reference.
  let check: ArrayLike<number> | null = flops <= 1e9 ? attentionRef(q, k, v, s.B, s.Tq, s.Tk, s.C, s.heads) : null;
  const rowsOnly = !check && !naiveFits;
  if (rowsOnly) check = attentionRef(q.subarray(0, ROWS * s.C), k.subarray(0, s.Tk * s.C), v.subarray(0, s.Tk * s.C), 1, ROWS, s.Tk, s.C, s.heads);
  console.log(rowsOnly ? `${head}  (checked on its first ${ROWS} query rows)` : check ? head : `${head}  (checked against the first version)`);
  if (!naiveFits) console.log(`  naive: skipped, its score matrix needs ${(scoreBytes / 2 ** 20).toFixed(0)} MiB (plan limit ${(maxScores / 2 ** 20).toFixed(0)} MiB)`);
  for (const [name, build] of versions) {
    const g = new Graph(rt, `bench-${name}`);
    const ins = [q, k, v].map((x, i) => {
      const t = g.alloc(i === 0 ? [s.B, s.Tq, s.C] : [s.B, s.Tk, s.C], 'in');
      rt.device.queue.writeBuffer(t.buffer, 0, x);
      return t;
    }) as [Tensor, Tensor, Tensor];
    const out = await build(g, ...ins);
    g.finalize();
    const ms = await time(rt, g, 3);
    const got = await rt.read(out.buffer, s.B * s.Tq * s.C * 4);
    let verdict = 'reference';
    if (check) {
      const cmp = compare(rowsOnly ? got.subarray(0, ROWS * s.C) : got, check, 1e-5, 1e-4);
      verdict = cmp.ok ? `ok (max|err| ${cmp.maxAbsErr.toExponential(1)})` : `WRONG: ${cmp.report.split('\n')[0]}`;
    } else {
      check = got;
    }
    let extra = name === 'naive' ? `, scores ${(scoreBytes / 2 ** 20).toFixed(1)} MiB` : '';
    const plan = attentionPath(s.C / s.heads, s.B, s.heads, s.Tq, s.Tk, 1, Math.min(g.limits.binding, g.limits.buffer));
    if (name === 'gemm' && plan.path === 'gemm') extra = `, scores ${((s.B * s.heads * plan.rows * s.Tk * 4) / 2 ** 20).toFixed(1)} MiB x ${Math.ceil(s.Tq / plan.rows)} chunk(s)`;
    console.log(`  ${name.padEnd(18)} ${ms.toFixed(2).padStart(9)} ms  ${(flops / ms / 1e6).toFixed(1).padStart(8)} GFLOP/s  ${verdict}${extra}`);
    g.destroy();
  }
}
process.exit(0);
