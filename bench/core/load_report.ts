// What bench/load.ts (Node) and bench/load-browser.ts (Chromium) share: their flags, the model
// folders they generate, the targets of issue 13 and the table each prints.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adapterSlug, roundJson } from './generate_bench.ts';
import { ensureSdFolder, ensureSdxlUnetFolder, SCALES, type GeneratedFolder, type Scale } from './model_gen.ts';
import { PRECISIONS, type Precision } from '../../src/models/precision.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const GIB = 2 ** 30;
export const MIB = 2 ** 20;

export interface LoadArgs {
  scale: Scale;
  /** Where generated folders live (never the repository). */
  modelsDir: string;
  /** diffusers' fp16 variant file names. */
  variant: boolean;
  /** Load the SD pipeline (--no-sd skips it). */
  sd: boolean;
  /** Also generate and load the SDXL-shaped U-Net (5.1 GB at --scale sd15). */
  sdxl: boolean;
  precision: Precision;
  outDir: string;
  argv: string[];
}

export const LOAD_USAGE = `  --scale tiny|sd15     tiny: the sd-tiny/sdxl-tiny fixtures' shapes (seconds); sd15 (default): full size
  --models-dir DIR      where generated folders are kept and reused (default ${join(tmpdir(), 'fresco-bench-models')})
  --variant             name weight files as diffusers' fp16 variant (diffusion_pytorch_model.fp16.safetensors, model.fp16.safetensors)
  --sdxl                also generate and load an SDXL-shaped U-Net (one 5.1 GB file at sd15 scale)
  --no-sd               skip the SD pipeline (with --sdxl: the U-Net alone)
  --precision auto|f16|f32  (default auto)
  --out DIR             result JSON folder (default bench/results)`;

export function parseLoadArgs(argv: string[], extra: string[] = []): LoadArgs {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
    return v;
  };
  const known = new Set(['--scale', '--models-dir', '--variant', '--sdxl', '--no-sd', '--precision', '--out', '--help', ...extra]);
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown flag ${a}\n${LOAD_USAGE}`);
  const scale = (value('scale') ?? 'sd15') as Scale;
  if (!SCALES.includes(scale)) throw new Error(`--scale takes ${SCALES.join(', ')}; got ${scale}`);
  const precision = (value('precision') ?? 'auto') as Precision;
  if (!PRECISIONS.includes(precision)) throw new Error(`--precision takes ${PRECISIONS.join(', ')}; got ${precision}`);
  const modelsDir = resolve(value('models-dir') ?? join(tmpdir(), 'fresco-bench-models'));
  if (modelsDir === repoRoot || modelsDir.startsWith(repoRoot + '/')) throw new Error(`--models-dir ${modelsDir} is inside the repository; generated folders (GBs) go elsewhere`);
  const sdxl = argv.includes('--sdxl');
  const sd = !argv.includes('--no-sd');
  if (!sd && !sdxl) throw new Error('--no-sd without --sdxl leaves nothing to load');
  return { scale, modelsDir, variant: argv.includes('--variant'), sd, sdxl, precision, outDir: resolve(value('out') ?? join(repoRoot, 'bench/results')), argv };
}

export interface BenchModel {
  /** 'sd' (a StableDiffusionPipeline folder, loaded with loadModel) or 'sdxl-unet' (a U-Net folder alone). */
  name: 'sd' | 'sdxl-unet';
  mode: 'pipeline' | 'unet';
  folder: GeneratedFolder;
}

/** The folders the flags ask for, generated or reused. */
export function prepareModels(a: LoadArgs, log: (m: string) => void): BenchModel[] {
  const suffix = a.variant ? '-variant' : '';
  const out: BenchModel[] = [];
  if (a.sd) {
    const dir = join(a.modelsDir, `${a.scale === 'sd15' ? 'sd15' : 'sd-tiny'}-fp16${suffix}`);
    out.push({ name: 'sd', mode: 'pipeline', folder: ensureSdFolder(a.scale, { dir, variant: a.variant, log }) });
  }
  if (a.sdxl) {
    const dir = join(a.modelsDir, `${a.scale === 'sd15' ? 'sdxl' : 'sdxl-tiny'}-unet-fp16${suffix}`);
    out.push({ name: 'sdxl-unet', mode: 'unet', folder: ensureSdxlUnetFolder(a.scale, { dir, variant: a.variant, log }) });
  }
  for (const m of out) {
    const f = m.folder;
    log(`${m.name}: ${f.dir}: ${f.files.length} files, ${(f.weightBytes / GIB).toFixed(2)} GiB of weights (${(f.params / 1e6).toFixed(1)} M parameters)${f.reused ? ', reused' : `, generated in ${(f.generateMs / 1000).toFixed(1)} s`}`);
  }
  return out;
}

export interface TargetRow {
  figure: string;
  value: string;
  target: string;
  /** null: no target (or not applicable at this scale). */
  pass: boolean | null;
}

/** Bytes as GiB from 1 GiB up, else MiB. */
export const gib = (b: number | undefined | null) => (b === undefined || b === null ? '–' : Math.abs(b) >= GIB ? `${(b / GIB).toFixed(2)} GiB` : `${(b / MIB).toFixed(1)} MiB`);
export const secs = (ms: number | undefined | null) => (ms === undefined || ms === null ? '–' : `${(ms / 1000).toFixed(1)} s`);

export function table(rows: TargetRow[]): string {
  const mark = (p: boolean | null) => (p === null ? '' : p ? 'pass' : 'FAIL');
  return ['| figure | value | target | |', '|---|---:|---|---|', ...rows.map((r) => `| ${r.figure} | ${r.value} | ${r.target} | ${mark(r.pass)} |`)].join('\n');
}

/**
 * Writes `result` to <outDir>/load-<models>[-tiny]-<where>-<adapter>-<date>.json (models: sd,
 * sdxl-unet or sd+sdxl-unet) and says where.
 */
export function writeResult(a: LoadArgs, where: 'node' | 'browser', adapter: string, result: unknown, log: (m: string) => void): string {
  const day = new Date().toISOString().slice(0, 10);
  mkdirSync(a.outDir, { recursive: true });
  const models = [...(a.sd ? ['sd'] : []), ...(a.sdxl ? ['sdxl-unet'] : [])].join('+');
  const file = join(a.outDir, `load-${models}${a.scale === 'tiny' ? '-tiny' : ''}-${where}-${adapterSlug(adapter)}-${day}.json`);
  writeFileSync(file, `${JSON.stringify(result, roundJson, 2)}\n`);
  log(`wrote ${relative(process.cwd(), file)}`);
  return file;
}

/**
 * The code a run measured: the commit, and the library files (src/, shaders/) that differed from
 * it when the run started (others edit the same working tree; the page is built from it).
 */
export function sourceState(): { commit: string; uncommitted: string[] } {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trimEnd();
  try {
    const uncommitted = git('status', '--porcelain', '--', 'src', 'shaders')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3));
    return { commit: git('rev-parse', 'HEAD'), uncommitted };
  } catch {
    return { commit: 'unknown (no git)', uncommitted: [] };
  }
}
