// What quantized GEMM weights (loadModel's `weights`: 'q8', 'q4'; src/io/quant.ts) cost and save on
// whatever adapter is there:
//  1. the shipped model (weights/fashion-ldm) loaded through loadModel in f32, at the default
//     precision 'auto' with float weights, and 'auto' with q8 and q4 U-Net weights: the weights' GPU
//     bytes (Model.weightBytes, and the U-Net's alone), the U-Net step at the guidance batch (the
//     formats timed in turns, several rounds, so that a load from other processes falls on all of
//     them alike), and the images generate() draws for the same classes and seed, compared with
//     the float run (max and mean |difference| in 8-bit pixel levels, PSNR);
//  2. a side-by-side PNG (rows float / q8 / q4, one column per class, the first image of each);
//  3. where Debian's dataset-fashion-mnist is installed, the fraction of the images a pixel
//     softmax regression (scripts/fashion_classifier.ts) recognizes as the class asked for;
//  4. every model and pipeline case of the diffusers fixtures (../shared/fixtures) in f32 with
//     float, q8 and q4 weights: each one's ratio max|got - ref| / max|ref| (the conformance
//     runner's, `npm run conformance -- DIR --weights q8`), reported, not judged.
// Prints markdown tables and writes bench/results/quant-<adapter>-<date>.json.
//   npm run bench:quant -- [--steps 25] [--guidance 3] [--count 5] [--seed 1000] [--repeat 5]
//     [--rounds 10] [--fixtures ../shared/fixtures] [--png docs/quant-fashion.png] [--model DIR]
//     [--no-score] [--no-conformance]
process.env.FRESCO_DAWN_FLAGS ??= 'disable-dawn-features=timestamp_quantization';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, loadModel, type Model } from '../src/api.ts';
import { getGpu } from '../src/gpu/device.ts';
import type { Runtime } from '../src/gpu/runtime.ts';
import { Graph } from '../src/graph/graph.ts';
import { loadModelFolder } from '../src/io/model_folder.ts';
import { encodePng, toPixel } from '../src/io/png.ts';
import { buildModel } from '../src/models/model_loader.ts';
import { QUANTIZED_CLASSES, type Precision, type WeightFormat } from '../src/models/precision.ts';
import { UNet2DModel } from '../src/models/unet_2d.ts';
import { readUNet2DConfig } from '../src/models/unet_2d_config.ts';
import { runModelCase } from '../src/conformance/model_case.ts';
import { runPipelineCase } from '../src/conformance/pipeline_case.ts';
import { caseKind, listCases } from '../src/conformance/runner.ts';
import { adapterSlug } from './core/generate_bench.ts';
import { median, summarize, timeGraph, type Timing } from './core/time_graph.ts';
import { randn } from '../tests/helpers/gpu.ts';
import { Classifier, hasFashionMnist, loadFashionMnist, trainClassifier } from '../scripts/fashion_classifier.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
function option(name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} needs a positive integer, got ${JSON.stringify(argv[i + 1])}`);
  return v;
}
function text(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : (argv[i + 1] ?? fallback);
}
const o = {
  steps: option('steps', 25),
  guidance: Number(text('guidance', '3')),
  count: option('count', 5),
  seed: option('seed', 1000),
  repeat: option('repeat', 5),
  rounds: option('rounds', 10),
};
const modelDir = resolve(text('model', join(root, 'weights/fashion-ldm')));
const fixtures = resolve(text('fixtures', join(root, '../shared/fixtures')));
const pngPath = resolve(text('png', join(root, 'docs/quant-fashion.png')));
const score = !argv.includes('--no-score');
const conformance = !argv.includes('--no-conformance');

interface Format {
  name: string;
  precision: Precision;
  weights: WeightFormat;
}
// 'float' is the reference of the image comparison: the default path (precision 'auto'). f32 is
// there to show what the f16 path itself changes in the images, on the same scale.
const FORMATS: Format[] = [
  { name: 'f32', precision: 'f32', weights: 'float' },
  { name: 'float', precision: 'auto', weights: 'float' },
  { name: 'q8', precision: 'auto', weights: 'q8' },
  { name: 'q4', precision: 'auto', weights: 'q4' },
];
const REF = 'float';

const gpu = await getGpu();
console.error(`adapter: ${gpu.adapterName}`);
const log = (m: string) => console.error(m);

/** The U-Net's own weight bytes in a format (built, not filled: the bytes are claimed at build). */
async function unetBytes(rt: Runtime, f: Format): Promise<number> {
  const dir = join(modelDir, 'unet');
  const folder = await loadModelFolder(dir);
  const unet = buildModel(UNet2DModel, rt, folder.weights, readUNet2DConfig(folder.config, dir), { precision: f.precision, weights: f.weights });
  const bytes = folder.weights.gpuBytes;
  unet.destroy();
  return bytes;
}

/** The U-Net at the guidance batch (class 0 and the null class), recorded once per model. */
function stepGraph(model: Model): { g: Graph; free(): void } {
  const { rt } = model;
  if (model.loaded.kind !== 'class') throw new Error(`${modelDir} is not a class-conditional model`);
  const unet = model.loaded.ldm.unet;
  const size = unet.sampleSize;
  const B = 2;
  const input = { buffer: rt.upload(randn(B * unet.inChannels * size * size, 11), 'unet-in'), shape: [B, unet.inChannels, size, size], label: 'unet-in' };
  const tBuf = rt.upload(new Float32Array([500]), 'timestep');
  const labels = { buffer: rt.upload(Uint32Array.from([0, model.nullClass!]), 'class-labels'), shape: [B], label: 'class-labels' };
  const g = new Graph(rt, 'unet-cfg');
  unet.forward(g, input, { timesteps: tBuf, broadcast: true, classLabels: labels });
  g.finalize();
  return {
    g,
    free: () => {
      g.destroy();
      for (const b of [input.buffer, tBuf, labels.buffer]) rt.destroyBuffer(b);
    },
  };
}

/** 8-bit pixels of every image, as the PNGs have them. */
const pixels = (raw: Float32Array) => Uint8Array.from(raw, toPixel);

function imageDiff(a: Uint8Array, b: Uint8Array, perImage: number) {
  let max = 0;
  let sum = 0;
  let sq = 0;
  let worst = Infinity;
  let identical = 0;
  for (let i0 = 0; i0 < a.length; i0 += perImage) {
    let s = 0;
    for (let i = i0; i < i0 + perImage; i++) {
      const d = Math.abs(a[i]! - b[i]!);
      max = Math.max(max, d);
      sum += d;
      s += d * d;
    }
    sq += s;
    if (s === 0) identical++;
    worst = Math.min(worst, s === 0 ? Infinity : 10 * Math.log10((255 * 255) / (s / perImage)));
  }
  const mse = sq / a.length;
  return { maxAbs: max, meanAbs: sum / a.length, psnrDb: mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse), worstImagePsnrDb: worst, identicalImages: identical };
}

const classes = Array.from({ length: 10 }, (_, c) => c);
interface Run {
  format: Format;
  model: Model;
  weightBytes: number;
  unetWeightBytes: number;
  precision: string;
  loadMs: number;
  /** The format's first generate(): it includes compiling the format's kernels. */
  firstGenerationMs: number;
  px: Uint8Array;
  shape: [number, number, number, number];
  wall: number[];
  gpuMs: number[];
  step: { g: Graph; free(): void };
}
const runs: Run[] = [];
for (const f of FORMATS) {
  const t0 = performance.now();
  const model = await loadModel(modelDir, { gpu, precision: f.precision, weights: f.weights });
  const loadMs = performance.now() - t0;
  const unetWeightBytes = await unetBytes(model.rt, f);
  const t1 = performance.now();
  const r = await generate(model, { class: classes, count: o.count, seed: o.seed, steps: o.steps, guidance: o.guidance, scheduler: 'ddim' });
  const firstGenerationMs = performance.now() - t1;
  log(`${f.name}: ${model.precision}; weights ${model.weightBytes} B (U-Net ${unetWeightBytes} B); load ${loadMs.toFixed(0)} ms; ${r.rawShape[0]} images in ${firstGenerationMs.toFixed(0)} ms (with its shader compiles)`);
  runs.push({ format: f, model, weightBytes: model.weightBytes, unetWeightBytes, precision: model.precision, loadMs, firstGenerationMs, px: pixels(r.raw), shape: r.rawShape, wall: [], gpuMs: [], step: stepGraph(model) });
}
const rt = runs[0]!.model.rt;

// The U-Net step: the formats in turns, `rounds` times, `repeat` timed submits each (after 2 warm-ups).
for (let round = 0; round < o.rounds; round++) {
  for (const r of runs) {
    const t: Timing = await timeGraph(rt, r.step.g, o.repeat, 2);
    r.wall.push(t.medianMs);
    if (t.gpuMedianMs !== null) r.gpuMs.push(t.gpuMedianMs);
    log(`round ${round + 1}/${o.rounds} ${r.format.name}: U-Net step (batch 2) median ${t.medianMs.toFixed(1)} ms${t.gpuMedianMs !== null ? `, GPU ${t.gpuMedianMs.toFixed(1)} ms` : ''}`);
  }
}
for (const r of runs) r.step.free();

const [, , H, W] = runs[0]!.shape;
const perImage = H * W * runs[0]!.shape[1];
const ref = runs.find((r) => r.format.name === REF)!;

// Side by side: rows float / q8 / q4, one column per class (its first image), each pixel 2×2.
const rows = ['float', 'q8', 'q4'].map((n) => runs.find((r) => r.format.name === n)!);
const zoom = 2;
const gap = 2;
const cellW = W * zoom;
const cellH = H * zoom;
const pngW = classes.length * cellW + (classes.length - 1) * gap;
const pngH = rows.length * cellH + (rows.length - 1) * gap;
const sheet = new Uint8Array(pngW * pngH).fill(255);
rows.forEach((r, row) => {
  classes.forEach((c, col) => {
    const img = (c * o.count) * perImage;
    for (let y = 0; y < cellH; y++) {
      for (let x = 0; x < cellW; x++) sheet[(row * (cellH + gap) + y) * pngW + col * (cellW + gap) + x] = r.px[img + Math.floor(y / zoom) * W + Math.floor(x / zoom)]!;
    }
  });
});
mkdirSync(dirname(pngPath), { recursive: true });
writeFileSync(pngPath, encodePng(pngW, pngH, 1, sheet));
log(`wrote ${relative(process.cwd(), pngPath)} (${pngW}×${pngH}: rows ${rows.map((r) => r.format.name).join(' / ')}, columns classes ${classes.join(', ')}, seed ${o.seed})`);

// The class-recognition score.
let classifier: { testAccuracy: number; perClassTest: number[]; trainMs: number } | null = null;
const recognized = new Map<string, { fraction: number; perClass: number[]; agreesWithFloat: number }>();
if (score && hasFashionMnist()) {
  const t0 = performance.now();
  const { train, test } = loadFashionMnist();
  const clf: Classifier = trainClassifier(train);
  const acc = clf.accuracy(test);
  classifier = { testAccuracy: acc.overall, perClassTest: acc.perClass, trainMs: performance.now() - t0 };
  log(`classifier: softmax regression on pixels, test accuracy ${(100 * acc.overall).toFixed(1)} % (trained in ${(classifier.trainMs / 1000).toFixed(1)} s)`);
  const predictions = new Map<string, number[]>();
  for (const r of runs) {
    const n = r.shape[0];
    const pred = Array.from({ length: n }, (_, i) => clf.predict(r.px.subarray(i * perImage, (i + 1) * perImage)));
    predictions.set(r.format.name, pred);
  }
  for (const r of runs) {
    const pred = predictions.get(r.format.name)!;
    const asked = (i: number) => Math.floor(i / o.count);
    const perClass = classes.map((c) => pred.slice(c * o.count, (c + 1) * o.count).filter((p) => p === c).length / o.count);
    const refPred = predictions.get(REF)!;
    recognized.set(r.format.name, { fraction: pred.filter((p, i) => p === asked(i)).length / pred.length, perClass, agreesWithFloat: pred.filter((p, i) => p === refPred[i]).length / pred.length });
  }
} else if (score) {
  log('no Fashion-MNIST at /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist): no class-recognition score');
}

// The fixtures: every model and pipeline case in f32 with float, q8 and q4 weights.
type CaseRow = { case: string; class: string; library: string; ratios: Record<string, number | null>; notes: Record<string, string>; weightBytes: Record<string, number | null> };
const caseRows: CaseRow[] = [];
const QUANTIZED = new Set([...QUANTIZED_CLASSES, 'pipeline']);
if (conformance && existsSync(fixtures)) {
  for (const name of listCases(fixtures)) {
    const kind = caseKind(fixtures, name);
    if (kind !== 'model' && kind !== 'pipeline') continue;
    const dir = join(fixtures, name);
    const row: CaseRow = { case: name, class: '?', library: '', ratios: {}, notes: {}, weightBytes: {} };
    for (const w of ['float', 'q8', 'q4'] as const) {
      const q = w === 'float' ? undefined : w;
      try {
        const r = kind === 'model' ? await runModelCase(rt, dir, 'f32', q) : await runPipelineCase(rt, dir, 'f32', q ? 'auto' : 'fused', q);
        row.class = r.cls;
        row.ratios[w] = r.ratio;
        row.notes[w] = [r.note, r.detail].filter(Boolean).join('; ');
        row.weightBytes[w] = 'weightBytes' in r ? (r.weightBytes as number) : null;
      } catch (e) {
        row.ratios[w] = null;
        row.notes[w] = `error: ${(e as Error).message.split('\n')[0]}`;
        row.weightBytes[w] = null;
      }
    }
    row.library = QUANTIZED.has(row.class) ? 'yes' : 'no (kept float)';
    caseRows.push(row);
    log(`${name}: ${['float', 'q8', 'q4'].map((w) => `${w} ${row.ratios[w]?.toExponential(2) ?? row.notes[w]}`).join(', ')}`);
  }
}

// The tables.
/** A path for the tables: relative to the repository when inside it or beside it, else absolute. */
const shown = (p: string) => (relative(root, p).startsWith('../..') ? p : relative(root, p) || p);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
const e2 = (x: number | null | undefined) => (x === null || x === undefined ? '-' : Number.isFinite(x) ? x.toExponential(2) : String(x));
const dB = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} dB` : 'identical');
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
/** The median over rounds of this format's step over the float one's in the same round (a paired ratio: load swings cancel). */
const paired = (xs: number[], ys: number[]) => (xs.length && xs.length === ys.length ? median(xs.map((x, i) => x / ys[i]!)) : null);
const summary = runs.map((r) => {
  const step = summarize(r.wall, r.gpuMs);
  const vsFloat = { wall: paired(r.wall, ref.wall), gpu: paired(r.gpuMs, ref.gpuMs) };
  return {
    name: r.format.name,
    precision: r.precision,
    weights: r.format.weights,
    weightBytes: r.weightBytes,
    unetWeightBytes: r.unetWeightBytes,
    unetStepMs: { ...step, wallMedianOfRounds: median(r.wall), rounds: r.wall, gpuRounds: r.gpuMs },
    /** Step time over the float format's, paired by round (median of the rounds' ratios). */
    unetStepVsFloat: vsFloat,
    loadMs: r.loadMs,
    firstGenerationMs: r.firstGenerationMs,
    imageDiffVsFloat: r === ref ? null : imageDiff(ref.px, r.px, perImage),
    recognized: recognized.get(r.format.name) ?? null,
  };
});
const floatBytes = ref.unetWeightBytes;
const lines = [
  `**${gpu.adapterName}** — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
  '',
  `Model \`${relative(root, modelDir) || modelDir}\`: ${classes.length} classes × ${o.count} images, seed ${o.seed}, ${o.steps} DDIM steps, guidance ${o.guidance}. ` +
    `U-Net step: batch 2 (the guidance batch), the median of ${o.rounds} rounds × ${o.repeat} runs, the formats timed in turns; 'vs float': the median over rounds of the step's ratio to the float one in the same round. Image differences: 8-bit pixels against the \`${REF}\` run (precision 'auto').`,
  '',
  '| weights | precision | weight bytes (U-Net + VAE) | U-Net | U-Net vs float | step ms (wall, median / min) | step ms (GPU) | step vs float (paired) | max\\|Δpx\\| | mean\\|Δpx\\| | PSNR | worst image PSNR | recognized |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...summary.map((s) => {
    const d = s.imageDiffVsFloat;
    return `| ${s.name} | ${s.precision} | ${mib(s.weightBytes)} | ${mib(s.unetWeightBytes)} | ${(s.unetWeightBytes / floatBytes).toFixed(2)}× | ${s.unetStepMs.wallMedianOfRounds.toFixed(1)} / ${s.unetStepMs.minMs.toFixed(1)} | ${s.unetStepMs.gpuMedianMs !== null ? s.unetStepMs.gpuMedianMs.toFixed(1) : '-'} | ${(s.unetStepVsFloat.gpu ?? s.unetStepVsFloat.wall)?.toFixed(2) ?? '-'}×${s.unetStepVsFloat.gpu !== null ? ' GPU' : ' wall'} | ${d ? d.maxAbs : '(reference)'} | ${d ? d.meanAbs.toFixed(2) : '-'} | ${d ? dB(d.psnrDb) : '-'} | ${d ? dB(d.worstImagePsnrDb) : '-'} | ${s.recognized ? pct(s.recognized.fraction) : '-'} |`;
  }),
];
if (classifier) {
  lines.push(
    '',
    `Recognized: the fraction of the ${classes.length * o.count} images that a softmax regression on pixels (scripts/fashion_classifier.ts, ${pct(classifier.testAccuracy)} on the 10,000 real Fashion-MNIST test images) puts in the class asked for.`,
    '',
    `| weights | ${classes.map((c) => `class ${c}`).join(' | ')} | agrees with float |`,
    `|---|${classes.map(() => '---').join('|')}|---|`,
    `| real test images | ${classifier.perClassTest.map(pct).join(' | ')} | - |`,
    ...summary.filter((s) => s.recognized).map((s) => `| ${s.name} | ${s.recognized!.perClass.map(pct).join(' | ')} | ${pct(s.recognized!.agreesWithFloat)} |`),
  );
}
if (caseRows.length) {
  lines.push(
    '',
    `Fixtures (\`${shown(fixtures)}\`), f32 activations, ratio = max|got − ref| / max|ref| against diffusers' float32 output (the f32 bound is 1e-3; quantized runs are reported, not judged):`,
    '',
    '| case | class | quantized by loadModel | f32 | q8 | q4 | note |',
    '|---|---|---|---|---|---|---|',
    ...caseRows.map((r) => `| ${r.case} | ${r.class} | ${r.library} | ${e2(r.ratios.float)} | ${e2(r.ratios.q8)} | ${e2(r.ratios.q4)} | ${['q8', 'q4'].map((w) => (r.notes[w] ? `${w}: ${r.notes[w]}` : '')).filter(Boolean).join('; ')} |`),
  );
}
console.log(lines.join('\n'));

