// Stand-ins for a file server (fetch), the Cache API and navigator.storage, so the URL reader, the
// HTTP source and the model cache are tested without a network or a browser. Each records what
// it was asked, so tests can count requests, puts and cancelled bodies.

export interface ServerOptions {
  /** Answer every request with the whole file (200), as a server without Range support. */
  ignoreRange?: boolean;
  /** Send Content-Range (default true); false is a cross-origin server that does not expose it. */
  contentRange?: boolean;
  /** Bytes per body piece (default 7: odd, so pieces straddle every boundary). */
  piece?: number;
  /** Announce the full length but end the body after this many bytes. */
  shortAfter?: number;
  /** Fail the body (a network error) after this many bytes. */
  failAfter?: number;
  /** ETag for a URL, or null for none. */
  etag?: (url: string) => string | null;
  /** Last-Modified for a URL, or null for none. */
  lastModified?: (url: string) => string | null;
  /** Send Content-Length (default true); false is a chunked or compressed transfer. */
  contentLength?: boolean;
  /** Stop sending (without ending the body) after this many bytes: a stalled connection. */
  stallAfter?: number;
  /** Answer a range with at most this many bytes (a 206 that says so in Content-Range), as some CDNs do. */
  maxRangeBytes?: number;
}

export interface ServedRequest {
  url: string;
  range: string | null;
}

/** A static file server: `files` by absolute URL; anything else is a 404. */
export function fakeServer(files: Map<string, Uint8Array> | Record<string, Uint8Array>, opts: ServerOptions = {}) {
  const table = files instanceof Map ? files : new Map(Object.entries(files));
  const requests: ServedRequest[] = [];
  /** Bodies cancelled before their end, and the bytes each had sent then. */
  const cancelled: { url: string; sent: number }[] = [];
  let offline = false;
  const piece = opts.piece ?? 7;

  function body(url: string, bytes: Uint8Array): ReadableStream<Uint8Array> {
    let sent = 0;
    const limit = Math.min(bytes.byteLength, opts.shortAfter ?? Infinity);
    return new ReadableStream<Uint8Array>(
      {
        pull(c) {
          // Stalled: the pull never settles, and no byte or end comes until the body is cancelled.
          if (opts.stallAfter !== undefined && sent >= opts.stallAfter) return new Promise<void>(() => undefined);
          if (opts.failAfter !== undefined && sent >= opts.failAfter) {
            c.error(new TypeError('network connection lost'));
            return;
          }
          if (sent >= limit) {
            c.close();
            return;
          }
          const n = Math.min(
            piece,
            limit - sent,
            opts.failAfter !== undefined ? Math.max(1, opts.failAfter - sent) : Infinity,
            opts.stallAfter !== undefined ? Math.max(1, opts.stallAfter - sent) : Infinity,
          );
          c.enqueue(bytes.slice(sent, sent + n));
          sent += n;
          return undefined;
        },
        cancel() {
          cancelled.push({ url, sent });
        },
      },
      { highWaterMark: 0 },
    );
  }

  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const headers = new Headers(init?.headers);
    const range = headers.get('range');
    requests.push({ url, range });
    if (offline) throw new TypeError('fetch failed');
    const file = table.get(url);
    if (!file) return new Response('not found', { status: 404, statusText: 'Not Found' });
    const common: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': opts.ignoreRange ? 'none' : 'bytes' };
    const etag = opts.etag?.(url);
    if (etag) common.etag = etag;
    const lastModified = opts.lastModified?.(url);
    if (lastModified) common['last-modified'] = lastModified;
    const length = (n: number): Record<string, string> => (opts.contentLength === false ? {} : { 'content-length': String(n) });
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (!m || opts.ignoreRange) {
      return new Response(body(url, file), { status: 200, headers: { ...common, ...length(file.byteLength) } });
    }
    const start = Number(m[1]);
    const end = Math.min(m[2] ? Number(m[2]) : Infinity, file.byteLength - 1, start + (opts.maxRangeBytes ?? Infinity) - 1);
    if (start >= file.byteLength) {
      return new Response(null, { status: 416, statusText: 'Range Not Satisfiable', headers: opts.contentRange === false ? common : { ...common, 'content-range': `bytes */${file.byteLength}` } });
    }
    const h: Record<string, string> = { ...common, ...length(end - start + 1) };
    if (opts.contentRange !== false) h['content-range'] = `bytes ${start}-${end}/${file.byteLength}`;
    return new Response(body(url, file.subarray(start, end + 1)), { status: 206, headers: h });
  }) as typeof globalThis.fetch;

  return {
    fetch,
    requests,
    cancelled,
    files: table,
    setOffline(v: boolean) {
      offline = v;
    },
  };
}

