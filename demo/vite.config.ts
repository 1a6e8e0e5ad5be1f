// The demo app: `npm run demo` serves it with the models at /models/<name>/, loaded by URL as a
// deployment would; `npm run demo:build` writes a static site to dist-demo/ without the models,
// and `npm run demo:serve` (vite preview) serves that build with the models from this checkout,
// as the dev server does. A static host needs each model folder copied to models/<name>/ next to
// index.html (see DEMO_MODELS), or served from there.
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';
// @ts-expect-error plain ESM script without types
import { bundleShaders } from '../scripts/bundle-shaders.mjs';
import { modelsMiddleware } from './models_server.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

function serveModels(): Plugin {
  return {
    name: 'fresco-demo-models',
    buildStart() {
      bundleShaders();
    },
    configureServer(server) {
      server.middlewares.use(modelsMiddleware(repoRoot));
    },
    configurePreviewServer(server) {
      server.middlewares.use(modelsMiddleware(repoRoot));
    },
  };
}

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [serveModels()],
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  // The library reaches dawn.node and node: builtins only on Node paths, through dynamic imports.
  build: { outDir: '../dist-demo', emptyOutDir: true, target: 'es2022', rollupOptions: { external: ['webgpu', /^node:/] } },
  worker: { format: 'es', rollupOptions: { external: ['webgpu', /^node:/] } },
});
