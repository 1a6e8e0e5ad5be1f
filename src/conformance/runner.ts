// Runs every case folder under a directory (model cases, scheduler traces, pipeline runs), as
// ../shared/fixtures/README.md describes them, telling the kind of a case by its files.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Runtime } from '../gpu/runtime.ts';
import { replaySchedulerTrace } from './scheduler_case.ts';
import { readJson } from '../io/model_folder.ts';
import { runModelCase, TOLERANCE } from './model_case.ts';
import { runPipelineCase } from './pipeline_case.ts';
import { runTokenizerCase } from './tokenizer_case.ts';
import { QUANTIZED_CLASSES } from '../models/precision.ts';
import { formatTol, Unsupported, type Measured } from './measure.ts';
import type { QuantFormat } from '../io/quant.ts';

export interface CaseResult {
  name: string;
  kind: 'model' | 'scheduler' | 'pipeline' | 'tokenizer' | 'unknown';
  cls: string;
  maxAbsErr: number;
  maxAbsRef: number;
  ratio: number;
  tol: number;
  /**
   * 'reported': a run with quantized weights (`weights`), held to no bound: its ratio is the
   * measurement (only NaN/Inf or an error fail it).
   */
  status: 'pass' | 'fail' | 'unsupported' | 'error' | 'reported';
  /** The GEMM weights' format of a quantized run (runCase's `weights`); absent: the float runs. */
  weights?: QuantFormat;
  /** Model cases: the GPU bytes of the model's weights as built. */
  weightBytes?: number;
  ms: number;
  note: string;
  /**
   * The same model or pipeline case built in f16, where the device has shader-f16. `epsTol`: a
   * guided pipeline's bound for its guided noise prediction, tol · (1 + 2g) (the rest keeps tol).
   */
  f16?: { maxAbsErr: number; ratio: number; tol: number; epsTol?: number; status: 'pass' | 'fail' | 'error'; note: string };
}

/** Runs the f16 path of a case next to its f32 one; its failure fails the case. */
async function f16Run(rt: Runtime, run: () => Promise<Measured & { detail?: string; epsTol?: number }>): Promise<CaseResult['f16']> {
  if (!rt.gpu.features.has('shader-f16')) return undefined;
  const tol = TOLERANCE.f16;
  try {
    const r = await run();
    return { maxAbsErr: r.maxAbsErr, ratio: r.ratio, tol, ...(r.epsTol !== undefined ? { epsTol: r.epsTol } : {}), status: r.pass ? 'pass' : 'fail', note: r.note ?? r.detail ?? '' };
  } catch (e) {
    return { maxAbsErr: NaN, ratio: NaN, tol, status: 'error', note: (e as Error).message.split('\n')[0]! };
  }
}

function withF16(status: 'pass' | 'fail', f16: CaseResult['f16']): 'pass' | 'fail' {
  return status === 'pass' && (!f16 || f16.status === 'pass') ? 'pass' : 'fail';
}

export function listCases(root: string): string[] {
  return readdirSync(root)
    .filter((n) => statSync(join(root, n)).isDirectory())
    .filter((n) => ['case.json', 'pipeline.json', 'cases.json'].some((f) => existsSync(join(root, n, f))))
    .sort();
}

function kindOf(dir: string): CaseResult['kind'] {
  if (existsSync(join(dir, 'pipeline.json'))) return 'pipeline';
  if (existsSync(join(dir, 'scheduler_config.json')) && existsSync(join(dir, 'trace.safetensors'))) return 'scheduler';
  if (existsSync(join(dir, 'io.safetensors'))) return 'model';
  if (existsSync(join(dir, 'cases.json')) && existsSync(join(dir, 'vocab.json'))) return 'tokenizer';
  return 'unknown';
}

/** The kind of case a folder holds (by its files). */
export function caseKind(root: string, name: string): CaseResult['kind'] {
  return kindOf(join(root, name));
}

/**
 * Whether a case has GEMM weights `--weights` quantizes: model and pipeline cases, but not a CLIP
 * text encoder's (its Linear weights stay float, as loadModel keeps text encoders).
 */
export function hasQuantizableWeights(root: string, name: string): boolean {
  const kind = kindOf(join(root, name));
  if (kind === 'pipeline') return true;
  if (kind !== 'model') return false;
  return !/"class"\s*:\s*"CLIPText/.test(readFileSync(join(root, name, 'case.json'), 'utf8'));
}

