// `fresco quantize SRC DST --weights q8|q4` (Node): a copy of a diffusers folder whose U-Net's (or
// ControlNet's) GEMM weights are stored pre-quantized (src/io/quant.ts: `key` as I8 or packed U8
// values beside `key_scale` F16 scales), so the download shrinks; everything else is copied as it
// is. Loading DST gives exactly what loading SRC with `weights: 'q8'` (or 'q4') gives: the values
// are quantized from the same floats the loader would quantize at load.
//
// Which weights are quantized is the model's own answer: it is built against the folder's headers
// (no weight byte read, no GPU: a host-only stand-in for the Runtime) and every key it asks through
// WeightLoader.gemmWeight, and in no other way, is quantized. The weight file is then streamed
// tensor by tensor into one plain diffusion_pytorch_model.safetensors (whatever variant or shards
// the loader would have read), written under a temporary folder renamed to DST at the end.
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Runtime } from '../gpu/runtime.ts';
import { fileSource } from '../io/byte_source.ts';
import { nodeFolderReader, openModelFrom, parseJsonObject } from '../io/model_folder.ts';
import { quantize, SCALE_SUFFIX, storedShapes, type QuantFormat } from '../io/quant.ts';
import { dtypeSize, encodeHeader, readSafetensorsHeader, streamTensors, toFloat32, type DType } from '../io/safetensors.ts';
import type { WeightStore } from '../io/weights.ts';
import { ControlNetModel } from '../models/controlnet.ts';
import { readControlNetConfig } from '../models/controlnet_config.ts';
import { WeightLoader } from '../models/loader.ts';
import { modelLoader, type ModelLoader } from '../models/model_loader.ts';
import { UNet2DModel } from '../models/unet_2d.ts';
import { readUNet2DConfig } from '../models/unet_2d_config.ts';
import { UNet2DConditionModel } from '../models/unet_2d_condition.ts';
import { readUNet2DConditionConfig } from '../models/unet_2d_condition_config.ts';
import { ConfigError, ModelFolderError, UsageError } from '../errors.ts';
import { mib } from '../pipelines/folder_options.ts';

/** The one weight file a quantized component folder has. */
export const QUANTIZED_FILE = 'diffusion_pytorch_model.safetensors';
/** The header metadata key that says a file was written by `fresco quantize` (its value: q8 or q4). */
export const QUANT_METADATA_KEY = 'fresco_quantization';

/** The models whose GEMM weights are quantized (the denoisers), by config.json _class_name: QUANTIZED_CLASSES (a test keeps them equal). */
export const BUILDERS: Record<string, (w: ModelLoader, config: Record<string, unknown>, where: string) => unknown> = {
  UNet2DModel: (w, c, where) => new UNet2DModel(w, readUNet2DConfig(c, where)),
  UNet2DConditionModel: (w, c, where) => new UNet2DConditionModel(w, readUNet2DConditionConfig(c, where)),
  ControlNetModel: (w, c, where) => new ControlNetModel(w, readControlNetConfig(c, where)),
};

/** diffusers' weight files of a model folder (every variant, shard and index, any framework): replaced by QUANTIZED_FILE. */
const WEIGHT_FILE = /^diffusion_(pytorch|flax)_model[.-]/;
/** Not part of the model: a git checkout's history (with its LFS objects, the weights again). */
const SKIPPED_DIRS = new Set(['.git']);

export interface QuantizedComponent {
  /** The component's folder relative to SRC ('' for a single U-Net or ControlNet folder). */
  dir: string;
  className: string;
  /** The weight files read from SRC (the loader's choice of variant or shards). */
  sourceFiles: string[];
  sourceBytes: number;
  /** GEMM weights quantized, of `tensors` in the file. */
  quantized: number;
  tensors: number;
  /** QUANTIZED_FILE's size in DST. */
  bytes: number;
}

export interface QuantizeResult {
  format: QuantFormat;
  components: QuantizedComponent[];
  /** Files of SRC not copied (relative paths): the replaced weight files. */
  dropped: string[];
  /** Every file of SRC (.git aside) and of DST, in bytes. */
  sourceBytes: number;
  bytes: number;
}

