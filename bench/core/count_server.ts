// A static file server for load benchmarks that counts what it sends: requests and body bytes per
// path, split into weight files (.safetensors and other checkpoint formats) and small files
// (configs, tokenizer). It serves single byte ranges (206, Content-Range, Accept-Ranges; 416 past
// the end), HEAD, and CORS (any origin, Range allowed, the length headers exposed), so a page on
// another port could load from it. Every response says Cache-Control: no-store, so that a second
// visit that fetches nothing does so because of the loader's own cache (the Cache API), not
// Chromium's HTTP cache.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

export interface Mount {
  /** URL path prefix, with a trailing '/'. */
  prefix: string;
  dir: string;
}

export interface PathCount {
  requests: number;
  /** Body bytes written to the socket. */
  bytes: number;
  /** Requests answered 206 (a byte range). */
  ranges: number;
  /** Status codes seen, e.g. { "200": 1, "404": 2 }. */
  status: Record<string, number>;
}

export interface TrafficCount {
  requests: number;
  bytes: number;
  weightBytes: number;
  smallBytes: number;
  weightRequests: number;
  smallRequests: number;
  paths: Record<string, PathCount>;
}

const WEIGHT_EXT = new Set(['.safetensors', '.bin', '.ckpt', '.pt', '.pth', '.onnx', '.gguf']);
export const isWeightPath = (path: string) => WEIGHT_EXT.has(extname(path).toLowerCase());

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.txt': 'text/plain', '.wasm': 'application/wasm' };

/** bytes=a-b, bytes=a-, bytes=-n against `size`: [start, end] inclusive, 'bad' (416), or null (no usable Range: the whole file). */
function parseRange(header: string | undefined, size: number): [number, number] | 'bad' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // several ranges or another unit: send it all
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'bad';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) return 'bad';
  return [start, end];
}

export interface CountServer {
  /** http://127.0.0.1:PORT (no trailing slash). */
  origin: string;
  /** What was sent since the last reset(), for paths under `under` (all by default). */
  traffic(under?: string): TrafficCount;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountServer(mounts: Mount[], opts: { log?: (m: string) => void } = {}): Promise<CountServer> {
  let paths: Record<string, PathCount> = {};
  const count = (path: string) => (paths[path] ??= { requests: 0, bytes: 0, ranges: 0, status: {} });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const c = count(path);
    c.requests++;
    const send = (status: number, headers: Record<string, string | number> = {}) => {
      c.status[status] = (c.status[status] ?? 0) + 1;
      res.writeHead(status, {
        'access-control-allow-origin': '*',
        'access-control-allow-headers': 'Range',
        'access-control-expose-headers': 'Content-Length, Content-Range, Accept-Ranges',
        'cache-control': 'no-store',
        ...headers,
      });
    };
    if (req.method === 'OPTIONS') {
      send(204, { 'access-control-allow-methods': 'GET, HEAD, OPTIONS' });
      res.end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, { allow: 'GET, HEAD, OPTIONS' });
      res.end();
      return;
    }
    const mount = [...mounts].sort((a, b) => b.prefix.length - a.prefix.length).find((m) => path.startsWith(m.prefix));
    const file = mount ? normalize(join(mount.dir, path.slice(mount.prefix.length) || 'index.html')) : null;
    const root = mount ? normalize(mount.dir) : '';
    if (!mount || !file || !(file === root || file.startsWith(root.endsWith(sep) ? root : root + sep)) || !existsSync(file) || !statSync(file).isFile()) {
      send(404, { 'content-length': 0 });
      res.end();
      return;
    }
    const size = statSync(file).size;
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    const range = parseRange(req.headers.range, size);
    if (range === 'bad') {
      send(416, { 'content-range': `bytes */${size}`, 'content-length': 0 });
      res.end();
      return;
    }
    const [start, end] = range ?? [0, size - 1];
    const length = size === 0 ? 0 : end - start + 1;
    if (range) {
      c.ranges++;
      send(206, { 'content-type': type, 'content-length': length, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
    } else {
      send(200, { 'content-type': type, 'content-length': length, 'accept-ranges': 'bytes' });
    }
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    const stream = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
    // Counted as written to the socket; a client that stops reading stops the count (backpressure).
    stream.on('data', (chunk) => {
      c.bytes += chunk.length;
      if (!res.write(chunk)) {
        stream.pause();
        res.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => res.end());
    stream.on('error', (e) => {
      opts.log?.(`${path}: ${e.message}`);
      res.destroy(e);
    });
    res.on('close', () => stream.destroy());
  };

  const server = createServer(handle);
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    traffic(under = '') {
      const mine = Object.entries(paths).filter(([p]) => p.startsWith(under));
      const t: TrafficCount = { requests: 0, bytes: 0, weightBytes: 0, smallBytes: 0, weightRequests: 0, smallRequests: 0, paths: structuredClone(Object.fromEntries(mine)) };
      for (const [p, c] of mine) {
        t.requests += c.requests;
        t.bytes += c.bytes;
        if (isWeightPath(p)) {
          t.weightBytes += c.bytes;
          t.weightRequests += c.requests;
        } else {
          t.smallBytes += c.bytes;
          t.smallRequests += c.requests;
        }
      }
      return t;
    },
    reset() {
      paths = {};
    },
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
