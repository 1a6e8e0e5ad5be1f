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
//
// Every response after the first is checked against it: a different strong ETag, Last-Modified or
// total size means the file was replaced between requests, a DownloadError (bytes of two versions
// would be garbage weights). A 206 whose Content-Range ends before the file does (a CDN that
// answers an open-ended range in parts) is followed by a range request for the rest. A connection
// that sends nothing for `stallTimeoutMs` is given up with a DownloadError, never waited on forever.
import type { ByteSource } from './byte_source.ts';
import { DownloadError } from '../errors.ts';

export interface HttpSourceOptions {
  fetch?: typeof fetch;
  /** The file's name in progress reports (default: the URL). */
  file?: string;
  /** Streams report the position reached in the file, of `total` (0 when the size is unknown). */
  onProgress?: (loaded: number, total: number, file: string) => void;
  /**
   * A response that sends no byte for this long (and a request that gets no answer) fails with a
   * DownloadError instead of hanging the load (default DEFAULT_STALL_TIMEOUT_MS; 0 or Infinity: never).
   */
  stallTimeoutMs?: number;
}

/** How long a connection may go without a byte before the load gives it up. */
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

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

/** `bytes a-b/total` or `bytes *\/total`: the first and last bytes sent (null for `*`) and the total (null for `*`). */
function parseContentRange(v: string | null): { first: number | null; last: number | null; total: number | null } | null {
  const m = v ? /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*\/\s*(\d+|\*)\s*$/i.exec(v) : null;
  if (!m) return null;
  return { first: m[1] === undefined ? null : Number(m[1]), last: m[2] === undefined ? null : Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** The body's length from Content-Length, unless the body is encoded (then the header counts the encoded bytes). */
export function bodyLength(res: Response): number | null {
  const enc = res.headers.get('content-encoding');
  if (enc && enc.trim().toLowerCase() !== 'identity') return null;
  const v = res.headers.get('content-length');
  if (v === null || !/^\s*\d+\s*$/.test(v)) return null;
  return Number(v);
}

function seconds(ms: number): string {
  return `${ms >= 1000 ? Math.round(ms / 1000) : ms / 1000} s`;
}

/**
 * `p` (a body read, a fetch), or `stalled()` thrown when it has not settled after `ms` (0, or not
 * finite: no limit). The caller cancels what was waited on; `p`'s own later failure is swallowed.
 */
export async function withinStall<T>(p: Promise<T>, ms: number, stalled: () => Error): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(stalled()), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
    p.catch(() => undefined);
  }
}

/** The DownloadError for a connection that sent nothing for `ms`. */
export function stallError(url: string, ms: number, received: string): DownloadError {
  return new DownloadError(`${url}: the connection stalled: no data for ${seconds(ms)} (${received}); the download was given up`);
}

/**
 * Reads `res`'s body: drops the first `skip` bytes, keeps up to `take` after them, and cancels the
 * rest. `expected` (the announced body length) makes a body that ends early a DownloadError.
 */