/**
 * The Runtime a model is built with to learn which weights it asks for: buffers that are only
 * sizes, no limits, no shader-f16. Anything else a builder touches is an error naming it, rather
 * than a GPU started for a file conversion.
 */
function hostRuntime(): Runtime {
  const known: Record<string, unknown> = {
    gpu: { features: new Set<string>() },
    planLimits: { binding: Number.MAX_SAFE_INTEGER, buffer: Number.MAX_SAFE_INTEGER },
    createBuffer: (bytes: number) => ({ size: bytes, destroy() {} }),
    destroyBuffer() {},
  };
  return new Proxy(known, {
    get(t, p) {
      if (typeof p === 'string' && p in t) return t[p];
      throw new Error(`fresco quantize builds the model without a GPU, but building it used Runtime.${String(p)}`);
    },
  }) as unknown as Runtime;
}

/**
 * The keys `className`'s builder asks through gemmWeight, and only so (a key also read as a float
 * tensor, such as a BGR ControlNet's conv_in, stays float): what a `weights: 'q8'` load quantizes.
 */
export function gemmKeys(store: WeightStore, className: string, config: Record<string, unknown>, where: string, format: QuantFormat): Set<string> {
  const build = BUILDERS[className];
  if (!build) throw new ConfigError(`${where}: _class_name ${JSON.stringify(className)} has no GEMM weights to quantize (supported: ${Object.keys(BUILDERS).join(', ')})`);
  const claims = new Map<string, number>();
  const gemmCalls = new Map<string, number>();
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  // Both counts are kept on these two objects alone (the store is this run's, the loader too):
  // every claim of the store, and every gemmWeight call of the loader and its sub-loaders (which
  // inherit the root's methods).
  const claim = store.claim.bind(store);
  store.claim = (key, shape, sink) => {
    count(claims, key);
    claim(key, shape, sink);
  };
  const w = modelLoader(hostRuntime(), store, { weights: format });
  w.gemmWeight = function (this: WeightLoader, name: string, shape: readonly number[]) {
    count(gemmCalls, this.key(name));
    return WeightLoader.prototype.gemmWeight.call(this, name, shape);
  };
  try {
    build(w, config, where);
  } finally {
    w.destroy();
  }
  return new Set([...gemmCalls].filter(([k, n]) => claims.get(k) === n).map(([k]) => k));
}

interface OutTensor {
  name: string;
  dtype: DType;
  shape: number[];
  offset: number;
  bytes: number;
}

/** Relative paths of every file under `dir` (symbolic links followed, as a Hub cache snapshot has them), .git left out. */
async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    const isDir = e.isSymbolicLink() ? (await stat(join(dir, p))).isDirectory() : e.isDirectory();
    if (isDir) {
      if (!SKIPPED_DIRS.has(e.name)) out.push(...(await listFiles(dir, p)));
    } else out.push(p);
  }
  return out;
}

async function className(dir: string): Promise<string | null> {
  const bytes = await readFile(join(dir, 'config.json')).catch(() => null);
  if (!bytes) return null;
  const cls = parseJsonObject(new Uint8Array(bytes), join(dir, 'config.json'))._class_name;
  return typeof cls === 'string' && cls in BUILDERS ? cls : null;
}

