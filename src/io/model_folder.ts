// A diffusers model folder (config.json + diffusion_pytorch_model.safetensors, as save_pretrained
// writes it). File access goes through FolderReader so a browser can load the same layout by URL.
import { parsePythonJson } from './python_json.ts';
import { fileSource, memorySource, type ByteSource } from './byte_source.ts';
import { parseSafetensors, readFileBytes, readSafetensorsHeader } from './safetensors.ts';
import { WeightStore, type StreamedFile } from './weights.ts';
import { ModelFolderError } from '../errors.ts';

export interface ModelFolder {
  dir: string;
  config: Record<string, unknown>;
  weights: WeightStore;
  /** The weight files the store reads (openModelFrom). */
  files?: string[];
}

export interface FolderReader {
  /** The full path or URL of `name`, for messages. */
  where(name: string): string;
  /** The file's bytes, or null when it does not exist (small files: JSON, tokenizer files). */
  read(name: string): Promise<Uint8Array | null>;
  /**
   * The file as a ByteSource read in parts, or null when it does not exist. Weight files are
   * opened this way; a reader without it has its files read whole (fine for small models only).
   */
  open?(name: string): Promise<ByteSource | null>;
}

const CONFIG = 'config.json';
// The full-precision file wins when both exist; the fp16 variant is what some Hub repos ship alone.
const WEIGHT_FILES = ['diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors'];

