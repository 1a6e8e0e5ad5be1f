// The chunked model cache over a stand-in server, Cache API and navigator.storage, loaded the way
// the weight loader reads a file (readSafetensorsHeader, then streamTensors): the first load's
// requests and entries, a second load with no request, partial entries refetched, quota failures
// reported with sizes while the load still succeeds, persist() asked once, list and delete.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ByteSource } from '../../src/io/byte_source.ts';
import { httpSource } from '../../src/io/http_source.ts';
import {
  cachedSource,
  chunkKey,
  clearStoredModels,
  DEFAULT_CACHE_NAME,
  deleteStoredModel,
  listStoredModels,
  manifestKey,
  V1_CACHE_NAME,
  type CachedSource,
  type Manifest,
  type StorageWarning,
} from '../../src/io/model_cache.ts';
import { readSafetensorsHeader, streamTensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { urlFolderReader, type UrlReaderOptions } from '../../src/io/url_reader.ts';
import { DownloadError, StorageError } from '../../src/errors.ts';
import { collect, fakeCaches, fakeServer, fakeStorage, patterned } from '../helpers/fake_web.ts';

const BASE = 'http://h/models/sd/';
const NAME = 'unet/diffusion_pytorch_model.safetensors';
const URL_ = BASE + NAME;
const CHUNK = 64;

function weightFile(seed = 0): Uint8Array {
  const f32 = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => i * 0.5 + k + seed);
  return writeSafetensors({
    'conv_in.weight': { dtype: 'F32', shape: [4, 9], data: f32(36, 1) },
    'conv_in.bias': { dtype: 'F32', shape: [4], data: f32(4, 2) },
    'time_embedding.linear_1.weight': { dtype: 'F16', shape: [8, 13], data: Uint16Array.from({ length: 104 }, (_, i) => 0x3c00 + i + seed) },
    'conv_out.weight': { dtype: 'F32', shape: [3, 5], data: f32(15, 3) },
  });
}

/** What the loader does with a weight file: the header by range, then one stream of the tensors. */
async function load(src: ByteSource): Promise<Map<string, Uint8Array>> {
  const header = await readSafetensorsHeader(src);
  const got = new Map<string, Uint8Array>();
  await streamTensors(src, header, new Set(header.entries.keys()), (t) => void got.set(t.name, t.bytes.slice()));
  return got;
}

async function expected(file: Uint8Array): Promise<Map<string, Uint8Array>> {
  const header = await readSafetensorsHeader({ where: 'mem', size: async () => file.byteLength, read: async (a, b) => file.subarray(a, b), stream: async function* () {} });
  return new Map([...header.entries.values()].map((e) => [e.name, file.slice(e.begin, e.end)]));
}