/** The commit measured, and whether tracked files differed from it (a shared work tree). */
function gitState(): { commit: string; dirty: boolean } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return { commit: git('rev-parse', '--short=12', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no').length > 0 };
  } catch {
    return null;
  }
}

const result = {
  adapter: gpu.adapterName,
  git: gitState(),
  runtime: `Node ${process.version} (Dawn, npm webgpu)`,
  date: new Date().toISOString(),
  host: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, platform: `${process.platform}-${process.arch}` },
  config: { model: relative(root, modelDir) || modelDir, classes, count: o.count, seed: o.seed, steps: o.steps, guidance: o.guidance, scheduler: 'ddim', stepBatch: 2, repeat: o.repeat, rounds: o.rounds, warmup: 2, reference: REF, png: relative(root, pngPath), dawnFlags: process.env.FRESCO_DAWN_FLAGS },
  formats: summary,
  classifier,
  fixtures: { dir: shown(fixtures), precision: 'f32', cases: caseRows },
};
const round4 = (_: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) && Number.isFinite(v) ? Number(v.toPrecision(4)) : v === Infinity ? 'Infinity' : v);
const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const outFile = join(outDir, `quant-${adapterSlug(gpu.adapterName)}-${result.date.slice(0, 10)}.json`);
writeFileSync(outFile, `${JSON.stringify(result, round4, 2)}\n`);
log(`wrote ${relative(process.cwd(), outFile)}`);
for (const r of runs) r.model.destroy();
process.exit(0);