/** The component folders to quantize: SRC itself (a U-Net or ControlNet folder), else its sub-folders that are. */
async function findComponents(src: string): Promise<{ dir: string; cls: string }[]> {
  const own = await className(src);
  if (own) return [{ dir: '', cls: own }];
  const found: { dir: string; cls: string }[] = [];
  for (const e of (await readdir(src, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (SKIPPED_DIRS.has(e.name) || !(e.isDirectory() || (e.isSymbolicLink() && (await stat(join(src, e.name))).isDirectory()))) continue;
    const cls = await className(join(src, e.name));
    if (cls) found.push({ dir: e.name, cls });
  }
  if (!found.length) {
    throw new ModelFolderError('missing', `${src}: no U-Net or ControlNet to quantize (a config.json with _class_name ${Object.keys(BUILDERS).join(', ')} in the folder or one of its sub-folders)`);
  }
  return found;
}

/** Writes `component`'s weights from SRC into `outDir`/QUANTIZED_FILE, its GEMM weights quantized. */
async function quantizeComponent(srcDir: string, outDir: string, cls: string, format: QuantFormat): Promise<Omit<QuantizedComponent, 'dir' | 'bytes'>> {
  const folder = await openModelFrom(nodeFolderReader(srcDir), srcDir);
  const store = folder.weights;
  const already = store.keys().find((k) => k.endsWith(SCALE_SUFFIX) && store.quantFormat(k.slice(0, -SCALE_SUFFIX.length)));
  if (already) {
    const key = already.slice(0, -SCALE_SUFFIX.length);
    throw new ConfigError(`${srcDir}: already quantized ('${key}' is stored ${store.quantFormat(key)}); quantize the float original`);
  }
  const gemm = gemmKeys(store, cls, folder.config, srcDir, format);
  const files = await Promise.all(
    folder.files!.map(async (name) => {
      const source = (await fileSource(join(srcDir, name)))!;
      return { name, source, header: await readSafetensorsHeader(source) };
    }),
  );
  // The output's tensors: each quantized weight's values, then its scales. They are written at
  // their offsets as the source streams past, so their order in the file is free: widest dtype
  // first (as safetensors' own writer does), so that every tensor starts aligned to its element.
  const out: OutTensor[] = [];
  const byName = new Map<string, { values: OutTensor; scales?: OutTensor }>();
  const add = (name: string, dtype: DType, shape: number[]): OutTensor => {
    const t = { name, dtype, shape, offset: 0, bytes: shape.reduce((a, b) => a * b, 1) * dtypeSize(dtype) };
    out.push(t);
    return t;
  };
  const metadata: Record<string, string> = {};
  for (const f of files) {
    Object.assign(metadata, f.header.metadata);
    for (const e of [...f.header.entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end)) {
      if (!gemm.has(e.name)) {
        byName.set(e.name, { values: add(e.name, e.dtype, e.shape) });
        continue;
      }
      if (store.has(e.name + SCALE_SUFFIX)) throw new ConfigError(`${srcDir}: '${e.name}${SCALE_SUFFIX}' is a tensor of the file, where the quantized '${e.name}' would keep its scales`);
      const shapes = storedShapes(format, e.shape);
      const values = add(e.name, format === 'q8' ? 'I8' : 'U8', shapes.values);
      byName.set(e.name, { values, scales: add(e.name + SCALE_SUFFIX, 'F16', shapes.scales) });
    }
  }
  let offset = 0;
  for (const t of out.map((t, i) => ({ t, i })).sort((a, b) => dtypeSize(b.t.dtype) - dtypeSize(a.t.dtype) || a.i - b.i)) {
    t.t.offset = offset;
    offset += t.t.bytes;
  }
  metadata[QUANT_METADATA_KEY] = format;
  const header: Record<string, unknown> = { __metadata__: metadata };
  for (const t of [...out].sort((a, b) => a.offset - b.offset)) header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [t.offset, t.offset + t.bytes] };
  const head = encodeHeader(header);

  const fh = await open(join(outDir, QUANTIZED_FILE), 'wx');
  try {
    const write = async (bytes: Uint8Array, at: number) => {
      for (let done = 0; done < bytes.byteLength; ) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, at + done);
        done += bytesWritten;
      }
    };
    await write(head, 0);
    const base = head.byteLength;
    for (const f of files) {
      await streamTensors(f.source, f.header, new Set(f.header.entries.keys()), async (t) => {
        const o = byName.get(t.name)!;
        if (!o.scales) return write(t.bytes, base + o.values.offset);
        const N = t.shape[0]!;
        const q = quantize(format, toFloat32(t), N, t.shape.slice(1).reduce((a, b) => a * b, 1));
        await write(q.data, base + o.values.offset);
        await write(new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength), base + o.scales.offset);
      });
    }
  } finally {
    await fh.close();
  }
  const sourceBytes = (await Promise.all(files.map(async (f) => (await f.source.size()) ?? 0))).reduce((a, b) => a + b, 0);
  return { className: cls, sourceFiles: folder.files!, sourceBytes, quantized: gemm.size, tensors: store.keys().length };
}