function setup(
  files: Record<string, Uint8Array> = { [URL_]: weightFile() },
  cacheOpts: Parameters<typeof fakeCaches>[0] = {},
  storageOpts: Parameters<typeof fakeStorage>[0] = {},
  serverOpts: Parameters<typeof fakeServer>[1] = {},
) {
  const server = fakeServer(files, { etag: (u) => `"${u.length}"`, ...serverOpts });
  const fc = fakeCaches(cacheOpts);
  const fs = fakeStorage(storageOpts);
  const warnings: StorageWarning[] = [];
  const hits: string[] = [];
  const persisted: boolean[] = [];
  const reader = (extra: UrlReaderOptions = {}) =>
    urlFolderReader(BASE, {
      fetch: server.fetch,
      caches: fc.caches,
      storage: fs.storage,
      chunkBytes: CHUNK,
      onStorageWarning: (w) => warnings.push(w),
      onCacheHit: (f) => hits.push(f),
      onPersist: (g) => persisted.push(g),
      ...extra,
    });
  const keysOf = (url: string) => [...fc.entries(DEFAULT_CACHE_NAME).keys()].filter((k) => k.startsWith(url));
  const manifest = (url: string): Manifest => JSON.parse(new TextDecoder().decode(fc.entries(DEFAULT_CACHE_NAME).get(manifestKey(url))!.body));
  return { server, fc, fs, warnings, hits, persisted, reader, keysOf, manifest };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('model cache: first and second load', () => {
  it('first load: a probe, the header, one stream from the data; chunks then a manifest', async () => {
    const file = weightFile();
    const t = setup({ [URL_]: file });
    const src = (await t.reader().open(NAME))!;
    const got = await load(src);
    expect(got).toEqual(await expected(file));
    const header = await readSafetensorsHeader({ where: '', size: async () => null, read: async (a, b) => file.subarray(a, b), stream: async function* () {} });
    // No weight byte before the stream, and no byte downloaded twice.
    expect(t.server.requests.map((r) => r.range)).toEqual(['bytes=0-7', `bytes=8-${header.dataStart - 1}`, `bytes=${header.dataStart}-`]);
    const n = Math.ceil(file.byteLength / CHUNK);
    expect(t.keysOf(URL_).sort()).toEqual([...Array.from({ length: n }, (_, i) => chunkKey(URL_, i)), manifestKey(URL_)].sort());
    const m = t.manifest(URL_);
    expect(m).toMatchObject({ version: 2, url: URL_, base: BASE, size: file.byteLength, chunkBytes: CHUNK, etag: `"${URL_.length}"` });
    expect(m.chunks).toEqual(Array.from({ length: n }, (_, i) => Math.min(CHUNK, file.byteLength - i * CHUNK)));
    for (let i = 0; i < n; i++) expect(t.fc.entries(DEFAULT_CACHE_NAME).get(chunkKey(URL_, i))!.body).toEqual(file.subarray(i * CHUNK, (i + 1) * CHUNK));
    // The manifest is the last write.
    expect(t.fc.counts.puts).toBe(n + 1);
    expect(t.warnings).toEqual([]);
    expect(t.hits).toEqual([]);
  });

  it('second load: no request at all, the same bytes, reported as a cache hit', async () => {
    const file = weightFile();
    const t = setup({ [URL_]: file });
    const first = await load((await t.reader().open(NAME))!);
    const requests = t.server.requests.length;
    const progress: [number, number][] = [];
    const src = (await t.reader({ onProgress: (l, total) => progress.push([l, total]) }).open(NAME))!;
    expect(await src.size()).toBe(file.byteLength);
    expect(await load(src)).toEqual(first);
    expect(t.server.requests.length).toBe(requests);
    expect(t.hits).toEqual([NAME]);
    expect(progress.at(-1)).toEqual([file.byteLength, file.byteLength]);
    // Any range, across chunk boundaries, from the cache too.
    expect(await src.read(60, 200)).toEqual(file.subarray(60, 200));
    expect(await collect(src.stream(0))).toEqual(file);
    expect(await collect(src.stream(130))).toEqual(file.subarray(130));
    expect(t.server.requests.length).toBe(requests);
    // A missing file is still a 404 (one probe), never an entry.
    expect(await t.reader().open('vae/diffusion_pytorch_model.safetensors')).toBeNull();
  });

  it.each([
    ['ignores Range', { ignoreRange: true }],
    ['hides Content-Range', { contentRange: false }],
  ] as const)('stores the file from a server that %s, and reads it back with no request', async (_what, serverOpts) => {
    const file = weightFile();
    const server = fakeServer({ [URL_]: file }, serverOpts);
    const fc = fakeCaches();
    const reader = () => urlFolderReader(BASE, { fetch: server.fetch, caches: fc.caches, chunkBytes: CHUNK });
    expect(await load((await reader().open(NAME))!)).toEqual(await expected(file));
    expect(server.requests).toHaveLength(3);
    const n = server.requests.length;
    expect(await load((await reader().open(NAME))!)).toEqual(await expected(file));
    expect(server.requests).toHaveLength(n);
  });

  it('a stream that starts past the bytes already read streams from 0 so that the whole file is stored', async () => {
    const file = patterned(500);
    const t = setup({ [URL_]: file });
    const net = httpSource(URL_, { fetch: t.server.fetch });
    const src = cachedSource(URL_, net, { caches: t.fc.caches, storage: t.fs.storage, chunkBytes: CHUNK, base: BASE });
    expect(await collect(src.stream(300))).toEqual(file.subarray(300));
    // size() probed first (0-7), then the stream had no Range: the file from byte 0.
    expect(t.server.requests.map((r) => r.range)).toEqual(['bytes=0-7', null]);
    expect(t.manifest(URL_).size).toBe(500);
    expect(await src.complete()).toBe(false); // it was not complete when first checked...
    const again = cachedSource(URL_, net, { caches: t.fc.caches, chunkBytes: CHUNK });
    expect(await again.complete()).toBe(true); // ...and is now
    expect(await collect(again.stream(0))).toEqual(file);
    expect(t.server.requests).toHaveLength(2);
  });

  it('a consumer that stops long before the end leaves no entry; cache: false stores nothing', async () => {
    const file = patterned(2000);
    const t = setup({ [URL_]: file });
    const src = cachedSource(URL_, httpSource(URL_, { fetch: t.server.fetch }), { caches: t.fc.caches, storage: t.fs.storage, chunkBytes: CHUNK });
    let got = 0;
    for await (const p of src.stream(0)) if ((got += p.byteLength) >= 100) break;
    expect(t.keysOf(URL_)).toEqual([]);
    expect(t.server.cancelled).toHaveLength(1);
    const plain = setup({ [URL_]: file });
    const s = (await plain.reader({ cache: false }).open(NAME))!;
    expect(await collect(s.stream(0))).toEqual(file);
    expect(plain.fc.stores.size).toBe(0);
  });
});

describe('model cache: partial entries', () => {
  async function stored() {
    const file = weightFile();
    const t = setup({ [URL_]: file });
    const want = await load((await t.reader().open(NAME))!);
    return { ...t, file, want, entries: t.fc.entries(DEFAULT_CACHE_NAME) };
  }

  async function reloadFetches(t: Awaited<ReturnType<typeof stored>>): Promise<number> {
    const before = t.server.requests.length;
    const src = (await t.reader().open(NAME))!;
    expect(await load(src)).toEqual(t.want);
    return t.server.requests.length - before;
  }

  it('chunks without a manifest are deleted and the file fetched again', async () => {
    const t = await stored();
    t.entries.delete(manifestKey(URL_));
    const deletes = t.fc.counts.deletes;
    expect(await reloadFetches(t)).toBe(3);
    expect(t.fc.counts.deletes - deletes).toBeGreaterThanOrEqual(Math.ceil(t.file.byteLength / CHUNK));
    expect(t.hits).toEqual([]);
    // Refetched whole: complete again.
    expect(await reloadFetches(t)).toBe(0);
  });

  it('a missing chunk, or one of the wrong stored length, is found before use', async () => {
    const t = await stored();
    t.entries.delete(chunkKey(URL_, 3));
    expect(await reloadFetches(t)).toBe(3);
    expect(await reloadFetches(t)).toBe(0);
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, 2), t.file.slice(2 * CHUNK, 2 * CHUNK + 10), { 'content-length': '10' });
    expect(await reloadFetches(t)).toBe(3);
    expect(await reloadFetches(t)).toBe(0);
    expect(t.hits).toEqual([NAME, NAME]);
  });

  it('a chunk that reads short despite its stored length: the rest comes from the network, the entry goes', async () => {
    const t = await stored();
    const { dataStart } = await readSafetensorsHeader((await t.reader().open(NAME))!);
    // A chunk of tensor data: its body shrinks but the stored headers still say 64 bytes.
    const bad = Math.floor(dataStart / CHUNK) + 1;
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, bad), t.file.slice(bad * CHUNK, bad * CHUNK + 5));
    const before = t.server.requests.length;
    expect(await load((await t.reader().open(NAME))!)).toEqual(t.want);
    // The header came from the cache; one stream request from where the cache went wrong.
    expect(t.server.requests.slice(before).map((r) => r.range)).toEqual([`bytes=${bad * CHUNK + 5}-`]);
    expect(t.keysOf(URL_)).toEqual([]);
    expect(await reloadFetches(t)).toBe(3);
    // A bad chunk under the header: the header is read from the network, and the stream that
    // follows stores the file again.
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, 1), t.file.slice(CHUNK, CHUNK + 5));
    const mid = t.server.requests.length;
    expect(await load((await t.reader().open(NAME))!)).toEqual(t.want);
    expect(t.server.requests.slice(mid).map((r) => r.range)).toEqual([`bytes=8-${dataStart - 1}`, null]);
    expect(await reloadFetches(t)).toBe(0);
  });
});

