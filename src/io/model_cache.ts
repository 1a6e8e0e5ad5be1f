// Model files kept in the browser's Cache API, in fixed-size chunks, so a second visit reads them
// from disk instead of the network. One put of a whole weight file is what failed before: a
// 1.72 GB Response either did not fit or was refused, the error was swallowed, and the next visit
// downloaded it all again; a 5.1 GB SDXL U-Net could not be held in one buffer to put at all.
//
// Layout, per file URL (a query string starts with '&' instead of '?' where the URL has one):
//   <url>?fresco-chunk=0, =1, ...   the file's bytes, `chunkBytes` each (the last one shorter),
//                                   each with content-length and x-fresco-base (the model's URL)
//   <url>?fresco-manifest           JSON (Manifest): size, chunk size, every chunk's length,
//                                   ETag/Last-Modified where the server exposed them, the model
//                                   base URL, when it was stored
// The manifest is written last, and only a manifest makes an entry complete. Before an entry is
// used, its manifest is checked against the chunks present (each one's stored length): an entry
// without a manifest (a load that stopped half way), with a chunk missing or of the wrong length,
// is deleted and the file is fetched again. A chunk that reads short anyway is caught as it is
// read: the entry is deleted and the rest comes from the network, but only once the server has
// shown it still has the stored version (the same size, and the manifest's ETag, or its
// Last-Modified). Otherwise the load fails with a DownloadError rather than join bytes of two
// versions; the entry is gone, so loading again fetches the file whole.
//
// A manifest is written only when the bytes stored are the file's size, as the server said it: a
// body that ended early (no Content-Length to tell, or a proxy that cut it) is never kept as
// complete. Where the server does not tell the size (Content-Range hidden cross-origin), the
// stream that fills the cache is asked from byte 0, so that its 200's Content-Length tells it.
//
// (Cache keys differ by query string, not by fragment: the Cache API ignores fragments when it
// matches.)
//
// While a file streams from the network, its bytes are copied into one chunk buffer, and each
// full chunk is put before more is read: the memory held is about one chunk (32 MiB by default).
// A put that fails (quota, or anything else) is never silent: onStorageWarning hears it, with the
// sizes navigator.storage.estimate() gives, or console.warn once per page without a callback; the
// file's chunks are deleted and the load goes on from the network.
import type { ByteSource } from './byte_source.ts';
import { DownloadError, StorageError } from '../errors.ts';

/**
 * v2 because the layout changed: v1 (fresco-models-v1) held each file whole under its own URL.
 * Those entries cannot be read in parts, and the large ones are the ones whose put failed, so
 * the v1 cache is deleted the first time the default cache is opened on a page: keeping it would
 * hold quota the v2 chunks need, invisible to listStoredModels. Its small files are fetched again
 * once.
 */
export const DEFAULT_CACHE_NAME = 'fresco-models-v2';
export const V1_CACHE_NAME = 'fresco-models-v1';
export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;
const MANIFEST_VERSION = 2;

/** A file the Cache API could not keep (it still loads, from the network). */
export interface StorageWarning {
  /** The file's name in the model folder (or its URL). */
  file: string;
  url: string;
  /** The file's size, where known. */
  bytesNeeded: number | null;
  /** From navigator.storage.estimate(), where it exists. */
  usage: number | null;
  quota: number | null;
  /** What happened; `cause` holds the Cache API's own error (QuotaExceededError, ...). */
  error: StorageError;
}

/** navigator.storage, or the part of it used here. */
export type StorageLike = Partial<Pick<StorageManager, 'estimate' | 'persist' | 'persisted'>>;

export interface ModelStoreOptions {
  /** Default DEFAULT_CACHE_NAME. */
  cacheName?: string;
  /** A CacheStorage to use instead of the global `caches` (tests). */
  caches?: CacheStorage;
}

export interface CachedSourceOptions extends ModelStoreOptions {
  /** The file's name in progress reports and warnings (default: the URL). */
  file?: string;
  /** The model folder's URL the file belongs to (listStoredModels groups by it). Default: the URL's directory. */
  base?: string;
  /** Bytes per cache entry (default DEFAULT_CHUNK_BYTES). */
  chunkBytes?: number;
  /** Reads from the cache report the position reached in the file, of its size. */
  onProgress?: (loaded: number, total: number, file: string) => void;
  /** Told when the file is found complete in the cache. */
  onCacheHit?: (file: string) => void;
  /** Told when the file could not be kept (the load goes on); without it, console.warn once per page. */
  onStorageWarning?: (warning: StorageWarning) => void;
  /**
   * The answer to navigator.storage.persist(), asked once per page before the first large write.
   * The load does not wait for it (a browser may hold a prompt open): this is told when it comes.
   */
  onPersist?: (granted: boolean) => void;
  /** A StorageManager to use instead of navigator.storage (tests). */
  storage?: StorageLike;
}

