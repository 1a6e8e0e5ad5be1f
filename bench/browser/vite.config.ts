// Builds the bench page (bench/browser/index.html + main.ts) into bench/browser/dist; the shaders
// are bundled into src/kernels/shaders.gen.ts first, as for the library build.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
// @ts-expect-error plain ESM script without types
import { bundleShaders } from '../../scripts/bundle-shaders.mjs';

const here = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  logLevel: 'warn',
  plugins: [{ name: 'fresco-wgsl-bundle', buildStart: () => bundleShaders() }],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The Node-only paths (dawn, fs) are behind dynamic imports the page never reaches.
    rollupOptions: { external: ['webgpu', /^node:/] },
  },
});