describe('model cache: storage failures', () => {
  it('a quota failure on the 3rd chunk: a warning with sizes, partial chunks deleted, the load succeeds, the next load fetches again', async () => {
    const file = weightFile();
    const quota = new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    let failing = true;
    const t = setup({ [URL_]: file }, { failPut: (_k, n) => (failing && n === 3 ? quota : null) }, { usage: 12345, quota: 99999 });
    const got = await load((await t.reader().open(NAME))!);
    expect(got).toEqual(await expected(file));
    expect(t.warnings).toHaveLength(1);
    const w = t.warnings[0]!;
    expect(w).toMatchObject({ file: NAME, url: URL_, bytesNeeded: file.byteLength, usage: 12345, quota: 99999 });
    expect(w.error).toBeInstanceOf(StorageError);
    expect(w.error.cause).toBe(quota);
    expect(w.error.message).toContain(URL_);
    expect(w.error.message).toContain('QuotaExceededError');
    expect(t.keysOf(URL_)).toEqual([]);
    // The next load downloads it again, and this time it fits.
    failing = false;
    const before = t.server.requests.length;
    expect(await load((await t.reader().open(NAME))!)).toEqual(got);
    expect(t.server.requests.length - before).toBe(3);
    expect(t.keysOf(URL_)).toContain(manifestKey(URL_));
  });

  it('a file larger than the space left is not written at all', async () => {
    const file = weightFile();
    const t = setup({ [URL_]: file }, {}, { usage: 1000, quota: 1000 + file.byteLength - 1 });
    expect(await load((await t.reader().open(NAME))!)).toEqual(await expected(file));
    expect(t.fc.counts.puts).toBe(0);
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]!.error.message).toMatch(/quota is too small/);
  });

  it('without a callback, console.warn once per page; small files read whole warn the same way', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const files = { [URL_]: weightFile(), [BASE + 'vae/diffusion_pytorch_model.safetensors']: weightFile(1), [BASE + 'model_index.json']: new TextEncoder().encode('{"a": 1}') };
    const t = setup(files, { failPut: () => new DOMException('full', 'QuotaExceededError') });
    const reader = t.reader({ onStorageWarning: undefined });
    await load((await reader.open(NAME))!);
    await load((await reader.open('vae/diffusion_pytorch_model.safetensors'))!);
    expect(new TextDecoder().decode((await reader.read('model_index.json'))!)).toBe('{"a": 1}');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/^Fresco: http:\/\/h\/models\/sd\/unet\/diffusion_pytorch_model\.safetensors: not kept in browser storage, a write failed \(QuotaExceededError: full\); the file needs .* MiB, .* of .* MiB are used/);
    // With a callback, every file is told.
    const told = setup(files, { failPut: () => new DOMException('full', 'QuotaExceededError') });
    await told.reader().read('model_index.json');
    await load((await told.reader().open(NAME))!);
    expect(told.warnings.map((w) => w.file)).toEqual(['model_index.json', NAME]);
  });

  it('a Cache API that cannot be opened (a private mode) is said once, and files load from the network', async () => {
    const files = { [URL_]: weightFile(), [BASE + 'model_index.json']: new TextEncoder().encode('{}') };
    const t = setup(files);
    const denied = new DOMException('The operation is insecure.', 'SecurityError');
    const caches = { ...t.fc.caches, open: async () => Promise.reject(denied), delete: async () => false } as unknown as CacheStorage;
    const reader = t.reader({ caches });
    expect(await load((await reader.open(NAME))!)).toEqual(await expected(files[URL_]));
    expect(new TextDecoder().decode((await reader.read('model_index.json'))!)).toBe('{}');
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]!.error.cause).toBe(denied);
    expect(t.warnings[0]!.error.message).toMatch(/could not be opened/);
  });

  it('asks navigator.storage.persist() once per page, before the first weight file is written', async () => {
    const files = { [URL_]: weightFile(), [BASE + 'vae/diffusion_pytorch_model.safetensors']: weightFile(1) };
    const t = setup(files);
    const reader = t.reader();
    await reader.read('unet/config.json').catch(() => null);
    expect(t.fs.calls.persist).toBe(0);
    await load((await reader.open(NAME))!);
    await load((await reader.open('vae/diffusion_pytorch_model.safetensors'))!);
    await load((await t.reader().open('vae/diffusion_pytorch_model.safetensors'))!);
    expect(t.fs.calls.persist).toBe(1);
    expect(t.persisted).toEqual([true]);
    // Denied, or absent (a worker): caching goes on all the same.
    const denied = setup({ [URL_]: weightFile() }, {}, { grant: false });
    await load((await denied.reader().open(NAME))!);
    expect(denied.persisted).toEqual([false]);
    expect(denied.keysOf(URL_)).toContain(manifestKey(URL_));
    const absent = setup({ [URL_]: weightFile() });
    await load((await absent.reader({ storage: {} }).open(NAME))!);
    expect(absent.persisted).toEqual([]);
    expect(absent.keysOf(URL_)).toContain(manifestKey(URL_));
  });
});

