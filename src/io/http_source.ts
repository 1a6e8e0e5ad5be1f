// A file over HTTP as a ByteSource: bytes by range (a safetensors header) and the body as a stream,
// never the whole file in one buffer. Real servers differ in what they give: most answer a Range
// with 206 and Content-Range; some ignore Range and send the whole file (200), which still works
// here, read only as far as needed and then cancelled; and cross-origin, Content-Range may not be
// exposed to JS at all, so the file's size can stay unknown (size() then says null). The Hub's
// resolve URLs redirect to a CDN, which fetch follows; a single `bytes=a-b` or `bytes=a-` Range is
// a CORS-safelisted request header, so it costs no preflight.
//
// Requests for a safetensors weight file, as the loader asks (size, bytes 0-7, the header, the
// stream from the first tensor): exists() is one `Range: bytes=0-7` request, which both tells a
// missing file (404) and keeps the 8 bytes the loader reads next; then one range request for the
// header; then one `Range: bytes=<data start>-` GET for the body. No tensor byte is downloaded
// before the stream is asked for.
import type { ByteSource } from './byte_source.ts';
import { DownloadError } from '../errors.ts';

export interface HttpSourceOptions {
  fetch?: typeof fetch;
  /** The file's name in progress reports (default: the URL). */
  file?: string;
  /** Streams report the position reached in the file, of `total` (0 when the size is unknown). */
  onProgress?: (loaded: number, total: number, file: string) => void;
}

/** What the server said identifies this version of the file, where it was exposed. */
export interface Validators {
  etag: string | null;
  lastModified: string | null;
}

export interface HttpSource extends ByteSource {
  readonly url: string;
  /**
   * Whether the file exists: a `Range: bytes=0-7` request (false on 404, DownloadError on other
   * failures), done once; its bytes serve read(0, 8) and it may tell the size.
   */
  exists(): Promise<boolean>;
  validators(): Validators;
}

/** The bytes exists() asks for: a safetensors file's header length field. */
const PROBE_BYTES = 8;