/** What a complete entry says about its file. */
export interface Manifest {
  version: number;
  url: string;
  base: string;
  size: number;
  chunkBytes: number;
  /** Every chunk's length, in order: all chunkBytes but the last. */
  chunks: number[];
  etag: string | null;
  lastModified: string | null;
  /** When it was stored (ISO 8601). */
  stored: string;
}

export interface StoredFile {
  url: string;
  bytes: number;
  /** Has a manifest and all its chunks (lengths are checked when the file is used). */
  complete: boolean;
}

export interface StoredModel {
  /** The model folder's URL. */
  base: string;
  files: StoredFile[];
  bytes: number;
}

// ---------------------------------------------------------------- keys and page state

function keyPrefix(url: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}fresco-`;
}
export function chunkKey(url: string, i: number): string {
  return `${keyPrefix(url)}chunk=${i}`;
}
export function manifestKey(url: string): string {
  return `${keyPrefix(url)}manifest`;
}
const KEY = /^(.*)[?&]fresco-(?:chunk=(\d+)|manifest)$/;
function parseKey(key: string): { url: string; chunk: number | null } | null {
  const m = KEY.exec(key);
  return m ? { url: m[1]!, chunk: m[2] === undefined ? null : Number(m[2]) } : null;
}
const keyUrl = (k: Request | string): string => (typeof k === 'string' ? k : k.url);

function cacheStorage(opts: ModelStoreOptions): CacheStorage | null {
  return opts.caches ?? (globalThis as { caches?: CacheStorage }).caches ?? null;
}
function storageManager(opts: CachedSourceOptions): StorageLike | null {
  return opts.storage ?? (globalThis as { navigator?: { storage?: StorageLike } }).navigator?.storage ?? null;
}

/** Whether a Cache API is there to use (browsers and their workers, on https or localhost). */
export function hasCacheStorage(opts: ModelStoreOptions = {}): boolean {
  return cacheStorage(opts) !== null;
}

/** What one page (one CacheStorage) has done already. */
interface PageState {
  v1Dropped?: Promise<void>;
  warned: boolean;
  /** `${cacheName}\n${url}` of files being written now: their partial entries are not stale. */
  filling: Set<string>;
  /** Why caches.open() failed (some private modes), reported once: nothing will be kept. */
  openFailed?: { error: unknown; told: boolean };
}
const pages = new WeakMap<CacheStorage, PageState>();
function pageOf(cs: CacheStorage): PageState {
  let st = pages.get(cs);
  if (!st) pages.set(cs, (st = { warned: false, filling: new Set() }));
  return st;
}

/** The cache (null without a Cache API, or where opening it fails, as in some private modes). */
async function openCache(opts: ModelStoreOptions): Promise<{ cache: Cache; page: PageState; name: string } | null> {
  const cs = cacheStorage(opts);
  if (!cs) return null;
  const name = opts.cacheName ?? DEFAULT_CACHE_NAME;
  const page = pageOf(cs);
  if (name === DEFAULT_CACHE_NAME) await (page.v1Dropped ??= cs.delete(V1_CACHE_NAME).then(() => undefined, () => undefined));
  try {
    return { cache: await cs.open(name), page, name };
  } catch (e) {
    page.openFailed ??= { error: e, told: false };
    return null;
  }
}

/** A file that would have been stored where the cache could not be opened: said once per page. */
async function reportUnopened(opts: CachedSourceOptions, url: string, bytesNeeded: number | null): Promise<void> {
  const cs = cacheStorage(opts);
  const page = cs ? pageOf(cs) : null;
  if (!page?.openFailed || page.openFailed.told) return;
  page.openFailed.told = true;
  await warnStorage(opts, page, url, 'the Cache API could not be opened (nothing is kept on this page)', page.openFailed.error, bytesNeeded);
}

const persistAsked = new WeakMap<object, Promise<boolean | null>>();
const persistTold = new WeakSet<object>();

/**
 * Asks for persistent storage once per page, so the browser does not evict GBs of model under
 * storage pressure. Absent (workers, Node) or refused, caching goes on as best-effort storage.
 * Not awaited by a load: persist() may wait on a prompt the user never answers (Firefox).
 */
async function askPersist(opts: CachedSourceOptions): Promise<void> {
  const storage = storageManager(opts);
  if (!storage?.persist) return;
  let asked = persistAsked.get(storage);
  if (!asked) {
    asked = (async () => {
      try {
        if (storage.persisted && (await storage.persisted())) return true;
        return await storage.persist!();
      } catch {
        return null;
      }
    })();
    persistAsked.set(storage, asked);
  }
  const granted = await asked;
  if (granted !== null && opts.onPersist && !persistTold.has(opts.onPersist)) {
    persistTold.add(opts.onPersist);
    opts.onPersist(granted);
  }
}

async function estimate(opts: CachedSourceOptions): Promise<{ usage: number | null; quota: number | null }> {
  const storage = storageManager(opts);
  const e = storage?.estimate ? await storage.estimate().catch(() => null) : null;
  return { usage: typeof e?.usage === 'number' ? e.usage : null, quota: typeof e?.quota === 'number' ? e.quota : null };
}

function mb(n: number | null): string {
  return n === null ? '?' : `${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 2 : 0)} MiB`;
}

/** Reports a file the cache could not keep: the callback, or console.warn once per page. */
async function warnStorage(opts: CachedSourceOptions, page: PageState, url: string, what: string, cause: unknown, bytesNeeded: number | null): Promise<void> {
  const { usage, quota } = await estimate(opts);
  const file = opts.file ?? url;
  const why = cause instanceof Error ? `${cause.name}: ${cause.message}` : cause === undefined ? '' : String(cause);
  const error = new StorageError(
    `${url}: not kept in browser storage, ${what}${why ? ` (${why})` : ''}; the file needs ${mb(bytesNeeded)}, ${mb(usage)} of ${mb(quota)} are used. ` +
      'It loads from the network, and will be downloaded again next time.',
    cause === undefined ? undefined : { cause },
  );
  if (opts.onStorageWarning) opts.onStorageWarning({ file, url, bytesNeeded, usage, quota, error });
  else if (!page.warned) {
    page.warned = true;
    console.warn(`Fresco: ${error.message} (Later storage failures on this page are not reported again; pass onStorageWarning to hear each.)`);
  }
}

// ---------------------------------------------------------------- entries

async function entryKeys(cache: Cache, url: string): Promise<string[]> {
  const prefix = keyPrefix(url);
  return (await cache.keys()).map(keyUrl).filter((k) => k.startsWith(prefix) && parseKey(k)?.url === url);
}

async function deleteKeys(cache: Cache, keys: Iterable<string>): Promise<void> {
  for (const k of keys) await cache.delete(k).catch(() => false);
}

function readManifest(v: unknown, url: string): Manifest | null {
  if (typeof v !== 'object' || v === null) return null;
  const m = v as Partial<Manifest>;
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (m.version !== MANIFEST_VERSION || m.url !== url || typeof m.base !== 'string' || !int(m.size) || !int(m.chunkBytes) || m.chunkBytes === 0) return null;
  if (!Array.isArray(m.chunks) || !m.chunks.every(int)) return null;
  const n = m.chunks.length;
  if (n !== Math.ceil(m.size / m.chunkBytes)) return null;
  if (m.chunks.some((len, i) => (i < n - 1 ? len !== m.chunkBytes : len === 0 || len > m.chunkBytes!))) return null;
  if (m.chunks.reduce((a, b) => a + b, 0) !== m.size) return null;
  return { version: m.version, url, base: m.base, size: m.size, chunkBytes: m.chunkBytes, chunks: m.chunks, etag: m.etag ?? null, lastModified: m.lastModified ?? null, stored: String(m.stored ?? '') };
}

/**
 * The file's manifest when its entry is complete: the manifest is well formed and every chunk it
 * names is there with its length. Anything else is a partial entry, deleted here (unless this
 * page is writing it now), and the answer is null.
 */
async function storedEntry(cache: Cache, page: PageState, name: string, url: string): Promise<Manifest | null> {
  const keys = await entryKeys(cache, url);
  if (keys.length === 0) return null;
  const res = await cache.match(manifestKey(url));
  let m: Manifest | null = null;
  if (res) m = readManifest(await res.json().catch(() => null), url);
  let ok = m !== null;
  if (m) {
    const have = new Set(keys);
    for (let i = 0; ok && i < m.chunks.length; i++) {
      const k = chunkKey(url, i);
      const r = have.has(k) ? await cache.match(k) : undefined;
      ok = r !== undefined && r.headers.get('content-length') === String(m.chunks[i]);
      await r?.body?.cancel().catch(() => undefined);
    }
  }
  if (!ok) {
    if (!page.filling.has(`${name}\n${url}`)) await deleteKeys(cache, keys);
    return null;
  }
  // Chunks past the manifest's count belong to no version of the file.
  const stray = keys.filter((k) => (parseKey(k)?.chunk ?? -1) >= m!.chunks.length);
  if (stray.length) await deleteKeys(cache, stray);
  return m;
}

/** A chunk that is missing or not the length its manifest says. */
class BadEntry extends Error {}

/** Chunk `i` from byte `from` on, in the pieces the cache gives; BadEntry when it is missing or not `length` long. */
async function* chunkPieces(cache: Cache, url: string, i: number, length: number, from: number): AsyncGenerator<Uint8Array> {
  const res = await cache.match(chunkKey(url, i));
  if (!res) throw new BadEntry(`chunk ${i} is missing`);
  let seen = 0;
  const check = (): void => {
    if (seen !== length) throw new BadEntry(`chunk ${i} holds ${seen} bytes, the manifest says ${length}`);
  };
  if (!res.body) {
    const all = new Uint8Array(await res.arrayBuffer());
    seen = all.byteLength;
    check();
    if (from < length) yield all.subarray(from);
    return;
  }
  const reader = res.body.getReader();
  let done = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        break;
      }
      const v = r.value;
      const start = seen;
      seen += v.byteLength;
      if (seen > length) break;
      if (seen > from) yield v.subarray(Math.max(0, from - start));
    }
  } finally {
    if (!done) await reader.cancel().catch(() => undefined);
  }
  check();
}

/** Writes one file's chunks as its bytes pass, then its manifest. Holds one chunk. */
class ChunkWriter {
  readonly lengths: number[] = [];
  total = 0;
  error: unknown = undefined;
  private buf: Uint8Array | null = null;
  private fill = 0;

  constructor(
    private readonly cache: Cache,
    private readonly url: string,
    private readonly base: string,
    private readonly chunkBytes: number,
    /** The file's size where known: a small file's buffer is its size, not a whole chunk. */
    private readonly size: number | null,
  ) {}

  /** False when a put failed (the error is in `error`). */
  async append(bytes: Uint8Array): Promise<boolean> {
    let off = 0;
    while (off < bytes.byteLength) {
      this.buf ??= new Uint8Array(this.size === null ? this.chunkBytes : Math.max(1, Math.min(this.chunkBytes, this.size - this.total)));
      if (this.fill === this.buf.byteLength) {
        // Longer than its size said: grow to a whole chunk (only the last chunk may be short).
        const grown = new Uint8Array(this.chunkBytes);
        grown.set(this.buf);
        this.buf = grown;
      }
      const n = Math.min(bytes.byteLength - off, this.buf.byteLength - this.fill);
      this.buf.set(bytes.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      this.total += n;
      if (this.fill === this.chunkBytes && !(await this.flush())) return false;
    }
    return true;
  }

  private async flush(): Promise<boolean> {
    if (this.fill === 0) return true;
    const i = this.lengths.length;
    // The Response copies the bytes; awaiting the put before reading on keeps one chunk in flight.
    const body = new Response(this.buf!.subarray(0, this.fill) as BodyInit, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(this.fill), 'x-fresco-base': this.base },
    });
    try {
      await this.cache.put(chunkKey(this.url, i), body);
    } catch (e) {
      this.error = e;
      return false;
    }
    this.lengths.push(this.fill);
    this.fill = 0;
    // The next chunk gets a buffer sized for what is left.
    if (this.size !== null && this.size - this.total < this.chunkBytes) this.buf = null;
    return true;
  }

  /** Why finish() wrote no manifest although every put succeeded (the bytes are not the file). */
  incomplete: string | null = null;

  /**
   * Writes the last chunk and the manifest; the manifest, or null when a put failed (`error`) or
   * when `size` (the file's size, as the server told it) is unknown or not the bytes written
   * (`incomplete`): a manifest makes an entry complete, so it is never written for bytes that
   * may be short.
   */
  async finish(validators: { etag: string | null; lastModified: string | null }, size: number | null): Promise<Manifest | null> {
    if (size === null || size !== this.total) {
      this.incomplete =
        size === null
          ? `its size is not known (the server did not tell it), so a whole download could not be told from a cut one (${this.total} bytes came)`
          : `${this.total} bytes came of the ${size} the server said the file has`;
      return null;
    }
    if (!(await this.flush())) return null;
    this.buf = null;
    const m: Manifest = {
      version: MANIFEST_VERSION,
      url: this.url,
      base: this.base,
      size: this.total,
      chunkBytes: this.chunkBytes,
      chunks: this.lengths,
      etag: validators.etag,
      lastModified: validators.lastModified,
      stored: new Date().toISOString(),
    };
    try {
      await this.cache.put(manifestKey(this.url), new Response(JSON.stringify(m), { headers: { 'content-type': 'application/json', 'x-fresco-base': this.base } }));
    } catch (e) {
      this.error = e;
      return null;
    }
    return m;
  }

  /** Deletes what was written (the chunk whose put failed too: it may be there in part). */
  async abort(): Promise<void> {
    this.buf = null;
    const keys = Array.from({ length: this.lengths.length + 1 }, (_, i) => chunkKey(this.url, i));
    await deleteKeys(this.cache, [...keys, manifestKey(this.url)]);
  }
}

function validatorsOf(src: ByteSource): { etag: string | null; lastModified: string | null } {
  const v = (src as { validators?: () => { etag: string | null; lastModified: string | null } }).validators?.();
  return { etag: v?.etag ?? null, lastModified: v?.lastModified ?? null };
}

/**
 * Whether the server's file is still the version `m` describes, as far as `size` and `v` (from
 * the request just made) tell: 'changed', 'same', or 'unknown' when nothing it said can confirm it.
 * A strong ETag equal to the stored one names the same bytes; a Last-Modified needs the size too
 * (a new upload of a same-shaped model has the same size, so the size alone confirms nothing).
 */
function sameVersion(m: Manifest, size: number | null, v: { etag: string | null; lastModified: string | null }): { is: 'same' | 'changed' | 'unknown'; why: string } {
  if (size !== null && size !== m.size) return { is: 'changed', why: `it was ${m.size} bytes, it is ${size} now` };
  if (m.etag && v.etag && m.etag !== v.etag) return { is: 'changed', why: `ETag ${m.etag}, now ${v.etag}` };
  if (m.lastModified && v.lastModified && m.lastModified !== v.lastModified) return { is: 'changed', why: `Last-Modified ${m.lastModified}, now ${v.lastModified}` };
  if (m.etag && v.etag === m.etag) return { is: 'same', why: '' };
  if (m.lastModified && v.lastModified === m.lastModified && size === m.size) return { is: 'same', why: '' };
  const missing = [size === null ? 'its size' : '', !m.etag && !m.lastModified ? 'an ETag or Last-Modified when it was stored' : m.etag ? 'its ETag' : 'its Last-Modified'].filter(Boolean);
  return { is: 'unknown', why: `the server did not give ${missing.join(', nor ')}` };
}

function dirOf(url: string): string {
  const q = url.search(/[?#]/);
  const path = q < 0 ? url : url.slice(0, q);
  return path.slice(0, path.lastIndexOf('/') + 1);
}

// ---------------------------------------------------------------- the cached source

export interface CachedSource extends ByteSource {
  /**
   * Whether the file is complete in the cache (checked once; a partial entry found is deleted).
   * True: every read and stream comes from the cache, with no network request.
   */
  complete(): Promise<boolean>;
}

/** The header bytes kept for a fill are at most this many (or one chunk, when larger). */
const PREFIX_BYTES = 4 * 1024 * 1024;

/**
 * `network` with the Cache API in front. When `url` is complete in the cache, every read and
 * stream comes from there. Otherwise reads go to the network, and a stream fills the cache as it
 * passes: chunks while it runs, the manifest when the file has ended. A stream that starts past
 * byte 0 gets the bytes before its start from the reads already made where they cover them (the
 * safetensors header, read just before), else from the network, so the whole file is stored.
 */
export function cachedSource(url: string, network: ByteSource, opts: CachedSourceOptions = {}): CachedSource {
  const file = opts.file ?? url;
  const chunkBytes = Math.max(1, Math.floor(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES));
  const base = opts.base ?? dirOf(url);
  const prefixCap = Math.max(chunkBytes, PREFIX_BYTES);
  type State = { cache: Cache; page: PageState; name: string } | null;
  let opened: Promise<State> | null = null;
  let manifest: Manifest | null = null;
  let checked: Promise<boolean> | null = null;
  // Set while this source writes the file, and for good once a write failed: no second try.
  let writing = false;
  let gaveUp = false;
  // The file's bytes [0, prefixEnd), from reads made before a fill (the safetensors header).
  const prefix: Uint8Array[] = [];
  let prefixEnd = 0;

  const state = () => (opened ??= openCache(opts));
  const complete = () =>
    (checked ??= (async () => {
      const s = await state();
      manifest = s ? await storedEntry(s.cache, s.page, s.name, url) : null;
      if (manifest) opts.onCacheHit?.(file);
      return manifest !== null;
    })());

  /** A chunk went bad under us: delete the entry (the network serves from here on, once checked). */
  async function drop(s: NonNullable<State>): Promise<void> {
    manifest = null;
    await deleteKeys(s.cache, await entryKeys(s.cache, url));
  }

  /**
   * After a bad chunk, before any network byte joins the stored ones: the server must still have
   * the stored version (the request just made told its size and validators). Else a DownloadError:
   * the entry is deleted already, so loading again fetches the file whole.
   */
  async function confirmSame(m: Manifest, bad: string): Promise<void> {
    const size = await network.size().catch(() => null);
    const { is, why } = sameVersion(m, size, validatorsOf(network));
    if (is === 'same') return;
    const head = `${url}: the stored copy${opts.file ? ` of ${opts.file}` : ''} could not be read whole (${bad}) and was deleted`;
    throw new DownloadError(
      is === 'changed'
        ? `${head}; the file changed on the server since it was stored (${why}), so the rest cannot be joined to the stored bytes. Loading again fetches it whole.`
        : `${head}; the file may have changed on the server since it was stored (${why}), so the rest cannot be joined to the stored bytes. Loading again fetches it whole.`,
    );
  }

  async function readCached(s: NonNullable<State>, m: Manifest, start: number, end: number): Promise<Uint8Array> {
    end = Math.min(end, m.size);
    if (end <= start) return new Uint8Array(0);
    const out = new Uint8Array(end - start);
    let got = 0;
    try {
      for (let c = Math.floor(start / m.chunkBytes); got < out.byteLength; c++) {
        const c0 = c * m.chunkBytes;
        for await (const piece of chunkPieces(s.cache, url, c, m.chunks[c]!, Math.max(0, start - c0))) {
          const n = Math.min(piece.byteLength, out.byteLength - got);
          out.set(piece.subarray(0, n), got);
          got += n;
          if (got === out.byteLength) break;
        }
      }
    } catch (e) {
      if (!(e instanceof BadEntry)) throw e;
      await drop(s);
      // Earlier reads (the header's length field) came from the stored version: these bytes must too.
      const bytes = await network.read(start, end);
      await confirmSame(m, e.message);
      return bytes;
    }
    return out;
  }

  async function* streamCached(s: NonNullable<State>, m: Manifest, start: number): AsyncGenerator<Uint8Array> {
    let pos = Math.min(start, m.size);
    opts.onProgress?.(pos, m.size, file);
    let bad: string;
    try {
      for (let c = Math.floor(pos / m.chunkBytes); c < m.chunks.length; c++) {
        const c0 = c * m.chunkBytes;
        for await (const piece of chunkPieces(s.cache, url, c, m.chunks[c]!, Math.max(0, pos - c0))) {
          pos += piece.byteLength;
          opts.onProgress?.(pos, m.size, file);
          yield piece;
        }
      }
      return;
    } catch (e) {
      if (!(e instanceof BadEntry)) throw e;
      bad = e.message;
    }
    await drop(s);
    if (pos >= m.size) return;
    // The rest from the network, once its first answer shows the stored version: no network
    // byte is handed out before that.
    const it = network.stream(pos)[Symbol.asyncIterator]();
    let ended = false;
    try {
      let r = await it.next();
      await confirmSame(m, bad);
      while (!r.done) {
        yield r.value;
        r = await it.next();
      }
      ended = true;
    } finally {
      if (!ended) await it.return?.(undefined).catch(() => undefined);
    }
  }

  async function* fill(s: NonNullable<State>, start: number): AsyncGenerator<Uint8Array> {
    const key = `${s.name}\n${url}`;
    let size: number | null = null;
    let writer: ChunkWriter | null = null;
    const fail = async (what: string, cause: unknown): Promise<void> => {
      gaveUp = true;
      await writer?.abort();
      writer = null;
      await warnStorage({ ...opts, file }, s.page, url, what, cause, size);
    };
    let from = 0;
    let pos = 0;
    let it: AsyncIterator<Uint8Array> | null = null;
    let ended = false;
    let atYield = false;
    // Set inside the try, so that every way out (network.size() failing too) clears them.
    try {
      writing = true;
      s.page.filling.add(key);
      size = await network.size();
      writer = new ChunkWriter(s.cache, url, base, chunkBytes, size);
      // The bytes before `start` come from the reads already made when they cover them. Where the
      // size is unknown, the whole file is asked for (no Range): a 200's Content-Length tells it,
      // and without a size nothing is stored.
      from = size !== null && start <= prefixEnd ? start : 0;
      pos = from;
      // Not awaited: persist() can wait on a prompt; its answer is told whenever it comes.
      void askPersist(opts).catch(() => undefined);
      const { usage, quota } = await estimate(opts);
      if (size !== null && usage !== null && quota !== null && usage + size > quota) {
        await fail('the storage quota is too small for it', undefined);
      }
      for (let i = 0, p = 0; writer && i < prefix.length && p < from; p += prefix[i]!.byteLength, i++) {
        const part = prefix[i]!.subarray(0, from - p);
        if (!(await writer.append(part))) await fail('a write failed', writer.error);
      }
      it = network.stream(from)[Symbol.asyncIterator]();
      for (;;) {
        const r = await it.next();
        if (r.done) {
          ended = true;
          break;
        }
        const v = r.value;
        if (writer && !(await writer.append(v))) await fail('a write failed', writer.error);
        const at = pos;
        pos += v.byteLength;
        if (pos > start) {
          atYield = true;
          yield v.subarray(Math.max(0, start - at));
          atYield = false;
        }
      }
    } finally {
      // The consumer stopped before the end (a loader stops after its last tensor): when little
      // is left, read it so that the entry completes; else give the entry up.
      if (!ended && atYield && writer && it) {
        let budget = size !== null ? (size - pos <= chunkBytes ? Infinity : -1) : chunkBytes;
        try {
          while (writer && budget >= 0) {
            const r = await it.next();
            if (r.done) {
              ended = true;
              break;
            }
            budget -= r.value.byteLength;
            pos += r.value.byteLength;
            if (budget >= 0 && !(await writer.append(r.value))) await fail('a write failed', writer.error);
          }
        } catch {
          // A network error after the consumer had all it wanted only costs the entry.
        }
      }
      if (!ended) await it?.return?.().catch(() => undefined);
      if (writer) {
        if (ended) {
          // The size as the server tells it now (the stream may have told it): the bytes stored
          // must be exactly that many, or there is no manifest.
          const told = await network.size().catch(() => null);
          const m = await writer.finish(validatorsOf(network), told ?? size);
          if (m) manifest = m;
          else if (writer.incomplete) await fail(`nothing was stored: ${writer.incomplete}`, undefined);
          else await fail('a write failed', writer.error);
        } else await writer.abort();
      }
      // The kept header bytes serve a later try only (a consumer that stopped early).
      if (ended || gaveUp) {
        prefix.length = 0;
        prefixEnd = 0;
      }
      s.page.filling.delete(key);
      writing = false;
    }
  }

  return {
    where: network.where,
    complete,

    async size() {
      await complete();
      return manifest ? manifest.size : network.size();
    },

    async read(start, end) {
      await complete();
      const s = await state();
      if (s && manifest) return readCached(s, manifest, start, end);
      const bytes = await network.read(start, end);
      // Keep the file's first bytes for a fill that starts where they end.
      if (s && !gaveUp && start <= prefixEnd && start + bytes.byteLength > prefixEnd && start + bytes.byteLength <= prefixCap) {
        prefix.push(bytes.slice(prefixEnd - start));
        prefixEnd = start + bytes.byteLength;
      }
      return bytes;
    },

    async *stream(start = 0) {
      await complete();
      const s = await state();
      if (s && manifest) yield* streamCached(s, manifest, start);
      else if (!s) {
        await reportUnopened({ ...opts, file }, url, await network.size());
        yield* network.stream(start);
      } else if (writing || gaveUp || s.page.filling.has(`${s.name}\n${url}`)) yield* network.stream(start);
      else yield* fill(s, start);
    },
  };
}

// ---------------------------------------------------------------- whole small files

/** The file's bytes when it is complete in the cache, else null (a partial entry is deleted). */
export async function readStoredFile(url: string, opts: CachedSourceOptions = {}): Promise<Uint8Array | null> {
  const s = await openCache(opts);
  if (!s) return null;
  const m = await storedEntry(s.cache, s.page, s.name, url);
  if (!m) return null;
  const file = opts.file ?? url;
  opts.onCacheHit?.(file);
  const out = new Uint8Array(m.size);
  let pos = 0;
  opts.onProgress?.(0, m.size, file);
  try {
    for (let c = 0; c < m.chunks.length; c++) {
      for await (const piece of chunkPieces(s.cache, url, c, m.chunks[c]!, 0)) {
        out.set(piece, pos);
        pos += piece.byteLength;
        opts.onProgress?.(pos, m.size, file);
      }
    }
  } catch (e) {
    if (!(e instanceof BadEntry)) throw e;
    await deleteKeys(s.cache, await entryKeys(s.cache, url));
    return null;
  }
  return out;
}

/** Keeps a whole file already in memory (JSON, tokenizer files); false (and a warning) when it could not. */
export async function storeFile(url: string, bytes: Uint8Array, opts: CachedSourceOptions = {}): Promise<boolean> {
  const s = await openCache(opts);
  if (!s) {
    await reportUnopened(opts, url, bytes.byteLength);
    return false;
  }
  const w = new ChunkWriter(s.cache, url, opts.base ?? dirOf(url), Math.max(1, Math.floor(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES)), bytes.byteLength);
  if ((await w.append(bytes)) && (await w.finish({ etag: null, lastModified: null }, bytes.byteLength))) return true;
  await w.abort();
  await warnStorage(opts, s.page, url, 'a write failed', w.error, bytes.byteLength);
  return false;
}

// ---------------------------------------------------------------- listing and deleting

async function openExisting(opts: ModelStoreOptions): Promise<Cache | null> {
  const cs = cacheStorage(opts);
  if (!cs) return null;
  const name = opts.cacheName ?? DEFAULT_CACHE_NAME;
  // Listing should not create the cache.
  if (!(await cs.has(name).catch(() => true))) return null;
  return cs.open(name).catch(() => null);
}

/** Every model with files in the cache, complete or not, and the bytes each holds. */
export async function listStoredModels(opts: ModelStoreOptions = {}): Promise<StoredModel[]> {
  const cache = await openExisting(opts);
  if (!cache) return [];
  const files = new Map<string, { manifest: boolean; chunks: Set<number> }>();
  for (const k of (await cache.keys()).map(keyUrl)) {
    const p = parseKey(k);
    if (!p) continue;
    let f = files.get(p.url);
    if (!f) files.set(p.url, (f = { manifest: false, chunks: new Set() }));
    if (p.chunk === null) f.manifest = true;
    else f.chunks.add(p.chunk);
  }
  const models = new Map<string, StoredFile[]>();
  for (const [url, f] of files) {
    const res = f.manifest ? await cache.match(manifestKey(url)) : undefined;
    const m = res ? readManifest(await res.json().catch(() => null), url) : null;
    let base: string;
    let bytes = 0;
    let complete = false;
    if (m) {
      base = m.base;
      bytes = m.size;
      complete = m.chunks.every((_, i) => f.chunks.has(i));
    } else {
      base = '';
      for (const c of f.chunks) {
        const r = await cache.match(chunkKey(url, c));
        base ||= r?.headers.get('x-fresco-base') ?? '';
        bytes += Number(r?.headers.get('content-length') ?? 0) || 0;
        await r?.body?.cancel().catch(() => undefined);
      }
      base ||= dirOf(url);
    }
    const list = models.get(base) ?? [];
    list.push({ url, bytes, complete });
    models.set(base, list);
  }
  return [...models]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([base, list]) => {
      list.sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
      return { base, files: list, bytes: list.reduce((n, f) => n + f.bytes, 0) };
    });
}

/**
 * Deletes every file of the model at `base` (its URL, as listStoredModels gives it): chunks and
 * manifests of every file under that URL or whose manifest names it. Returns how many files went.
 */
export async function deleteStoredModel(base: string, opts: ModelStoreOptions = {}): Promise<number> {
  const cache = await openExisting(opts);
  if (!cache) return 0;
  const loc = (globalThis as { location?: { href: string } }).location;
  let abs = loc ? new URL(base, loc.href).href : new URL(base).href;
  if (!abs.endsWith('/')) abs += '/';
  const byFile = new Map<string, string[]>();
  for (const k of (await cache.keys()).map(keyUrl)) {
    const url = parseKey(k)?.url ?? k;
    const keys = byFile.get(url) ?? [];
    keys.push(k);
    byFile.set(url, keys);
  }
  let files = 0;
  for (const [url, keys] of byFile) {
    let doomed = url.startsWith(abs);
    if (!doomed && keys.includes(manifestKey(url))) {
      const res = await cache.match(manifestKey(url));
      doomed = (res ? readManifest(await res.json().catch(() => null), url)?.base : undefined) === abs;
    }
    if (!doomed) continue;
    await deleteKeys(cache, keys);
    files++;
  }
  return files;
}

/** Deletes the whole model cache (and the v1 one, for the default name). */
export async function clearStoredModels(opts: ModelStoreOptions = {}): Promise<boolean> {
  const cs = cacheStorage(opts);
  if (!cs) return false;
  const name = opts.cacheName ?? DEFAULT_CACHE_NAME;
  if (name === DEFAULT_CACHE_NAME) await cs.delete(V1_CACHE_NAME).catch(() => false);
  return cs.delete(name).catch(() => false);
}