async function readSpan(res: Response, skip: number, take: number, expected: number | null, url: string, stallMs: number): Promise<Uint8Array> {
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
    const next = () => withinStall(reader.read(), stallMs, () => stallError(url, stallMs, `after ${seen} bytes of the response`));
    let done = false;
    try {
      while (got < take) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await next();
        } catch (e) {
          if (e instanceof DownloadError) throw e;
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
      if (!done && expected !== null && seen >= expected) done = await next().then((r) => r.done, () => false);
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
  const stallMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  // undefined: not learned yet; null: the server does not say (or does not let JS see it).
  let total: number | null | undefined;
  let head: Uint8Array | null = null;
  let probe: Promise<boolean> | null = null;
  const seen: Validators = { etag: null, lastModified: null };

  /** A DownloadError, once `res`'s body is cancelled (it may be the rest of a multi-GB file). */
  async function refuse(res: Response, message: string): Promise<DownloadError> {
    await res.body?.cancel().catch(() => undefined);
    return new DownloadError(`${url}: ${message}`);
  }

  type Got = { res: Response; cr: ReturnType<typeof parseContentRange> };

  async function get(start: number, end: number | null): Promise<Got> {
    const headers: Record<string, string> = {};
    if (start > 0 || end !== null) headers.range = `bytes=${start}-${end === null ? '' : end}`;
    const ctl = typeof AbortController === 'function' ? new AbortController() : null;
    let res: Response;
    try {
      const p = doFetch(url, ctl ? { headers, signal: ctl.signal } : { headers });
      res = await withinStall(p, stallMs, () => {
        ctl?.abort();
        return stallError(url, stallMs, `no answer to the request for bytes ${start}-${end ?? ''}`);
      });
    } catch (e) {
      if (e instanceof DownloadError) throw e;
      throw new DownloadError(`${url}: ${(e as Error).message}`);
    }
    const cr = parseContentRange(res.headers.get('content-range'));
    if (!res.ok && res.status !== 416) return { res, cr };
    // Another version of the file than the first response's (checked before anything is kept from
    // this one): the header from one version and the tensors from another would be garbage weights.
    // A strong ETag names the bytes; a weak one may differ between servers for the same bytes.
    const etag = res.ok ? res.headers.get('etag') : null;
    const strong = etag && !/^W\//.test(etag) ? etag : null;
    if (strong && seen.etag && seen.etag !== strong) throw await refuse(res, `the file changed while it was read (ETag ${seen.etag}, then ${strong})`);
    const lastModified = res.ok ? res.headers.get('last-modified') : null;
    if (lastModified && seen.lastModified && seen.lastModified !== lastModified) {
      throw await refuse(res, `the file changed while it was read (Last-Modified ${seen.lastModified}, then ${lastModified})`);
    }
    let told: number | null = null;
    if (res.status === 206 || res.status === 416) told = cr?.total ?? null;
    else if (res.status === 200) told = bodyLength(res);
    if (told !== null && typeof total === 'number' && told !== total) {
      throw await refuse(res, `the file changed while it was read (it was ${total} bytes, now ${told})`);
    }
    if (res.status === 206 && cr && cr.first !== null && cr.first !== start) {
      throw await refuse(res, `asked for bytes from ${start}, the server sent them from ${cr.first}`);
    }
    if (strong) seen.etag ??= strong;
    if (lastModified) seen.lastModified ??= lastModified;
    if (told !== null) total = told;
    return { res, cr };
  }

  async function failed(res: Response): Promise<DownloadError> {
    return refuse(res, `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }

  /** The body length a 206 promises: Content-Length, else the span its Content-Range names. */
  function spanOf(res: Response, cr: Got['cr']): number | null {
    return bodyLength(res) ?? (cr && cr.first !== null && cr.last !== null ? cr.last - cr.first + 1 : null);
  }

  /** Whether a 206's Content-Range stops before `want` (the last byte asked for, or the file's). */
  function stopsShort(cr: Got['cr'], want: number | null): boolean {
    if (!cr || cr.last === null) return false;
    const fileLast = total != null ? total - 1 : null;
    const last = want === null ? fileLast : fileLast === null ? want : Math.min(want, fileLast);
    return last !== null && cr.last < last;
  }

  async function doProbe(): Promise<boolean> {
    const { res, cr } = await get(0, PROBE_BYTES - 1);
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      return false;
    }
    if (res.status === 416) {
      // Not even byte 0: the file is empty.
      await res.body?.cancel().catch(() => undefined);
      head = new Uint8Array(0);
      total = 0;
      return true;
    }
    if (!res.ok) throw await failed(res);
    const expected = res.status === 206 ? spanOf(res, cr) : total ?? null;
    head = await readSpan(res, 0, PROBE_BYTES, expected, url, stallMs);
    // Fewer bytes than asked for: the whole file was shorter.
    if (head.byteLength < PROBE_BYTES && !stopsShort(cr, PROBE_BYTES - 1)) total = head.byteLength;
    else if (total === undefined) total = null;
    return true;
  }

  const exists = () => (probe ??= doProbe());

  async function read(start: number, end: number): Promise<Uint8Array> {
    if (total != null) end = Math.min(end, total);
    if (end <= start) return new Uint8Array(0);
    if (head && end <= head.byteLength) return head.slice(start, end);
    const { res, cr } = await get(start, end - 1);
    if (res.status === 416) {
      await res.body?.cancel().catch(() => undefined);
      return new Uint8Array(0);
    }
    if (!res.ok) throw await failed(res);
    if (res.status === 206) {
      const bytes = await readSpan(res, 0, end - start, spanOf(res, cr), url, stallMs);
      // Fewer bytes than asked for, though neither the range nor the file ends there: the rest
      // with another request (checked against this one's version like every request).
      if (stopsShort(cr, end - 1) && bytes.byteLength > 0 && bytes.byteLength === cr!.last! - start + 1) {
        const rest = await read(start + bytes.byteLength, end);
        const out = new Uint8Array(bytes.byteLength + rest.byteLength);
        out.set(bytes);
        out.set(rest, bytes.byteLength);
        return out;
      }
      const want = total != null ? Math.min(end, total) - start : null;
      if (want !== null && bytes.byteLength < want) throw new DownloadError(`${url}: got ${bytes.byteLength} bytes of ${start}..${start + want}, expected ${want}`);
      return bytes;
    }
    // 200: the server ignored Range and sends the file from byte 0.
    return readSpan(res, start, end - start, bodyLength(res), url, stallMs);
  }

  return {
    url,
    where: url,
    exists,
    validators: () => ({ ...seen }),

    async size() {
      if (total === undefined) await exists();
      return total ?? null;
    },

    read,

    async *stream(start = 0) {
      let pos = start;
      let first = true;
      // One response, or several where the server answers the open-ended range in parts.
      for (;;) {
        if (total != null && pos >= total) return;
        const from = pos;
        const { res, cr } = await get(from, null);
        if (res.status === 416) {
          await res.body?.cancel().catch(() => undefined);
          return;
        }
        if (!res.ok) throw await failed(res);
        // A 200 is the whole file: skip to `from`. A 206 starts there.
        let skip = res.status === 206 ? 0 : from;
        const expected = res.status === 206 ? spanOf(res, cr) : bodyLength(res);
        const fileTotal = total ?? 0;
        let received = 0;
        if (first) opts.onProgress?.(pos, fileTotal, file);
        first = false;
        const counts = () => `after byte ${pos}${fileTotal ? ` of ${fileTotal}` : ''}`;
        if (!res.body) {
          const all = new Uint8Array(await res.arrayBuffer());
          received = all.byteLength;
          if (expected !== null && all.byteLength < expected) throw new DownloadError(`${url}: got ${all.byteLength} bytes, expected ${expected}`);
          const part = all.subarray(Math.min(skip, all.byteLength));
          if (part.byteLength) {
            pos += part.byteLength;
            opts.onProgress?.(pos, fileTotal, file);
            yield part;
          }
        } else {
          const reader = res.body.getReader();
          let done = false;
          try {
            for (;;) {
              let r: ReadableStreamReadResult<Uint8Array>;
              try {
                r = await withinStall(reader.read(), stallMs, () => stallError(url, stallMs, `${counts()}, ${received} bytes of this response received`));
              } catch (e) {
                if (e instanceof DownloadError) throw e;
                throw new DownloadError(`${url}: ${(e as Error).message} (${counts()})`);
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
        }
        if (expected !== null && received !== expected) {
          throw new DownloadError(`${url}: got ${received} bytes, expected ${expected}${res.status === 206 ? ` (from byte ${from})` : ''}`);
        }
        // A 206 that ends before the file does is not the rest of it: ask for what is left. Where
        // neither it nor an earlier answer told the total (`bytes a-b/*`), ask too: a 416 ends it.
        if (res.status !== 206 || !cr || cr.last === null || (total != null && !stopsShort(cr, null))) return;
        if (pos === from) throw new DownloadError(`${url}: the server sent no bytes from byte ${from} (Content-Range ${res.headers.get('content-range')})`);
      }
    },
  };
}

/** The file at `url` as a ByteSource, or null when the server says 404 (one 8-byte range request). */
export async function openHttp(url: string, opts: HttpSourceOptions = {}): Promise<HttpSource | null> {
  const src = httpSource(url, opts);
  return (await src.exists()) ? src : null;
}