/** `bytes a-b/total` or `bytes *\/total`: the first byte sent (null for `*`) and the total (null for `*`). */
function parseContentRange(v: string | null): { first: number | null; total: number | null } | null {
  const m = v ? /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*\/\s*(\d+|\*)\s*$/i.exec(v) : null;
  if (!m) return null;
  return { first: m[1] === undefined ? null : Number(m[1]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** The body's length from Content-Length, unless the body is encoded (then the header counts the encoded bytes). */
function bodyLength(res: Response): number | null {
  const enc = res.headers.get('content-encoding');
  if (enc && enc.trim().toLowerCase() !== 'identity') return null;
  const v = res.headers.get('content-length');
  if (v === null || !/^\s*\d+\s*$/.test(v)) return null;
  return Number(v);
}

/**
 * Reads `res`'s body: drops the first `skip` bytes, keeps up to `take` after them, and cancels the
 * rest. `expected` (the announced body length) makes a body that ends early a DownloadError.
 */
async function readSpan(res: Response, skip: number, take: number, expected: number | null, url: string): Promise<Uint8Array> {
  const out = new Uint8Array(take);
  let got = 0;
  let seen = 0;
  if (!res.body) {
    const all = new Uint8Array(await res.arrayBuffer());
    seen = all.byteLength;
    const part = all.subarray(Math.min(skip, seen), Math.min(skip + take, seen));
    out.set(part);
    got = part.byteLength;
  } else {
    const reader = res.body.getReader();
    let done = false;
    try {
      while (got < take) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          throw new DownloadError(`${url}: ${(e as Error).message} (after ${seen} bytes of the response)`);
        }
        if (r.done) {
          done = true;
          break;
        }
        const v = r.value;
        const from = Math.max(0, skip - seen);
        seen += v.byteLength;
        if (from >= v.byteLength) continue;
        const part = v.subarray(from, Math.min(v.byteLength, from + take - got));
        out.set(part, got);
        got += part.byteLength;
      }
      // All the body announced has come: see its end rather than cancel it.
      if (!done && expected !== null && seen >= expected) done = await reader.read().then((r) => r.done, () => false);
    } finally {
      // A server that ignored Range would go on sending the whole file: stop it here.
      if (!done) await reader.cancel().catch(() => undefined);
    }
    if (!done) return out;
  }
  if (expected !== null && seen < expected) throw new DownloadError(`${url}: got ${seen} bytes, expected ${expected}`);
  return got === take ? out : out.slice(0, got);
}

/** A ByteSource over `url`. Nothing is requested until a method asks. */
export function httpSource(url: string, opts: HttpSourceOptions = {}): HttpSource {
  const doFetch = opts.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const file = opts.file ?? url;
  // undefined: not learned yet; null: the server does not say (or does not let JS see it).
  let total: number | null | undefined;
  let head: Uint8Array | null = null;
  let probe: Promise<boolean> | null = null;
  const seen: Validators = { etag: null, lastModified: null };

  async function get(start: number, end: number | null): Promise<Response> {
    const headers: Record<string, string> = {};
    if (start > 0 || end !== null) headers.range = `bytes=${start}-${end === null ? '' : end}`;
    let res: Response;
    try {
      res = await doFetch(url, { headers });
    } catch (e) {
      throw new DownloadError(`${url}: ${(e as Error).message}`);
    }
    // A strong ETag that changes between requests means the file was replaced while being read:
    // the header from one version and the tensors from another would be garbage weights.
    const etag = res.headers.get('etag');
    if (etag && !/^W\//.test(etag)) {
      if (seen.etag && seen.etag !== etag) throw new DownloadError(`${url}: the file changed while it was read (ETag ${seen.etag}, then ${etag})`);
      seen.etag = etag;
    }
    seen.lastModified ??= res.headers.get('last-modified');
    const cr = parseContentRange(res.headers.get('content-range'));
    if (res.status === 206) {
      if (cr?.total != null) total = cr.total;
      if (cr && cr.first !== null && cr.first !== start) throw new DownloadError(`${url}: asked for bytes from ${start}, the server sent them from ${cr.first}`);
    } else if (res.status === 200) {
      const n = bodyLength(res);
      if (n !== null) total = n;
    } else if (res.status === 416 && cr?.total != null) {
      total = cr.total;
    }
    return res;
  }

  function failed(res: Response): DownloadError {
    return new DownloadError(`${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }

  async function doProbe(): Promise<boolean> {
    const res = await get(0, PROBE_BYTES - 1);
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      return false;
    }
    if (res.status === 416) {
      // Not even byte 0: the file is empty.
      head = new Uint8Array(0);
      total = 0;
      return true;
    }
    if (!res.ok) throw failed(res);
    const expected = res.status === 206 ? bodyLength(res) : total ?? null;
    head = await readSpan(res, 0, PROBE_BYTES, expected, url);
    // Fewer bytes than asked for: the whole file was shorter.
    if (head.byteLength < PROBE_BYTES) total = head.byteLength;
    else if (total === undefined) total = null;
    return true;
  }

  const exists = () => (probe ??= doProbe());

  return {
    url,
    where: url,
    exists,
    validators: () => ({ ...seen }),

    async size() {
      if (total === undefined) await exists();
      return total ?? null;
    },

    async read(start, end) {
      if (total != null) end = Math.min(end, total);
      if (end <= start) return new Uint8Array(0);
      if (head && end <= head.byteLength) return head.slice(start, end);
      const res = await get(start, end - 1);
      if (res.status === 416) {
        await res.body?.cancel().catch(() => undefined);
        return new Uint8Array(0);
      }
      if (!res.ok) throw failed(res);
      if (res.status === 206) {
        const want = total != null ? Math.min(end, total) - start : null;
        const bytes = await readSpan(res, 0, end - start, bodyLength(res), url);
        if (want !== null && bytes.byteLength < want) throw new DownloadError(`${url}: got ${bytes.byteLength} bytes of ${start}..${start + want}, expected ${want}`);
        return bytes;
      }
      // 200: the server ignored Range and sends the file from byte 0.
      return readSpan(res, start, end - start, bodyLength(res), url);
    },

    async *stream(start = 0) {
      if (total != null && start >= total) return;
      const res = await get(start, null);
      if (res.status === 416) {
        await res.body?.cancel().catch(() => undefined);
        return;
      }
      if (!res.ok) throw failed(res);
      // A 200 is the whole file: skip to `start`. A 206 starts there.
      let skip = res.status === 206 ? 0 : start;
      const expected = bodyLength(res);
      const fileTotal = total ?? 0;
      let pos = start;
      let received = 0;
      opts.onProgress?.(pos, fileTotal, file);
      if (!res.body) {
        const all = new Uint8Array(await res.arrayBuffer());
        if (expected !== null && all.byteLength < expected) throw new DownloadError(`${url}: got ${all.byteLength} bytes, expected ${expected}`);
        const part = all.subarray(Math.min(skip, all.byteLength));
        if (part.byteLength) {
          pos += part.byteLength;
          opts.onProgress?.(pos, fileTotal, file);
          yield part;
        }
        return;
      }
      const reader = res.body.getReader();
      let done = false;
      try {
        for (;;) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (e) {
            throw new DownloadError(`${url}: ${(e as Error).message} (after byte ${pos}${fileTotal ? ` of ${fileTotal}` : ''})`);
          }
          if (r.done) {
            done = true;
            break;
          }
          received += r.value.byteLength;
          let v = r.value;
          if (skip > 0) {
            const drop = Math.min(skip, v.byteLength);
            skip -= drop;
            v = v.subarray(drop);
          }
          if (v.byteLength === 0) continue;
          pos += v.byteLength;
          opts.onProgress?.(pos, fileTotal, file);
          yield v;
        }
      } finally {
        // The consumer stopped early (or a read failed): do not download the rest.
        if (!done) await reader.cancel().catch(() => undefined);
      }
      if (expected !== null && received !== expected) {
        throw new DownloadError(`${url}: got ${received} bytes, expected ${expected}${res.status === 206 ? ` (from byte ${start})` : ''}`);
      }
    },
  };
}

/** The file at `url` as a ByteSource, or null when the server says 404 (one 8-byte range request). */
export async function openHttp(url: string, opts: HttpSourceOptions = {}): Promise<HttpSource | null> {
  const src = httpSource(url, opts);
  return (await src.exists()) ? src : null;
}
