// A model folder served over HTTP (a static host, a CDN, the Hub's resolve/main/ URLs): the same
// diffusers layout as on disk, read with fetch. Bodies are streamed so callers can show download
// progress, and where the Cache API exists (browsers and their workers, on https or localhost) a
// file is kept there, so a second visit reads it from the cache instead of the network.
import type { FolderReader } from './model_folder.ts';
import { DownloadError } from '../errors.ts';

export interface UrlReaderOptions {
  /** Bytes read so far of `file`, of `total` (0 when the server sends no Content-Length). */
  onProgress?: (loaded: number, total: number, file: string) => void;
  /** Keep files in the Cache API under this name (default true where `caches` exists). */
  cache?: boolean;
  cacheName?: string;
  /** Called with `file` when it came from the cache rather than the network. */
  onCacheHit?: (file: string) => void;
  fetch?: typeof fetch;
}

export const DEFAULT_CACHE_NAME = 'fresco-models-v1';

function hasCacheApi(): boolean {
  return typeof (globalThis as { caches?: CacheStorage }).caches !== 'undefined';
}

/** `base` resolved against the page (or worker) location when it is relative. */
export function resolveBaseUrl(base: string): string {
  const loc = (globalThis as { location?: { href: string } }).location;
  const abs = loc ? new URL(base, loc.href).href : new URL(base).href;
  return abs.endsWith('/') ? abs : `${abs}/`;
}

async function readBody(res: Response, file: string, url: string, onProgress: UrlReaderOptions['onProgress']): Promise<Uint8Array> {
  const total = Number(res.headers.get('content-length') ?? 0) || 0;
  if (!res.body) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    onProgress?.(bytes.length, total || bytes.length, file);
    return bytes;
  }
  // One buffer up front when the size is known: model files are tens to thousands of MiB, and
  // collecting chunks first would hold them twice.
  let out = new Uint8Array(total);
  let loaded = 0;
  const reader = res.body.getReader();
  onProgress?.(0, total, file);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > out.length) {
      const grown = new Uint8Array(Math.max(out.length * 2, loaded + value.length));
      grown.set(out.subarray(0, loaded));
      out = grown;
    }
    out.set(value, loaded);
    loaded += value.length;
    onProgress?.(loaded, total, file);
  }
  if (total && loaded !== total) throw new DownloadError(`${url}: got ${loaded} bytes, expected ${total}`);
  return loaded === out.length ? out : out.slice(0, loaded);
}

/** A FolderReader over `baseUrl`; a 404 is a missing file, other HTTP errors throw DownloadError. */
export function urlFolderReader(baseUrl: string, opts: UrlReaderOptions = {}): FolderReader {
  const base = resolveBaseUrl(baseUrl);
  const doFetch = opts.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const useCache = (opts.cache ?? true) && hasCacheApi();
  let cache: Promise<Cache | null> | null = null;
  const openCache = () => (cache ??= caches.open(opts.cacheName ?? DEFAULT_CACHE_NAME).catch(() => null));
  return {
    where: (name) => new URL(name, base).href,
    async read(name) {
      const url = new URL(name, base).href;
      const c = useCache ? await openCache() : null;
      const hit = c ? await c.match(url) : undefined;
      if (hit) {
        opts.onCacheHit?.(name);
        return readBody(hit, name, url, opts.onProgress);
      }
      let res: Response;
      try {
        res = await doFetch(url);
      } catch (e) {
        throw new DownloadError(`${url}: ${(e as Error).message}`);
      }
      if (res.status === 404) return null;
      if (!res.ok) throw new DownloadError(`${url}: HTTP ${res.status} ${res.statusText}`);
      const bytes = await readBody(res, name, url, opts.onProgress);
      // A failed cache write (quota, private mode) only costs the next visit a download.
      if (c) {
        const headers = { 'content-type': res.headers.get('content-type') ?? 'application/octet-stream', 'content-length': String(bytes.length) };
        await c.put(url, new Response(bytes as BodyInit, { headers })).catch(() => undefined);
      }
      return bytes;
    },
  };
}