describe('model cache: listing and deleting', () => {
  it('lists stored models by base URL, deletes one, clears all; drops the v1 cache', async () => {
    const other = 'http://h/models/fashion/';
    const files = {
      [URL_]: weightFile(),
      [BASE + 'vae/diffusion_pytorch_model.safetensors']: weightFile(1),
      [BASE + 'model_index.json']: new TextEncoder().encode('{}'),
      [other + 'unet/diffusion_pytorch_model.safetensors']: weightFile(2),
    };
    const t = setup(files);
    await t.fc.caches.open(V1_CACHE_NAME);
    expect(await t.fc.caches.has(V1_CACHE_NAME)).toBe(true);
    const reader = t.reader();
    await reader.read('model_index.json');
    expect(await t.fc.caches.has(V1_CACHE_NAME)).toBe(false);
    await load((await reader.open(NAME))!);
    await load((await reader.open('vae/diffusion_pytorch_model.safetensors'))!);
    await load((await urlFolderReader(other, { fetch: t.server.fetch, caches: t.fc.caches, storage: t.fs.storage, chunkBytes: CHUNK }).open('unet/diffusion_pytorch_model.safetensors'))!);
    // A partial file: its manifest lost.
    t.fc.entries(DEFAULT_CACHE_NAME).delete(manifestKey(BASE + 'vae/diffusion_pytorch_model.safetensors'));
    const size = (u: string) => files[u]!.byteLength;
    const list = await listStoredModels({ caches: t.fc.caches });
    expect(list).toEqual([
      { base: other, files: [{ url: other + 'unet/diffusion_pytorch_model.safetensors', bytes: size(other + 'unet/diffusion_pytorch_model.safetensors'), complete: true }], bytes: size(other + 'unet/diffusion_pytorch_model.safetensors') },
      {
        base: BASE,
        files: [
          { url: BASE + 'model_index.json', bytes: 2, complete: true },
          { url: URL_, bytes: size(URL_), complete: true },
          { url: BASE + 'vae/diffusion_pytorch_model.safetensors', bytes: size(BASE + 'vae/diffusion_pytorch_model.safetensors'), complete: false },
        ],
        bytes: 2 + size(URL_) + size(BASE + 'vae/diffusion_pytorch_model.safetensors'),
      },
    ]);
    expect(await deleteStoredModel(BASE.slice(0, -1), { caches: t.fc.caches })).toBe(3);
    expect((await listStoredModels({ caches: t.fc.caches })).map((m) => m.base)).toEqual([other]);
    expect([...t.fc.entries(DEFAULT_CACHE_NAME).keys()].every((k) => k.startsWith(other))).toBe(true);
    expect(await clearStoredModels({ caches: t.fc.caches })).toBe(true);
    expect(await listStoredModels({ caches: t.fc.caches })).toEqual([]);
    // Listing does not create the cache; without a Cache API there is nothing.
    expect(await t.fc.caches.has(DEFAULT_CACHE_NAME)).toBe(false);
    expect(await listStoredModels({})).toEqual([]);
  });

  it('keeps the v1 cache when a custom cache name is used', async () => {
    const t = setup();
    await t.fc.caches.open(V1_CACHE_NAME);
    await load((await t.reader({ cacheName: 'mine' }).open(NAME))!);
    expect(await t.fc.caches.has(V1_CACHE_NAME)).toBe(true);
    expect(await listStoredModels({ caches: t.fc.caches, cacheName: 'mine' })).toHaveLength(1);
  });
});