/**
 * Runs one case. `weights` 'q8' / 'q4': the model and pipeline cases run once, in f32 with those
 * GEMM weights (no f16 run), and are reported rather than judged (status 'reported'); scheduler
 * and tokenizer cases have no weights and are not run (status 'unsupported', say so).
 */
export async function runCase(rt: Runtime, root: string, name: string, weights?: QuantFormat): Promise<CaseResult> {
  const dir = join(root, name);
  const kind = kindOf(dir);
  if (weights) return runQuantized(rt, dir, name, kind, weights);
  const t0 = performance.now();
  const base = { name, kind, cls: '?', maxAbsErr: NaN, maxAbsRef: NaN, ratio: NaN, tol: kind === 'scheduler' ? 1e-5 : kind === 'tokenizer' ? 0 : 1e-3 };
  try {
    if (kind === 'tokenizer') {
      // Token ids are integers: the "error" is the count of cases that differ at all.
      const r = await runTokenizerCase(dir);
      const note = r.firstMismatch ?? `${r.cases} prompts, ids exact`;
      return { ...base, cls: 'CLIPTokenizer', maxAbsErr: r.mismatches, maxAbsRef: r.cases, ratio: r.mismatches / Math.max(1, r.cases), status: r.mismatches === 0 && r.cases > 0 ? 'pass' : 'fail', ms: performance.now() - t0, note };
    }
    if (kind === 'model') {
      const r = await runModelCase(rt, dir);
      const f16 = await f16Run(rt, () => runModelCase(rt, dir, 'f16'));
      return { ...base, cls: r.cls, maxAbsErr: r.maxAbsErr, maxAbsRef: r.maxAbsRef, ratio: r.ratio, status: withF16(r.pass ? 'pass' : 'fail', f16), ms: performance.now() - t0, note: r.note ?? '', f16 };
    }
    if (kind === 'scheduler') {
      const kase = await readJson(join(dir, 'case.json'));
      const r = await replaySchedulerTrace(rt, dir);
      let maxAbsErr = 0;
      let ratio = 0;
      let maxAbsRef = 0;
      for (const s of r.steps) {
        maxAbsErr = Math.max(maxAbsErr, s.maxAbsErr);
        maxAbsRef = Math.max(maxAbsRef, s.maxAbsRef);
        ratio = Math.max(ratio, s.maxAbsRef > 0 ? s.maxAbsErr / s.maxAbsRef : s.maxAbsErr);
      }
      const pass = r.timestepsMatch && ratio <= base.tol && r.steps.length > 0;
      return { ...base, cls: String(kase.class), maxAbsErr, maxAbsRef, ratio, status: pass ? 'pass' : 'fail', ms: performance.now() - t0, note: r.timestepsMatch ? `${r.steps.length} steps` : 'timesteps differ' };
    }
    if (kind === 'pipeline') {
      const r = await runPipelineCase(rt, dir);
      const f16 = await f16Run(rt, () => runPipelineCase(rt, dir, 'f16'));
      return { ...base, cls: r.cls, maxAbsErr: r.maxAbsErr, maxAbsRef: r.maxAbsRef, ratio: r.ratio, status: withF16(r.pass ? 'pass' : 'fail', f16), ms: performance.now() - t0, note: r.note ?? r.detail, f16 };
    }
    return { ...base, status: 'unsupported', ms: 0, note: 'no case.json/io.safetensors, trace or pipeline.json recognised' };
  } catch (e) {
    const err = e as Error;
    let cls = base.cls;
    try {
      cls = String((await readJson(join(dir, 'case.json'))).class ?? cls);
    } catch {
      /* pipeline cases have no case.json */
    }
    const unsupported = err instanceof Unsupported || err.name === 'ConfigError' || err.name === 'SchedulerConfigError';
    return { ...base, cls, status: unsupported ? 'unsupported' : 'error', ms: performance.now() - t0, note: err.message.split('\n')[0]! };
  }
}

