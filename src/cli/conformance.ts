// npm run conformance -- DIR [--only a,b] [--weights q8|q4]
// --weights: the model and pipeline cases again with quantized GEMM weights (f32 activations),
// reporting each case's ratio to the float32 reference instead of holding it to a tolerance.
import { existsSync, statSync } from 'node:fs';
import { getGpu } from '../gpu/device.ts';
import { Runtime } from '../gpu/runtime.ts';
import { hasQuantizableWeights, formatQuantTable, formatTable, listCases, runCase, type CaseResult } from '../conformance/runner.ts';
import { QUANTIZED_CLASSES } from '../models/precision.ts';
import { QUANT_FORMATS, type QuantFormat } from '../io/quant.ts';

function usage(msg?: string): never {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: npm run conformance -- DIR [--only case1,case2] [--weights q8|q4]');
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let dir: string | undefined;
  let only: string[] | null = null;
  let weights: QuantFormat | undefined;
  const weightsArg = (v: string | undefined): QuantFormat => {
    if (!QUANT_FORMATS.includes(v as QuantFormat)) usage(`--weights must be one of ${QUANT_FORMATS.join(', ')}, got ${JSON.stringify(v ?? '')}`);
    return v as QuantFormat;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--weights') {
      weights = weightsArg(args[++i]);
      continue;
    }
    if (a.startsWith('--weights=')) {
      weights = weightsArg(a.slice(10));
      continue;
    }
    if (a === '--only') only = (args[++i] ?? usage('--only needs a list')).split(',').filter(Boolean);
    else if (a.startsWith('--only=')) only = a.slice(7).split(',').filter(Boolean);
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (dir) usage('only one DIR');
    else dir = a;
  }
  if (!dir) usage('DIR is required');
  if (!existsSync(dir)) usage(`${dir} does not exist (the repository's own cases: tests/fixtures, tests/fixtures/variants)`);
  if (!statSync(dir).isDirectory()) usage(`${dir} is not a folder of case folders`);
  let cases = listCases(dir);
  if (only) {
    const missing = only.filter((o) => !cases.includes(o));
    if (missing.length) usage(`no such case in ${dir}: ${missing.join(', ')}`);
    cases = cases.filter((c) => only!.includes(c));
  }
  if (!cases.length) usage(`no case folders in ${dir}`);
  if (weights) {
    // Schedulers and tokenizers have no weights, CLIP text encoders none that are quantized: the
    // quantized run is of the other model cases and the pipeline cases.
    const skipped = cases.filter((c) => !hasQuantizableWeights(dir!, c));
    cases = cases.filter((c) => !skipped.includes(c));
    if (skipped.length) console.error(`not run with --weights (no weights it quantizes): ${skipped.join(', ')}`);
    if (!cases.length) usage(`no model or pipeline cases in ${dir} to run with --weights ${weights}`);
  }
  const gpu = await getGpu();
  const rt = new Runtime(gpu);
  console.log(`adapter: ${gpu.adapterName}`);
  if (weights) return runQuantized(rt, dir, cases, weights);
  console.log(gpu.features.has('shader-f16') ? 'precision: f32 and f16 (shader-f16)' : 'precision: f32 only (adapter has no shader-f16)');
  const rows: CaseResult[] = [];
  for (const c of cases) {
    const r = await runCase(rt, dir, c);
    rows.push(r);
    console.error(`${r.status.padEnd(11)} ${c} (${(r.ms / 1000).toFixed(1)}s)`);
  }
  console.log(formatTable(rows));
  const bad = rows.filter((r) => r.status !== 'pass');
  console.log(bad.length ? `${bad.length} of ${rows.length} cases did not pass` : `all ${rows.length} cases passed`);
  process.exit(bad.length ? 1 : 0);
}

/**
 * --weights: every model and pipeline case with `weights` GEMM weights and f32 activations. The
 * ratios are the result: quantized weights are expected to exceed the float32 tolerance, so no
 * case fails for its size (only NaN/Inf outputs, errors and unsupported cases do).
 */
async function runQuantized(rt: Runtime, dir: string, cases: string[], weights: QuantFormat): Promise<never> {
  console.log(`weights: ${weights} (every model case's GEMM weights quantized at load, CLIP text encoders excepted, f32 activations; pipeline cases: the U-Net's, as loadModel's weights option)`);
  console.log(`quantized runs are REPORTED, not judged: each ratio max|got - ref| / max|ref| is against the float32 reference, with no tolerance applied (the f32 bound is 1e-3)`);
  console.log(`loadModel quantizes ${[...QUANTIZED_CLASSES].join(', ')} only; the other model classes are quantized here to show what it would cost them`);
  const rows: CaseResult[] = [];
  for (const c of cases) {
    const r = await runCase(rt, dir, c, weights);
    rows.push(r);
    console.error(`${r.status.padEnd(11)} ${c} (${(r.ms / 1000).toFixed(1)}s)`);
  }
  console.log(formatQuantTable(rows));
  const bad = rows.filter((r) => r.status !== 'reported');
  console.log(bad.length ? `${bad.length} of ${rows.length} cases did not run to a finite result` : `${rows.length} cases measured with ${weights} weights (ratios reported, no tolerance applied)`);
  process.exit(bad.length ? 1 : 0);
}

main().catch((e) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