describe('model cache: a bad chunk and a file changed on the server', () => {
  /** v1 stored from a server whose validators follow the version served; then the server has v2 (the same size). */
  async function storedThenChanged(serverOpts: (version: () => number) => Parameters<typeof fakeServer>[1]) {
    const v1 = weightFile(0);
    const v2 = weightFile(7);
    expect(v2.byteLength).toBe(v1.byteLength);
    let version = 1;
    const t = setup({ [URL_]: v1 }, {}, {}, serverOpts(() => version));
    await load((await t.reader().open(NAME))!);
    expect(t.keysOf(URL_)).toContain(manifestKey(URL_));
    const { dataStart } = await readSafetensorsHeader({ where: '', size: async () => null, read: async (a, b) => v1.subarray(a, b), stream: async function* () {} });
    version = 2;
    t.server.files.set(URL_, v2);
    return { ...t, v1, v2, dataStart };
  }

  /** Loads the file; what the consumer was handed before the load failed, and the error. */
  async function loadUntilError(src: ByteSource): Promise<{ got: Map<string, Uint8Array>; err: unknown }> {
    const got = new Map<string, Uint8Array>();
    const err = await (async () => {
      const header = await readSafetensorsHeader(src);
      await streamTensors(src, header, new Set(header.entries.keys()), (x) => void got.set(x.name, x.bytes.slice()));
    })().catch((e: unknown) => e);
    return { got, err };
  }

  it('a new ETag: a DownloadError that says the copy was deleted, no byte of v2 handed out, and the next load stores v2 whole', async () => {
    const t = await storedThenChanged((version) => ({ etag: () => `"v${version()}"` }));
    const bad = Math.floor(t.dataStart / CHUNK) + 1;
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, bad), t.v1.slice(bad * CHUNK, bad * CHUNK + 5));
    const before = t.server.requests.length;
    const { got, err } = await loadUntilError((await t.reader().open(NAME))!);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toBe(
      `${URL_}: the stored copy of ${NAME} could not be read whole (chunk ${bad} holds 5 bytes, the manifest says ${CHUNK}) and was deleted; ` +
        'the file changed on the server since it was stored (ETag "v1", now "v2"), so the rest cannot be joined to the stored bytes. Loading again fetches it whole.',
    );
    // Whatever the consumer was handed is v1's, whole tensors only.
    const v1 = await expected(t.v1);
    for (const [name, bytes] of got) expect(bytes).toEqual(v1.get(name));
    // The one request (for the rest) was cancelled, not read.
    expect(t.server.requests.slice(before).map((r) => r.range)).toEqual([`bytes=${bad * CHUNK + 5}-`]);
    expect(t.server.cancelled).toHaveLength(1);
    expect(t.keysOf(URL_)).toEqual([]);
    // Loading again: v2, from the network, stored whole with its ETag.
    const n = t.server.requests.length;
    expect(await load((await t.reader().open(NAME))!)).toEqual(await expected(t.v2));
    expect(t.server.requests.length - n).toBe(3);
    expect(t.manifest(URL_).etag).toBe('"v2"');
  });

  it('Last-Modified only: the rest comes from the network while it is the same, a DownloadError once it differs', async () => {
    const stamps = ['Mon, 01 Jan 2024 00:00:00 GMT', 'Tue, 02 Jan 2024 00:00:00 GMT'];
    let changed = false;
    const t = await storedThenChanged((version) => ({ etag: () => null, lastModified: () => stamps[changed ? version() - 1 : 0]! }));
    expect(t.manifest(URL_)).toMatchObject({ etag: null, lastModified: stamps[0] });
    const bad = Math.floor(t.dataStart / CHUNK) + 1;
    // Served still as v1 (the same Last-Modified and bytes): the load completes.
    t.server.files.set(URL_, t.v1);
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, bad), t.v1.slice(bad * CHUNK, bad * CHUNK + 5));
    expect(await load((await t.reader().open(NAME))!)).toEqual(await expected(t.v1));
    // Stored again, then replaced on the server with a same-sized v2.
    await load((await t.reader().open(NAME))!);
    expect(t.keysOf(URL_)).toContain(manifestKey(URL_));
    changed = true;
    t.server.files.set(URL_, t.v2);
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, bad), t.v1.slice(bad * CHUNK, bad * CHUNK + 5));
    const { err } = await loadUntilError((await t.reader().open(NAME))!);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toContain(`the file changed on the server since it was stored (Last-Modified ${stamps[0]}, now ${stamps[1]})`);
    expect(t.keysOf(URL_)).toEqual([]);
  });

  it('a server that gives no ETag nor Last-Modified: the rest cannot be confirmed, so a DownloadError rather than a guess', async () => {
    const t = await storedThenChanged(() => ({ etag: () => null }));
    const bad = Math.floor(t.dataStart / CHUNK) + 1;
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, bad), t.v1.slice(bad * CHUNK, bad * CHUNK + 5));
    const { err } = await loadUntilError((await t.reader().open(NAME))!);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toMatch(
      /and was deleted; the file may have changed on the server since it was stored \(the server did not give an ETag or Last-Modified when it was stored\).*Loading again fetches it whole\.$/,
    );
    expect(t.keysOf(URL_)).toEqual([]);
    expect(await load((await t.reader().open(NAME))!)).toEqual(await expected(t.v2));
  });

  it('a bad chunk under the header, read by range: the same check before the network bytes are used', async () => {
    const t = await storedThenChanged((version) => ({ etag: () => `"v${version()}"` }));
    t.fc.setBody(DEFAULT_CACHE_NAME, chunkKey(URL_, 1), t.v1.slice(CHUNK, CHUNK + 5));
    const { got, err } = await loadUntilError((await t.reader().open(NAME))!);
    expect(got.size).toBe(0);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toContain('the file changed on the server since it was stored (ETag "v1", now "v2")');
    expect(t.keysOf(URL_)).toEqual([]);
  });
});

