// The URL FolderReader without a server or a GPU: fetch and the Cache API are stand-ins, so every
// edge (no Content-Length, a short body, HTTP errors, a cache hit) is exercised on purpose.
import { afterEach, describe, expect, it } from 'vitest';
import { urlFolderReader } from '../../src/io/url_reader.ts';
import { DownloadError } from '../../src/errors.ts';
import { chunkKey, DEFAULT_CACHE_NAME, manifestKey } from '../../src/io/model_cache.ts';
import { collect, fakeCaches, fakeServer, patterned } from '../helpers/fake_web.ts';

function streamed(chunks: Uint8Array[], headers: Record<string, string> = {}, status = 200): Response {
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      chunks.forEach((x) => c.enqueue(x));
      c.close();
    },
  });
  return new Response(body, { status, headers });
}

afterEach(() => {
  delete (globalThis as { caches?: unknown }).caches;
});

describe('urlFolderReader', () => {
  it('reads relative names under the base URL, reports streamed progress, and maps 404 to null', async () => {
    const seen: string[] = [];
    const progress: [number, number][] = [];
    const reader = urlFolderReader('http://h/m/fashion', {
      fetch: (async (u: string) => (seen.push(u), u.endsWith('missing.json') ? new Response('no', { status: 404 }) : streamed([new Uint8Array([1, 2]), new Uint8Array([3])], { 'content-length': '3' }))) as typeof fetch,
      onProgress: (l, t) => progress.push([l, t]),
    });
    expect(reader.where('unet/config.json')).toBe('http://h/m/fashion/unet/config.json');
    expect(Array.from((await reader.read('unet/config.json'))!)).toEqual([1, 2, 3]);
    expect(progress).toEqual([[0, 3], [2, 3], [3, 3]]);
    expect(await reader.read('missing.json')).toBeNull();
    expect(seen).toEqual(['http://h/m/fashion/unet/config.json', 'http://h/m/fashion/missing.json']);
  });

  it('grows its buffer when the server sends no length, and rejects short bodies and HTTP errors', async () => {
    const big = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
    const noLength = urlFolderReader('http://h/', { fetch: (async () => streamed([big.subarray(0, 600), big.subarray(600)])) as typeof fetch });
    expect(Array.from((await noLength.read('a'))!)).toEqual(Array.from(big));
    const short = urlFolderReader('http://h/', { fetch: (async () => streamed([big.subarray(0, 10)], { 'content-length': '20' })) as typeof fetch });
    await expect(short.read('a')).rejects.toThrow(/^http:\/\/h\/a: got 10 bytes, expected 20$/);
    const broken = urlFolderReader('http://h/', { fetch: (async () => new Response('x', { status: 500, statusText: 'Internal Server Error' })) as typeof fetch });
    await expect(broken.read('a')).rejects.toThrow(DownloadError);
    await expect(broken.read('a')).rejects.toThrow(/http:\/\/h\/a: HTTP 500/);
    const offline = urlFolderReader('http://h/', { fetch: (async () => Promise.reject(new TypeError('fetch failed'))) as typeof fetch });
    await expect(offline.read('a')).rejects.toThrow(/http:\/\/h\/a: fetch failed/);
  });

  it('keeps files in the Cache API (in chunks, with a manifest) and reads them from there on the next load', async () => {
    const fake = fakeCaches();
    (globalThis as { caches?: unknown }).caches = fake.caches;
    let fetches = 0;
    const fetchStub = (async () => (fetches++, streamed([new Uint8Array([9, 8, 7])], { 'content-length': '3' }))) as typeof fetch;
    const hits: string[] = [];
    const first = urlFolderReader('http://h/m/', { fetch: fetchStub, onCacheHit: (f) => hits.push(f) });
    expect(Array.from((await first.read('w.safetensors'))!)).toEqual([9, 8, 7]);
    const url = 'http://h/m/w.safetensors';
    expect([...fake.entries(DEFAULT_CACHE_NAME).keys()]).toEqual([chunkKey(url, 0), manifestKey(url)]);
    const second = urlFolderReader('http://h/m/', { fetch: fetchStub, onCacheHit: (f) => hits.push(f) });
    expect(Array.from((await second.read('w.safetensors'))!)).toEqual([9, 8, 7]);
    expect(fetches).toBe(1);
    expect(hits).toEqual(['w.safetensors']);
    // cache: false goes to the network every time.
    const uncached = urlFolderReader('http://h/m/', { fetch: fetchStub, cache: false });
    await uncached.read('w.safetensors');
    expect(fetches).toBe(2);
  });

  it('opens files as ByteSources: null on 404, cached where the Cache API is, plain HTTP without it', async () => {
    const file = patterned(300);
    const server = fakeServer({ 'http://h/m/unet/w.safetensors': file });
    const plain = urlFolderReader('http://h/m', { fetch: server.fetch });
    expect(await plain.open('unet/missing.safetensors')).toBeNull();
    const src = (await plain.open('unet/w.safetensors'))!;
    expect(src.where).toBe('http://h/m/unet/w.safetensors');
    expect(await src.size()).toBe(300);
    expect(await collect(src.stream(8))).toEqual(file.subarray(8));
    const fake = fakeCaches();
    (globalThis as { caches?: unknown }).caches = fake.caches;
    const hits: string[] = [];
    const cached = urlFolderReader('http://h/m', { fetch: server.fetch, chunkBytes: 100, onCacheHit: (f) => hits.push(f) });
    expect(await collect((await cached.open('unet/w.safetensors'))!.stream(0))).toEqual(file);
    const n = server.requests.length;
    expect(await collect((await cached.open('unet/w.safetensors'))!.stream(0))).toEqual(file);
    expect(server.requests.length).toBe(n);
    expect(hits).toEqual(['unet/w.safetensors']);
  });

  it('reads a compressed body whose Content-Length counts the encoded bytes (a gzip\'d JSON from a CDN)', async () => {
    const json = new TextEncoder().encode(JSON.stringify({ _class_name: 'UNet2DConditionModel', block_out_channels: [320, 640, 1280, 1280] }));
    const progress: [number, number][] = [];
    // fetch has decoded the body already; the header still says the gzip'd length.
    const reader = urlFolderReader('http://h/m/', {
      fetch: (async () => streamed([json.subarray(0, 40), json.subarray(40)], { 'content-encoding': 'gzip', 'content-length': '61' })) as typeof fetch,
      onProgress: (l, t) => progress.push([l, t]),
      cache: false,
    });
    expect(new TextDecoder().decode((await reader.read('unet/config.json'))!)).toBe(new TextDecoder().decode(json));
    expect(progress).toEqual([[0, 0], [40, 0], [json.length, 0]]);
  });

  it('gives up a body that stops sending after the stall timeout, naming the URL and the bytes, and cancels it', async () => {
    let cancelled = false;
    const stalled = () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new Uint8Array(12));
          },
          pull: () => new Promise<void>(() => undefined),
          cancel: () => void (cancelled = true),
        }),
        { headers: { 'content-length': '100' } },
      );
    const reader = urlFolderReader('http://h/m/', { fetch: (async () => stalled()) as typeof fetch, stallTimeoutMs: 30, cache: false });
    const err = await reader.read('model_index.json').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toBe('http://h/m/model_index.json: the connection stalled: no data for 0.03 s (after 12 bytes of 100); the download was given up');
    expect(cancelled).toBe(true);
    // A request with no answer at all, the same way; and weight files opened through the reader.
    const silent = urlFolderReader('http://h/m/', { fetch: (() => new Promise<Response>(() => undefined)) as typeof fetch, stallTimeoutMs: 30, cache: false });
    await expect(silent.read('model_index.json')).rejects.toThrow('http://h/m/model_index.json: the connection stalled: no data for 0.03 s (no answer to the request)');
    const server = fakeServer({ 'http://h/m/unet/w.safetensors': patterned(300) }, { stallAfter: 100 });
    const src = (await urlFolderReader('http://h/m/', { fetch: server.fetch, stallTimeoutMs: 30, cache: false }).open('unet/w.safetensors'))!;
    await expect(collect(src.stream(0))).rejects.toThrow(/^http:\/\/h\/m\/unet\/w\.safetensors: the connection stalled: no data for 0\.03 s \(after byte 100 of 300/);
  });
});