interface Stored {
  body: Uint8Array;
  headers: [string, string][];
}

export interface FakeCacheOptions {
  /** Throw this from a put (the nth put of the named cache, 1-based), as a full disk would. */
  failPut?: (key: string, n: number) => Error | null;
}

const keyOf = (k: RequestInfo | URL): string => (typeof k === 'string' ? k : k instanceof URL ? k.href : k.url);

/** A Map-backed CacheStorage: match/put/delete/keys by URL, as the Cache API (no fragments, no Vary). */
export function fakeCaches(opts: FakeCacheOptions = {}) {
  const stores = new Map<string, Map<string, Stored>>();
  let puts = 0;
  const counts = { puts: 0, deletes: 0, matches: 0 };
  function cacheFor(name: string): Cache {
    const store = stores.get(name) ?? new Map<string, Stored>();
    stores.set(name, store);
    const cache = {
      async match(k: RequestInfo | URL) {
        counts.matches++;
        const e = store.get(keyOf(k));
        return e ? new Response(e.body.slice() as BodyInit, { headers: e.headers }) : undefined;
      },
      async put(k: RequestInfo | URL, res: Response) {
        counts.puts++;
        const err = opts.failPut?.(keyOf(k), ++puts);
        if (err) throw err;
        store.set(keyOf(k), { body: new Uint8Array(await res.arrayBuffer()), headers: [...res.headers] });
      },
      async delete(k: RequestInfo | URL) {
        counts.deletes++;
        return store.delete(keyOf(k));
      },
      async keys() {
        return [...store.keys()].map((u) => new Request(u));
      },
    };
    return cache as unknown as Cache;
  }
  const caches = {
    open: async (name: string) => cacheFor(name),
    has: async (name: string) => stores.has(name),
    delete: async (name: string) => stores.delete(name),
    keys: async () => [...stores.keys()],
    match: async () => undefined,
  } as unknown as CacheStorage;
  return {
    caches,
    stores,
    counts,
    /** The entries of one cache, by key. */
    entries: (name: string) => stores.get(name) ?? new Map<string, Stored>(),
    /** Replaces an entry's body, keeping or setting its headers (a damaged entry). */
    setBody(name: string, key: string, body: Uint8Array, headers?: Record<string, string>) {
      const e = stores.get(name)!.get(key)!;
      e.body = body;
      if (headers) e.headers = Object.entries(headers);
    },
  };
}

/** navigator.storage: estimate() and persist(), counting the asks. */
export function fakeStorage(opts: { usage?: number; quota?: number; grant?: boolean } = {}) {
  const calls = { persist: 0, persisted: 0, estimate: 0 };
  let persisted = false;
  const storage = {
    async estimate() {
      calls.estimate++;
      return { usage: opts.usage ?? 1000, quota: opts.quota ?? 10_000_000 };
    },
    async persisted() {
      calls.persisted++;
      return persisted;
    },
    async persist() {
      calls.persist++;
      persisted = opts.grant ?? true;
      return persisted;
    },
  };
  return { storage, calls };
}

/** A file of `n` bytes whose every byte tells its position (mod 251, a prime, so chunks differ). */
export function patterned(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251);
}

export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