describe('model cache: a file that lost its end', () => {
  it('bytes fewer than the size the source said: no manifest, no chunks, a warning that nothing was stored', async () => {
    const file = patterned(500);
    const t = setup({});
    const cut: ByteSource = { where: URL_, size: async () => 500, read: async (a, b) => file.slice(a, b), stream: async function* () { yield file.slice(0, 200); yield file.slice(200, 400); } };
    const warnings: StorageWarning[] = [];
    const src = cachedSource(URL_, cut, { caches: t.fc.caches, storage: t.fs.storage, chunkBytes: CHUNK, onStorageWarning: (w) => warnings.push(w) });
    expect((await collect(src.stream(0))).byteLength).toBe(400);
    expect(t.keysOf(URL_)).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.error.message).toContain('not kept in browser storage, nothing was stored: 400 bytes came of the 500 the server said the file has');
  });

  it('a body with no Content-Length cut short in transit is not kept, and the next visit downloads it again', async () => {
    const file = weightFile();
    const t = setup({ [URL_]: file }, {}, {}, { piece: 16 });
    let cut = true;
    const fetchCut = (async (u: RequestInfo | URL, init?: RequestInit) => {
      const res = await t.server.fetch(u, init);
      const range = new Headers(init?.headers).get('range');
      if (!cut || !range || !range.endsWith('-')) return res;
      const headers = new Headers(res.headers);
      headers.delete('content-length');
      const all = new Uint8Array(await res.arrayBuffer());
      return new Response(all.subarray(0, all.byteLength - 40), { status: res.status, headers });
    }) as typeof fetch;
    await expect(load((await t.reader({ fetch: fetchCut }).open(NAME))!)).rejects.toThrow(DownloadError);
    expect(t.keysOf(URL_)).toEqual([]);
    cut = false;
    const src = (await t.reader().open(NAME))! as CachedSource;
    expect(await src.complete()).toBe(false);
    expect(await load(src)).toEqual(await expected(file));
    expect(t.keysOf(URL_)).toContain(manifestKey(URL_));
  });

  it('a server that tells no size (Content-Range hidden, no Content-Length): the file loads, nothing is stored', async () => {
    const file = weightFile();
    const t = setup({ [URL_]: file }, {}, {}, { contentRange: false, contentLength: false });
    expect(await load((await t.reader().open(NAME))!)).toEqual(await expected(file));
    // The stream asked for the whole file (its 200 would tell the size in Content-Length).
    expect(t.server.requests.map((r) => r.range).at(-1)).toBeNull();
    expect(t.keysOf(URL_)).toEqual([]);
    expect(t.warnings).toHaveLength(1);
    expect(t.warnings[0]!.error.message).toMatch(/nothing was stored: its size is not known/);
  });
});

