// A model folder served over HTTP (a static host, a CDN, the Hub's resolve/main/ URLs): the same
// diffusers layout as on disk, read with fetch. Small files (JSON, tokenizer files) are read whole
// with read(); weight files are opened with open() as a ByteSource (http_source.ts) and never held
// whole. Where the Cache API exists (browsers and their workers, on https or localhost), files are
// kept there in chunks (model_cache.ts), so a second visit reads them from the cache instead of
// the network.
import type { ByteSource } from './byte_source.ts';
import { bodyLength, DEFAULT_STALL_TIMEOUT_MS, httpSource, stallError, withinStall } from './http_source.ts';
import { cachedSource, hasCacheStorage, readStoredFile, storeFile, type CachedSourceOptions, type StorageLike, type StorageWarning } from './model_cache.ts';
import type { FolderReader } from './model_folder.ts';
import { DownloadError } from '../errors.ts';

export { DEFAULT_CACHE_NAME } from './model_cache.ts';

export interface UrlReaderOptions {
  /** Bytes read so far of `file`, of `total` (0 when the server sends no length). */
  onProgress?: (loaded: number, total: number, file: string) => void;
  /** Keep files in the Cache API under this name (default true where `caches` exists). */
  cache?: boolean;
  cacheName?: string;
  /** Called with `file` when it came from the cache rather than the network. */
  onCacheHit?: (file: string) => void;
  /**
   * Called when a file could not be kept in the cache (over quota, a failed write): the load goes
   * on from the network, and the file is downloaded again next time. Without it, console.warn once.
   */
  onStorageWarning?: (warning: StorageWarning) => void;
  /** The answer to navigator.storage.persist(), asked once per page before the first weight file is stored. */
  onPersist?: (granted: boolean) => void;
  /** Bytes per cache entry (default 32 MiB). */
  chunkBytes?: number;
  /**
   * A download that sends no byte for this long (or a request with no answer) fails with a
   * DownloadError naming the URL, instead of hanging the load (default 60 s; 0 or Infinity: never).
   */
  stallTimeoutMs?: number;
  fetch?: typeof fetch;
  /** Stand-ins for the global `caches` and `navigator.storage` (tests). */
  caches?: CacheStorage;
  storage?: StorageLike;
}

/** A FolderReader that also opens files in parts (weight files). */
export interface UrlFolderReader extends FolderReader {
  /** The file as a ByteSource (cached where the Cache API is used), or null on 404. */
  open(name: string): Promise<ByteSource | null>;
}

/** `base` resolved against the page (or worker) location when it is relative. */
export function resolveBaseUrl(base: string): string {
  const loc = (globalThis as { location?: { href: string } }).location;
  const abs = loc ? new URL(base, loc.href).href : new URL(base).href;
  return abs.endsWith('/') ? abs : `${abs}/`;
}

async function readBody(res: Response, file: string, url: string, onProgress: UrlReaderOptions['onProgress'], stallMs: number): Promise<Uint8Array> {
  // Under Content-Encoding (a gzip'd JSON from a CDN), Content-Length counts the encoded bytes,
  // not the ones read here: then the length is unknown.
  const length = bodyLength(res);
  const total = length ?? 0;
  if (!res.body) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (length !== null && bytes.length < length) throw new DownloadError(`${url}: got ${bytes.length} bytes, expected ${length}`);
    onProgress?.(bytes.length, total || bytes.length, file);
    return bytes;
  }
  // One buffer up front when the size is known, rather than collecting chunks and joining them.
  let out = new Uint8Array(total);
  let loaded = 0;
  const reader = res.body.getReader();
  let done = false;
  onProgress?.(0, total, file);
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await withinStall(reader.read(), stallMs, () => stallError(url, stallMs, `after ${loaded} bytes${total ? ` of ${total}` : ''}`));
      } catch (e) {
        if (e instanceof DownloadError) throw e;
        throw new DownloadError(`${url}: ${(e as Error).message} (after ${loaded} bytes)`);
      }
      if (r.done) {
        done = true;
        break;
      }
      const value = r.value;
      if (loaded + value.length > out.length) {
        const grown = new Uint8Array(Math.max(out.length * 2, loaded + value.length));
        grown.set(out.subarray(0, loaded));
        out = grown;
      }
      out.set(value, loaded);
      loaded += value.length;
      onProgress?.(loaded, total, file);
    }
  } finally {
    if (!done) await reader.cancel().catch(() => undefined);
  }
  if (length !== null && loaded !== length) throw new DownloadError(`${url}: got ${loaded} bytes, expected ${length}`);
  return loaded === out.length ? out : out.slice(0, loaded);
}

/** A FolderReader over `baseUrl`; a 404 is a missing file, other HTTP errors throw DownloadError. */
export function urlFolderReader(baseUrl: string, opts: UrlReaderOptions = {}): UrlFolderReader {
  const base = resolveBaseUrl(baseUrl);
  const doFetch = opts.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const useCache = (opts.cache ?? true) && hasCacheStorage(opts);
  const stallMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const cacheOpts = (name: string): CachedSourceOptions => ({
    file: name,
    base,
    cacheName: opts.cacheName,
    caches: opts.caches,
    storage: opts.storage,
    chunkBytes: opts.chunkBytes,
    onProgress: opts.onProgress,
    onCacheHit: opts.onCacheHit,
    onStorageWarning: opts.onStorageWarning,
    onPersist: opts.onPersist,
  });
  return {
    where: (name) => new URL(name, base).href,

    async read(name) {
      const url = new URL(name, base).href;
      if (useCache) {
        const hit = await readStoredFile(url, cacheOpts(name));
        if (hit) return hit;
      }
      let res: Response;
      const ctl = typeof AbortController === 'function' ? new AbortController() : null;
      try {
        res = await withinStall(ctl ? doFetch(url, { signal: ctl.signal }) : doFetch(url), stallMs, () => {
          ctl?.abort();
          return stallError(url, stallMs, 'no answer to the request');
        });
      } catch (e) {
        if (e instanceof DownloadError) throw e;
        throw new DownloadError(`${url}: ${(e as Error).message}`);
      }
      if (res.status === 404 || !res.ok) await res.body?.cancel().catch(() => undefined);
      if (res.status === 404) return null;
      if (!res.ok) throw new DownloadError(`${url}: HTTP ${res.status} ${res.statusText}`);
      const bytes = await readBody(res, name, url, opts.onProgress, stallMs);
      // A failed write is reported through onStorageWarning (or console.warn); the bytes are good.
      if (useCache) await storeFile(url, bytes, cacheOpts(name));
      return bytes;
    },

    async open(name) {
      const url = new URL(name, base).href;
      const net = httpSource(url, { fetch: doFetch, file: name, onProgress: opts.onProgress, stallTimeoutMs: stallMs });
      if (!useCache) return (await net.exists()) ? net : null;
      const src = cachedSource(url, net, cacheOpts(name));
      // A complete entry needs no request at all; otherwise the 8-byte probe tells a 404.
      if (await src.complete()) return src;
      return (await net.exists()) ? src : null;
    },
  };
}