export function parseJsonObject(bytes: Uint8Array, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parsePythonJson(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ModelFolderError('bad-json', `${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ModelFolderError('bad-json', `${where}: expected a JSON object, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`);
  }
  return v as Record<string, unknown>;
}

/**
 * config.json and the first weight file present of `weightFiles` (diffusers' names by default;
 * a transformers folder such as text_encoder/ passes its own). `kind` names the folder in errors.
 */
export async function loadModelFrom(reader: FolderReader, dir: string, weightFiles: readonly string[] = WEIGHT_FILES, kind = 'a diffusers model folder'): Promise<ModelFolder> {
  const config = await readJsonFrom(reader, CONFIG, `${kind} needs ${CONFIG}`);
  for (const name of weightFiles) {
    const bytes = await reader.read(name);
    if (bytes) return { dir, config, weights: new WeightStore(parseSafetensors(bytes, reader.where(name)), dir) };
  }
  throw new ModelFolderError('missing', `${dir}: no weights found (looked for ${weightFiles.join(' and ')})`);
}

function joinPath(dir: string, name: string): string {
  return /[\\/]$/.test(dir) ? dir + name : `${dir}/${name}`;
}

/** A reader for `sub/` of the folder `root` reads (a pipeline's unet/, vae/, ...). */
export function subFolder(root: FolderReader, sub: string): FolderReader {
  return {
    where: (name) => root.where(`${sub}/${name}`),
    read: (name) => root.read(`${sub}/${name}`),
    ...(root.open ? { open: (name: string) => root.open!(`${sub}/${name}`) } : {}),
  };
}

/** A JSON object file the folder must have; `why` ends the not-found message. */
export async function readJsonFrom(reader: FolderReader, name: string, why = ''): Promise<Record<string, unknown>> {
  const bytes = await reader.read(name);
  if (!bytes) throw new ModelFolderError('missing', `${reader.where(name)}: not found${why ? ` (${why})` : ''}`);
  return parseJsonObject(bytes, reader.where(name));
}

/** Node: reads a folder on disk. */
export function nodeFolderReader(dir: string): FolderReader {
  return {
    where: (name) => joinPath(dir, name),
    read: (name) => readFileBytes(joinPath(dir, name)),
    open: (name) => fileSource(joinPath(dir, name)),
  };
}

export async function loadModelFolder(dir: string): Promise<ModelFolder> {
  const fs = await import('node:fs/promises');
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat?.isDirectory()) throw new ModelFolderError('missing', `${dir}: model folder not found (or not a directory)`);
  return loadModelFrom(nodeFolderReader(dir), dir);
}

/** Node: a JSON object from disk (config.json, scheduler_config.json, case.json). */
export async function readJson(path: string): Promise<Record<string, unknown>> {
  const bytes = await readFileBytes(path);
  if (!bytes) throw new ModelFolderError('missing', `${path}: not found`);
  return parseJsonObject(bytes, path);
}

/** diffusers' and transformers' variant naming: `a.safetensors` -> `a.fp16.safetensors`, `a.safetensors.index.json` -> `a.safetensors.index.fp16.json`. */
export function variantName(name: string, variant: string | null | undefined): string {
  if (!variant) return name;
  const parts = name.split('.');
  parts.splice(parts.length - 1, 0, variant);
  return parts.join('.');
}

export interface OpenOptions {
  /** The weight file's name without variant (diffusers': diffusion_pytorch_model.safetensors; transformers': model.safetensors). */
  weightName?: string;
  /** What the folder is, for messages. */
  kind?: string;
  /**
   * A variant to prefer ('fp16': half the download where a repo ships both): its files are
   * looked for first, then the plain ones. null or absent: the plain files first, then fp16 ones
   * (what some Hub repos ship alone).
   */
  variant?: string | null;
}

/** The file, as a ByteSource: opened in parts where the reader can, else read whole. */
async function openFile(reader: FolderReader, name: string): Promise<ByteSource | null> {
  if (reader.open) return reader.open(name);
  const bytes = await reader.read(name);
  return bytes ? memorySource(bytes, reader.where(name)) : null;
}

async function streamedFile(reader: FolderReader, name: string, src: ByteSource): Promise<StreamedFile> {
  return { name, source: src, header: await readSafetensorsHeader(src) };
}

/** A sharded checkpoint: the index's weight_map names each key's shard; every shard is opened and its header checked against it. */
async function openSharded(reader: FolderReader, indexName: string, index: Record<string, unknown>): Promise<StreamedFile[]> {
  const where = reader.where(indexName);
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new ModelFolderError('bad-json', `${where}: weight_map must be an object of weight name -> shard file`);
  const byShard = new Map<string, string[]>();
  for (const [key, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || !file.endsWith('.safetensors')) {
      throw new ModelFolderError('bad-json', `${where}: weight_map['${key}'] = ${JSON.stringify(file)} is not a .safetensors file in this folder`);
    }
    const keys = byShard.get(file);
    if (keys) keys.push(key);
    else byShard.set(file, [key]);
  }
  if (byShard.size === 0) throw new ModelFolderError('bad-json', `${where}: weight_map is empty`);
  const files: StreamedFile[] = [];
  for (const [shard, keys] of byShard) {
    const src = await openFile(reader, shard);
    if (!src) throw new ModelFolderError('missing', `${reader.where(shard)}: not found (${indexName} names it for ${keys.length} weights)`);
    const f = await streamedFile(reader, shard, src);
    const absent = keys.filter((k) => !f.header.entries.has(k));
    if (absent.length) throw new ModelFolderError('missing', `${reader.where(shard)}: ${absent.length} weights ${indexName} places here are not in it: ${absent.slice(0, 5).join(', ')}`);
    files.push(f);
  }
  return files;
}

/**
 * config.json and the weight files' headers, without a tensor byte: the returned store is
 * streamed (build the model against it, which claims every tensor, then fill() it). Looks for a
 * single file or a sharded index (`….safetensors.index.json`), in the variant asked for first.
 */
export async function openModelFrom(reader: FolderReader, dir: string, opts: OpenOptions = {}): Promise<ModelFolder> {
  const kind = opts.kind ?? 'a diffusers model folder';
  const base = opts.weightName ?? WEIGHT_FILES[0]!;
  const index = `${base}.index.json`;
  const variants = opts.variant ? [opts.variant, null] : [null, 'fp16'];
  const candidates = variants.flatMap((v) => [variantName(base, v), variantName(index, v)]);
  const config = await readJsonFrom(reader, CONFIG, `${kind} needs ${CONFIG}`);
  for (const name of candidates) {
    if (name.endsWith('.json')) {
      const bytes = await reader.read(name);
      if (!bytes) continue;
      const files = await openSharded(reader, name, parseJsonObject(bytes, reader.where(name)));
      return { dir, config, weights: WeightStore.streamed(files, dir), files: files.map((f) => f.name) };
    }
    const src = await openFile(reader, name);
    if (!src) continue;
    const f = await streamedFile(reader, name, src);
    return { dir, config, weights: WeightStore.streamed([f], dir), files: [name] };
  }
  throw new ModelFolderError('missing', `${dir}: no weights found (looked for ${candidates.join(', ')})`);
}