describe('model cache: persist() and a failed start', () => {
  it('a persistent-storage prompt left open does not hold the load; its answer is told when it comes, once', async () => {
    const files = { [URL_]: weightFile(), [BASE + 'vae/diffusion_pytorch_model.safetensors']: weightFile(1) };
    const t = setup(files);
    let answer: (granted: boolean) => void = () => undefined;
    let asked = 0;
    const storage = { ...t.fs.storage, persist: () => (asked++, new Promise<boolean>((r) => (answer = r))) };
    const reader = t.reader({ storage });
    expect(await load((await reader.open(NAME))!)).toEqual(await expected(files[URL_]));
    expect(t.keysOf(URL_)).toContain(manifestKey(URL_));
    expect(asked).toBe(1);
    expect(t.persisted).toEqual([]);
    answer(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(t.persisted).toEqual([true]);
    await load((await reader.open('vae/diffusion_pytorch_model.safetensors'))!);
    await new Promise((r) => setTimeout(r, 0));
    expect(asked).toBe(1);
    expect(t.persisted).toEqual([true]);
  });

  it('a size() that throws when a fill starts leaves the file free to be stored by the next stream', async () => {
    const file = patterned(300);
    const t = setup({ [URL_]: file });
    const net = httpSource(URL_, { fetch: t.server.fetch });
    let failSize = true;
    const flaky: ByteSource = {
      where: URL_,
      size: async () => {
        if (!failSize) return net.size();
        failSize = false;
        throw new DownloadError(`${URL_}: fetch failed`);
      },
      read: (a, b) => net.read(a, b),
      stream: (start) => net.stream(start),
    };
    const opts = { caches: t.fc.caches, storage: t.fs.storage, chunkBytes: CHUNK };
    const src = cachedSource(URL_, flaky, opts);
    await expect(collect(src.stream(0))).rejects.toThrow(`${URL_}: fetch failed`);
    expect(await collect(src.stream(0))).toEqual(file);
    expect(t.manifest(URL_).size).toBe(300);
    // A second source on the same page finds it complete.
    expect(await cachedSource(URL_, flaky, opts).complete()).toBe(true);
  });
});