/** The written folder loads: every quantized weight where the model asks for it, with its scales, and nothing left over. */
async function checkLoads(dir: string, cls: string, format: QuantFormat): Promise<void> {
  const folder = await openModelFrom(nodeFolderReader(dir), dir);
  const w = modelLoader(hostRuntime(), folder.weights, { weights: format });
  try {
    BUILDERS[cls]!(w, folder.config, dir);
  } finally {
    w.destroy();
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

/**
 * Writes DST: SRC with its U-Net's (ControlNets') GEMM weights quantized to `format`. DST must not
 * exist (nothing is overwritten); until the last step everything is written under a temporary
 * folder beside it, removed if anything fails.
 */
export async function quantizeFolder(src: string, dst: string, format: QuantFormat, log: (line: string) => void = () => {}): Promise<QuantizeResult> {
  const srcAbs = resolve(src);
  const dstAbs = resolve(dst);
  if (!(await stat(srcAbs).catch(() => null))?.isDirectory()) throw new UsageError(`${src}: model folder not found (or not a directory)`);
  if (await exists(dstAbs)) throw new UsageError(`${dst} already exists; fresco quantize writes a new folder and overwrites nothing (remove it, or choose another name)`);
  const parent = dirname(dstAbs);
  if (!(await stat(parent).catch(() => null))?.isDirectory()) throw new UsageError(`${dst}: the folder ${parent} does not exist`);
  if ((dstAbs + sep).startsWith(srcAbs + sep)) throw new UsageError(`${dst} is inside ${src}; write the copy elsewhere`);

  const components = await findComponents(srcAbs);
  const files = await listFiles(srcAbs);
  const inComponent = (p: string) => components.some((c) => (c.dir ? dirname(p) === c.dir : !p.includes('/')));
  const dropped = files.filter((p) => inComponent(p) && WEIGHT_FILE.test(basename(p)));
  const tmp = await mkdtemp(join(parent, `.${basename(dstAbs)}.partial-`));
  try {
    let sourceBytes = 0;
    for (const p of files) {
      const size = (await stat(join(srcAbs, p))).size;
      sourceBytes += size;
      if (dropped.includes(p)) continue;
      await mkdir(dirname(join(tmp, p)), { recursive: true });
      await copyFile(join(srcAbs, p), join(tmp, p));
    }
    const done: QuantizedComponent[] = [];
    for (const c of components) {
      const where = c.dir || '.';
      log(`${where}: ${c.cls}: quantizing its GEMM weights to ${format}`);
      const outDir = join(tmp, c.dir);
      const r = await quantizeComponent(join(srcAbs, c.dir), outDir, c.cls, format);
      await checkLoads(outDir, c.cls, format);
      const bytes = (await stat(join(outDir, QUANTIZED_FILE))).size;
      done.push({ dir: c.dir, ...r, bytes });
      const from = r.sourceFiles.length === 1 && r.sourceFiles[0] === QUANTIZED_FILE ? '' : ` (from ${r.sourceFiles.join(', ')})`;
      log(`${where}: ${r.quantized} of ${r.tensors} tensors quantized to ${format}; weights ${mib(r.sourceBytes)} -> ${mib(bytes)} (${((100 * bytes) / r.sourceBytes).toFixed(1)}%)${from}`);
    }
    for (const p of dropped) if (!done.some((c) => c.sourceFiles.some((f) => (c.dir ? `${c.dir}/${f}` : f) === p))) log(`not copied: ${p} (replaced by the quantized ${QUANTIZED_FILE})`);
    let bytes = 0;
    for (const p of await listFiles(tmp)) bytes += (await stat(join(tmp, p))).size;
    if (await exists(dstAbs)) throw new UsageError(`${dst} appeared while quantizing; not overwriting it (the result was discarded)`);
    await rename(tmp, dstAbs);
    log(`wrote ${dst}: ${mib(sourceBytes)} -> ${mib(bytes)} (${((100 * bytes) / sourceBytes).toFixed(1)}% of ${src})`);
    return { format, components: done, dropped, sourceBytes, bytes };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
