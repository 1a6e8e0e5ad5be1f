// A diffusers model folder (config.json + diffusion_pytorch_model.safetensors, as save_pretrained
// writes it). File access goes through FolderReader so a browser can load the same layout by URL.
import { parsePythonJson } from './python_json.ts';
import { parseSafetensors, readFileBytes } from './safetensors.ts';
import { WeightStore } from './weights.ts';
import { ModelFolderError } from '../errors.ts';

export interface ModelFolder {
  dir: string;
  config: Record<string, unknown>;
  weights: WeightStore;
}

export interface FolderReader {
  /** The full path or URL of `name`, for messages. */
  where(name: string): string;
  /** The file's bytes, or null when it does not exist. */
  read(name: string): Promise<Uint8Array | null>;
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
  return { where: (name) => root.where(`${sub}/${name}`), read: (name) => root.read(`${sub}/${name}`) };
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
