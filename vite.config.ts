import type { Plugin } from 'vite';
import { defineConfig } from 'vitest/config';
// @ts-expect-error plain ESM script without types
import { bundleShaders } from './scripts/bundle-shaders.mjs';

// Keeps src/kernels/shaders.gen.ts in step with shaders/*.wgsl for builds, the dev server and tests.
function wgslBundle(): Plugin {
  return {
    name: 'fresco-wgsl-bundle',
    buildStart() {
      bundleShaders();
    },
    configureServer(server) {
      server.watcher.add('shaders');
      server.watcher.on('change', (f) => f.endsWith('.wgsl') && bundleShaders());
    },
  };
}

export default defineConfig({
  plugins: [wgslBundle()],
  build: {
    lib: { entry: 'src/index.ts', formats: ['es'], fileName: 'fresco' },
    rollupOptions: { external: ['webgpu', /^node:/, 'pngjs'] },
    target: 'es2022',
  },
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/setup/global.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Worker threads, not forks: dawn.node crashes inside vitest's forked workers.
    fileParallelism: true,
    pool: 'threads',
  },
});
