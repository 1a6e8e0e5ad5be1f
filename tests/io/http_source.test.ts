// httpSource over a stand-in server: ranges with 206, a server that ignores Range (200, body
// cancelled once the bytes asked for have come), streams from 0 and from an offset, sizes when
// Content-Range is hidden, and every failure as a DownloadError naming the URL.
import { describe, expect, it } from 'vitest';
import { httpSource, openHttp } from '../../src/io/http_source.ts';
import { DownloadError } from '../../src/errors.ts';
import { collect, fakeServer, patterned } from '../helpers/fake_web.ts';

const URL_ = 'http://h/m/unet/w.safetensors';
const FILE = patterned(1000);

describe('httpSource: ranges', () => {
  it('probes 8 bytes, reads a range with 206, and learns the size from Content-Range', async () => {
    const server = fakeServer({ [URL_]: FILE });
    const src = await openHttp(URL_, { fetch: server.fetch });
    expect(src).not.toBeNull();
    expect(server.requests).toEqual([{ url: URL_, range: 'bytes=0-7' }]);
    expect(await src!.size()).toBe(1000);
    // The probe's bytes serve the first read: no request.
    expect(Array.from(await src!.read(0, 8))).toEqual(Array.from(FILE.subarray(0, 8)));
    expect(Array.from(await src!.read(8, 120))).toEqual(Array.from(FILE.subarray(8, 120)));
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=0-7', 'bytes=8-119']);
    // Past the end: clamped by the known size, and empty beyond it.
    expect(Array.from(await src!.read(990, 2000))).toEqual(Array.from(FILE.subarray(990)));
    expect((await src!.read(1000, 1010)).byteLength).toBe(0);
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=0-7', 'bytes=8-119', 'bytes=990-999']);
    expect(server.cancelled).toEqual([]);
  });

  it('works with a server that ignores Range: reads as far as needed and cancels the body', async () => {
    const server = fakeServer({ [URL_]: FILE }, { ignoreRange: true });
    const src = httpSource(URL_, { fetch: server.fetch });
    expect(Array.from(await src.read(100, 130))).toEqual(Array.from(FILE.subarray(100, 130)));
    expect(server.requests).toEqual([{ url: URL_, range: 'bytes=100-129' }]);
    expect(server.cancelled).toHaveLength(1);
    // The body was stopped soon after byte 130, not read to the end of the file.
    expect(server.cancelled[0]!.sent).toBeLessThan(150);
    // A 200's Content-Length is the file's size.
    expect(await src.size()).toBe(1000);
    expect(server.requests).toHaveLength(1);
    // The probe too: 8 bytes, then cancelled.
    expect(await src.exists()).toBe(true);
    expect(server.requests).toHaveLength(2);
    expect(server.cancelled[1]!.sent).toBeLessThan(20);
    expect(Array.from(await src.read(0, 8))).toEqual(Array.from(FILE.subarray(0, 8)));
    expect(server.requests).toHaveLength(2);
  });

  it('leaves the size unknown when Content-Range is not exposed, and reads all the same', async () => {
    const server = fakeServer({ [URL_]: FILE }, { contentRange: false });
    const src = (await openHttp(URL_, { fetch: server.fetch }))!;
    expect(await src.size()).toBeNull();
    expect(Array.from(await src.read(500, 520))).toEqual(Array.from(FILE.subarray(500, 520)));
    // Near the end, the server clamps the range: fewer bytes, as the file ends.
    expect(Array.from(await src.read(995, 1010))).toEqual(Array.from(FILE.subarray(995)));
    expect((await src.read(1000, 1010)).byteLength).toBe(0);
    expect(await collect(src.stream(900))).toEqual(FILE.subarray(900));
    // size() asked nothing more of the server.
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=0-7', 'bytes=500-519', 'bytes=995-1009', 'bytes=1000-1009', 'bytes=900-']);
  });

  it('tells a missing file (404) from other failures, all DownloadErrors naming the URL', async () => {
    const server = fakeServer({});
    expect(await openHttp(URL_, { fetch: server.fetch })).toBeNull();
    expect(server.requests).toEqual([{ url: URL_, range: 'bytes=0-7' }]);
    const broken = httpSource(URL_, { fetch: (async () => new Response('x', { status: 503, statusText: 'Service Unavailable' })) as typeof fetch });
    await expect(broken.exists()).rejects.toThrow(new DownloadError(`${URL_}: HTTP 503 Service Unavailable`));
    await expect(broken.read(8, 100)).rejects.toThrow(/HTTP 503/);
    await expect(collect(broken.stream(0))).rejects.toThrow(DownloadError);
    const offline = fakeServer({ [URL_]: FILE });
    offline.setOffline(true);
    await expect(openHttp(URL_, { fetch: offline.fetch })).rejects.toThrow(new DownloadError(`${URL_}: fetch failed`));
    // A file shorter than 8 bytes: the probe says how long it is.
    const tiny = fakeServer({ [URL_]: new Uint8Array([1, 2, 3]) });
    const t = (await openHttp(URL_, { fetch: tiny.fetch }))!;
    expect(await t.size()).toBe(3);
    expect(Array.from(await t.read(0, 8))).toEqual([1, 2, 3]);
  });

  it('refuses a short 206 body and a file that changes between requests', async () => {
    const short = fakeServer({ [URL_]: FILE }, { shortAfter: 5 });
    const src = httpSource(URL_, { fetch: short.fetch });
    await expect(src.read(8, 100)).rejects.toThrow(new DownloadError(`${URL_}: got 5 bytes, expected 92`));
    let version = 1;
    const changing = fakeServer({ [URL_]: FILE }, { etag: () => `"v${version}"` });
    const c = (await openHttp(URL_, { fetch: changing.fetch }))!;
    expect(c.validators()).toEqual({ etag: '"v1"', lastModified: null });
    version = 2;
    await expect(c.read(8, 100)).rejects.toThrow(`${URL_}: the file changed while it was read (ETag "v1", then "v2")`);
  });
});