async function runQuantized(rt: Runtime, dir: string, name: string, kind: CaseResult['kind'], weights: QuantFormat): Promise<CaseResult> {
  const t0 = performance.now();
  const base = { name, kind, cls: '?', maxAbsErr: NaN, maxAbsRef: NaN, ratio: NaN, tol: Infinity, weights };
  const status = (m: Measured): CaseResult['status'] => (m.pass ? 'reported' : 'fail');
  try {
    if (kind === 'model') {
      // CLIP's Linear weights are not GEMM weights the loader quantizes: such a run would be float.
      if (!hasQuantizableWeights(dirname(dir), name)) return { ...base, status: 'unsupported', ms: 0, note: 'text encoders keep float weights: nothing to quantize' };
      const r = await runModelCase(rt, dir, 'f32', weights);
      // loadModel quantizes the denoisers alone; the others show what it would cost them.
      const scope = QUANTIZED_CLASSES.has(r.cls) ? '' : 'loadModel keeps this class float';
      return { ...base, cls: r.cls, maxAbsErr: r.maxAbsErr, maxAbsRef: r.maxAbsRef, ratio: r.ratio, weightBytes: r.weightBytes, status: status(r), ms: performance.now() - t0, note: [r.note ?? r.detail ?? '', scope].filter(Boolean).join('; ') };
    }
    if (kind === 'pipeline') {
      // LoRA cases: unfused on the quantized U-Net, as loadLora's default does.
      const r = await runPipelineCase(rt, dir, 'f32', 'auto', weights);
      return { ...base, cls: r.cls, maxAbsErr: r.maxAbsErr, maxAbsRef: r.maxAbsRef, ratio: r.ratio, status: status(r), ms: performance.now() - t0, note: [r.note, r.detail].filter(Boolean).join('; ') };
    }
    return { ...base, status: 'unsupported', ms: 0, note: `a ${kind} case has no weights to quantize` };
  } catch (e) {
    const err = e as Error;
    const unsupported = err instanceof Unsupported || err.name === 'ConfigError';
    return { ...base, status: unsupported ? 'unsupported' : 'error', ms: performance.now() - t0, note: err.message.split('\n')[0]! };
  }
}

/**
 * The table of quantized runs: each case's ratio max|got − ref| / max|ref| against the float32
 * reference, with no tolerance applied (the f32 bound 1e-3 is shown for scale only).
 */
export function formatQuantTable(rows: CaseResult[]): string {
  const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));
  const header = ['case', 'class', 'weights', 'max|err|', 'max|ref|', 'ratio', 'ratio / f32 tol', 'weight bytes', 'result', 'time', 'note'];
  const body = rows.map((r) => [
    r.name, r.cls, r.weights ?? '-', fmt(r.maxAbsErr), fmt(r.maxAbsRef), fmt(r.ratio), Number.isFinite(r.ratio) ? `${r.ratio / 1e-3 < 1e4 ? (r.ratio / 1e-3).toFixed(1) : fmt(r.ratio / 1e-3)}x` : '-',
    r.weightBytes !== undefined ? String(r.weightBytes) : '-', r.status.toUpperCase(), `${(r.ms / 1000).toFixed(1)}s`, r.note,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/** The f16 tol column: the tolerance, and a guided pipeline's own noise-prediction bound beside it. */
function f16Tol(f16: NonNullable<CaseResult['f16']>): string {
  return f16.epsTol !== undefined ? `${formatTol(f16.tol)} (guided eps ${formatTol(f16.epsTol)})` : formatTol(f16.tol);
}

export function formatTable(rows: CaseResult[]): string {
  const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));
  // f32 and f16 errors side by side; '-' where a case has no f16 path or the device no shader-f16.
  const header = ['case', 'class', 'max|err|', 'max|ref|', 'ratio', 'tol', 'f16 ratio', 'f16 tol', 'f16', 'result', 'time', 'note'];
  const body = rows.map((r) => [
    r.name, r.cls, fmt(r.maxAbsErr), fmt(r.maxAbsRef), fmt(r.ratio), r.tol.toExponential(0),
    r.f16 ? fmt(r.f16.ratio) : '-', r.f16 ? f16Tol(r.f16) : '-', r.f16 ? r.f16.status.toUpperCase() : '-',
    r.status.toUpperCase(), `${(r.ms / 1000).toFixed(1)}s`, [r.note, r.f16?.note ? `f16: ${r.f16.note}` : ''].filter(Boolean).join('; '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
