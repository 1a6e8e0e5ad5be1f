// Serves model folders under /models/<name>/ the way a static host would (exact files, 404 for
// anything else, Content-Length for progress), for the demo's dev and preview servers and the
// tests. The demo loads its models by URL through this, as a real deployment would.
import { createReadStream, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve, sep } from 'node:path';

/** The models the demo offers: URL name → folder, relative to the repository root. */
export const DEMO_MODELS: Record<string, string> = {
  'fashion-ldm': 'weights/fashion-ldm',
  'sd-tiny': 'tests/fixtures/sd-tiny',
  'sdxl-tiny': 'tests/fixtures/sdxl-tiny',
  // A ControlNet for sd-tiny (the page's "sd-tiny + ControlNet" entry loads both).
  'controlnet-tiny': 'tests/fixtures/controlnet-tiny',
};

const TYPES: Record<string, string> = { json: 'application/json', txt: 'text/plain; charset=utf-8', md: 'text/markdown; charset=utf-8' };

/** Connect-style middleware; calls next() for paths outside /models/. */
export function modelsMiddleware(repoRoot: string, models = DEMO_MODELS) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/models\/([^/]+)\/(.+)$/.exec(decodeURIComponent(url.pathname));
    if (!m) return next();
    const folder = models[m[1]!];
    const notFound = () => {
      res.statusCode = 404;
      res.end('not found');
    };
    if (!folder) return notFound();
    const root = resolve(repoRoot, folder);
    const file = resolve(root, m[2]!);
    // No path may leave the model folder.
    if (!file.startsWith(root + sep)) return notFound();
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) return notFound();
      size = st.size;
    } catch {
      return notFound();
    }
    res.setHeader('Content-Type', TYPES[file.split('.').pop()!] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(size));
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  };
}