describe('httpSource: streams', () => {
  it('streams from 0 without a Range header, reporting the position and the size', async () => {
    const server = fakeServer({ [URL_]: FILE }, { piece: 300 });
    const progress: [number, number, string][] = [];
    const src = httpSource(URL_, { fetch: server.fetch, file: 'unet/w.safetensors', onProgress: (l, t, f) => progress.push([l, t, f]) });
    expect(await collect(src.stream())).toEqual(FILE);
    expect(server.requests).toEqual([{ url: URL_, range: null }]);
    expect(progress).toEqual([0, 300, 600, 900, 1000].map((l) => [l, 1000, 'unet/w.safetensors']));
  });

  it('streams from an offset with a 206, and skips the prefix of a 200', async () => {
    const ranged = fakeServer({ [URL_]: FILE });
    const src = httpSource(URL_, { fetch: ranged.fetch });
    expect(await collect(src.stream(123))).toEqual(FILE.subarray(123));
    expect(ranged.requests).toEqual([{ url: URL_, range: 'bytes=123-' }]);
    // Past the end: 416, nothing to yield.
    expect((await collect(src.stream(1000))).byteLength).toBe(0);
    const whole = fakeServer({ [URL_]: FILE }, { ignoreRange: true });
    const progress: number[] = [];
    const w = httpSource(URL_, { fetch: whole.fetch, onProgress: (l) => progress.push(l) });
    expect(await collect(w.stream(123))).toEqual(FILE.subarray(123));
    expect(whole.requests).toEqual([{ url: URL_, range: 'bytes=123-' }]);
    expect(progress[0]).toBe(123);
    expect(progress.at(-1)).toBe(1000);
  });

  it('throws DownloadError for a short body and a broken connection, naming the URL and the counts', async () => {
    const short = fakeServer({ [URL_]: FILE }, { shortAfter: 600 });
    await expect(collect(httpSource(URL_, { fetch: short.fetch }).stream())).rejects.toThrow(new DownloadError(`${URL_}: got 600 bytes, expected 1000`));
    await expect(collect(httpSource(URL_, { fetch: short.fetch }).stream(100))).rejects.toThrow(`${URL_}: got 600 bytes, expected 900 (from byte 100)`);
    const cut = fakeServer({ [URL_]: FILE }, { failAfter: 400 });
    const err = await collect(httpSource(URL_, { fetch: cut.fetch }).stream()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toBe(`${URL_}: network connection lost (after byte 400 of 1000)`);
  });

  it('cancels the body when the consumer stops early', async () => {
    const server = fakeServer({ [URL_]: FILE }, { piece: 100 });
    const src = httpSource(URL_, { fetch: server.fetch });
    let got = 0;
    for await (const p of src.stream(0)) {
      got += p.byteLength;
      if (got >= 200) break;
    }
    expect(server.cancelled).toHaveLength(1);
    expect(server.cancelled[0]!.sent).toBeLessThan(400);
  });
});

describe('httpSource: a file that changes between requests', () => {
  it('a different Last-Modified is a DownloadError, and the refused body is cancelled', async () => {
    let stamp = 'Mon, 01 Jan 2024 00:00:00 GMT';
    const server = fakeServer({ [URL_]: FILE }, { lastModified: () => stamp });
    const src = (await openHttp(URL_, { fetch: server.fetch }))!;
    expect(src.validators()).toEqual({ etag: null, lastModified: stamp });
    expect(Array.from(await src.read(8, 50))).toEqual(Array.from(FILE.subarray(8, 50)));
    stamp = 'Tue, 02 Jan 2024 00:00:00 GMT';
    await expect(collect(src.stream(50))).rejects.toThrow(
      new DownloadError(`${URL_}: the file changed while it was read (Last-Modified Mon, 01 Jan 2024 00:00:00 GMT, then Tue, 02 Jan 2024 00:00:00 GMT)`),
    );
    expect(server.cancelled).toEqual([{ url: URL_, sent: 0 }]);
  });

  it('a different total (no ETag, or a weak one that changed) is a DownloadError, not a new size', async () => {
    for (const weak of [false, true]) {
      const files = new Map([[URL_, FILE]]);
      const server = fakeServer(files, { etag: () => (weak ? (files.get(URL_) === FILE ? 'W/"1"' : 'W/"2"') : null) });
      const src = (await openHttp(URL_, { fetch: server.fetch }))!;
      expect(await src.size()).toBe(1000);
      files.set(URL_, patterned(1004));
      await expect(collect(src.stream(8))).rejects.toThrow(new DownloadError(`${URL_}: the file changed while it was read (it was 1000 bytes, now 1004)`));
      expect(await src.size()).toBe(1000);
      expect(server.cancelled).toEqual([{ url: URL_, sent: 0 }]);
    }
  });

  it('an ETag change and a wrong range start cancel the body they refuse', async () => {
    let version = 1;
    const changing = fakeServer({ [URL_]: FILE }, { etag: () => `"v${version}"` });
    const c = (await openHttp(URL_, { fetch: changing.fetch }))!;
    version = 2;
    await expect(collect(c.stream(8))).rejects.toThrow(`${URL_}: the file changed while it was read (ETag "v1", then "v2")`);
    expect(changing.cancelled).toEqual([{ url: URL_, sent: 0 }]);
    const cancelled: number[] = [];
    const skewed = (async () => {
      const body = new ReadableStream<Uint8Array>({ pull: (ctl) => ctl.enqueue(new Uint8Array(10)), cancel: () => void cancelled.push(1) }, { highWaterMark: 0 });
      return new Response(body, { status: 206, headers: { 'content-range': 'bytes 0-999/1000' } });
    }) as typeof fetch;
    await expect(collect(httpSource(URL_, { fetch: skewed }).stream(100))).rejects.toThrow(`${URL_}: asked for bytes from 100, the server sent them from 0`);
    expect(cancelled).toEqual([1]);
  });
});

describe('httpSource: a 206 that ends before the file', () => {
  it('a CDN that answers an open-ended range in parts: the rest is asked for, never passed as the whole file', async () => {
    const server = fakeServer({ [URL_]: FILE }, { maxRangeBytes: 300 });
    const progress: number[] = [];
    const src = httpSource(URL_, { fetch: server.fetch, onProgress: (l) => progress.push(l) });
    expect(await collect(src.stream(150))).toEqual(FILE.subarray(150));
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=150-', 'bytes=450-', 'bytes=750-']);
    expect(progress[0]).toBe(150);
    expect(progress.at(-1)).toBe(1000);
    // A read across such a limit too.
    expect(Array.from(await src.read(100, 800))).toEqual(Array.from(FILE.subarray(100, 800)));
    expect(server.requests.map((r) => r.range).slice(3)).toEqual(['bytes=100-799', 'bytes=400-799', 'bytes=700-799']);
  });

  it('a 206 with an unknown total (bytes a-b/*): the rest is asked for until the server says there is none', async () => {
    const server = fakeServer({ [URL_]: FILE }, { maxRangeBytes: 400 });
    const starred = (async (u: RequestInfo | URL, init?: RequestInit) => {
      const res = await server.fetch(u, init);
      const headers = new Headers(res.headers);
      const cr = headers.get('content-range');
      if (cr) headers.set('content-range', cr.replace(/\/\d+$/, '/*'));
      return new Response(res.body, { status: res.status, headers });
    }) as typeof fetch;
    const src = httpSource(URL_, { fetch: starred });
    expect(await collect(src.stream(100))).toEqual(FILE.subarray(100));
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=100-', 'bytes=500-', 'bytes=900-', 'bytes=1000-']);
  });

  it('a body shorter than its Content-Range, with no Content-Length to tell, is a DownloadError', async () => {
    const server = fakeServer({ [URL_]: FILE }, { contentLength: false, shortAfter: 500 });
    await expect(collect(httpSource(URL_, { fetch: server.fetch }).stream(100))).rejects.toThrow(new DownloadError(`${URL_}: got 500 bytes, expected 900 (from byte 100)`));
  });
});

describe('httpSource: a stalled connection', () => {
  it('a body that stops sending fails the stream after the stall timeout, naming the URL and the bytes, and is cancelled', async () => {
    const server = fakeServer({ [URL_]: FILE }, { stallAfter: 250, piece: 100 });
    const src = httpSource(URL_, { fetch: server.fetch, stallTimeoutMs: 30 });
    const err = await collect(src.stream(0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toBe(`${URL_}: the connection stalled: no data for 0.03 s (after byte 250 of 1000, 250 bytes of this response received); the download was given up`);
    expect(server.cancelled).toEqual([{ url: URL_, sent: 250 }]);
    // A range read, and a request that is never answered, the same way.
    await expect(src.read(100, 600)).rejects.toThrow(`${URL_}: the connection stalled: no data for 0.03 s (after 250 bytes of the response)`);
    expect(server.cancelled).toHaveLength(2);
    let aborted = false;
    const silent = ((_u: RequestInfo | URL, init?: RequestInit) =>
      new Promise<Response>(() => init?.signal?.addEventListener('abort', () => void (aborted = true)))) as typeof fetch;
    await expect(httpSource(URL_, { fetch: silent, stallTimeoutMs: 30 }).exists()).rejects.toThrow(
      new DownloadError(`${URL_}: the connection stalled: no data for 0.03 s (no answer to the request for bytes 0-7); the download was given up`),
    );
    expect(aborted).toBe(true);
  });
});
