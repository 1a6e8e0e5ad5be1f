// Where a LoRA file comes from: bytes, a URL, a path on disk (Node), or a Hub repository. LoRA
// files are small (megabytes to a few hundred), so they are read whole.
import { resolveHubSource } from './hub.ts';
import { isUrlSource } from './source_kind.ts';
import { parseSafetensors, readFileBytes, type HostTensor } from './safetensors.ts';
import { DownloadError, LoraError, TokenizerError } from '../errors.ts';

export type LoraSource = string | Uint8Array | ArrayBuffer;

export interface LoadLoraOptions {
  /** The weight of the adapter's change (default 1). */
  scale?: number;
  /**
   * Merge the adapter into the weights (true: no cost per step), or keep it apart and add its
   * low-rank term in each adapted layer's GEMM (false: a little work per step, and a scale change
   * or an unload is exact, with no merge rounding; Model.loadLora). Default: merged, unless it
   * adapts a quantized weight (loaded with `weights: 'q8' | 'q4'`), which it cannot be merged into.
   */
  fuse?: boolean;
  /** The adapter's name for setLoraScales / unloadLora (default: the file's name); bytes are named by it in messages. */
  name?: string;
  /** URL and hf: sources: a fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** hf: sources: the Hub's address (default as loadModel's). */
  hubEndpoint?: string;
  /** The file read from a Hub repository named without one (default pytorch_lora_weights.safetensors). */
  defaultFile?: string;
}

/** diffusers' save_lora_weights file name, read from a Hub repository named without a file. */
export const DEFAULT_LORA_FILE = 'pytorch_lora_weights.safetensors';

function baseName(path: string): string {
  const file = path.split(/[\\/]/).filter(Boolean).pop() ?? 'lora';
  return file.replace(/\.(safetensors|bin|pt)$/i, '') || 'lora';
}

async function fetchBytes(url: string, doFetch: typeof fetch): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await doFetch(url);
  } catch (e) {
    throw new DownloadError(`${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new DownloadError(`${url}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * The file's bytes, where it came from (for messages) and a default name (the file's). `ext`:
 * the file name endings accepted for paths and URLs.
 */
export async function readSourceBytes(source: LoraSource, opts: LoadLoraOptions = {}, ext = /\.safetensors$/i, what: 'LoRA' | 'embedding' = 'LoRA'): Promise<{ bytes: Uint8Array; where: string; name: string }> {
  const fail = (msg: string) => (what === 'LoRA' ? new LoraError('format', msg) : new TokenizerError(msg));
  const only = (s: string) => fail(`${s}: only ${what === 'embedding' ? '.safetensors, .bin and .pt' : '.safetensors'} files are read as ${what === 'LoRA' ? 'LoRAs' : 'embeddings'}`);
  if (typeof source !== 'string') {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(source);
    return { bytes, where: opts.name ?? 'the file given as bytes', name: opts.name ?? 'lora' };
  }
  const doFetch = opts.fetch ?? ((u: RequestInfo | URL, i?: RequestInit) => fetch(u, i));
  const hub = resolveHubSource(source, { endpoint: opts.hubEndpoint });
  let url: string | null = null;
  if (hub) url = ext.test(hub.subfolder) ? hub.baseUrl.replace(/\/$/, '') : `${hub.baseUrl}${opts.defaultFile ?? DEFAULT_LORA_FILE}`;
  else if (isUrlSource(source)) url = new URL(source, (globalThis as { location?: { href: string } }).location?.href).href;
  if (url) {
    if (!ext.test(new URL(url).pathname)) throw only(source);
    return { bytes: await fetchBytes(url, doFetch), where: url, name: baseName(hub && !ext.test(hub.subfolder) ? hub.repo : new URL(url).pathname) };
  }
  if (!ext.test(source)) throw only(source);
  const bytes = await readFileBytes(source);
  if (!bytes) throw fail(`${source}: file not found`);
  return { bytes, where: source, name: baseName(source) };
}

/** A LoRA file's tensors, where it came from (for messages) and a default adapter name. */
export async function readLoraSource(source: LoraSource, opts: LoadLoraOptions = {}): Promise<{ tensors: Map<string, HostTensor>; where: string; name: string }> {
  const { bytes, where, name } = await readSourceBytes(source, opts);
  return { tensors: parseSafetensors(bytes, where), where, name };
}
