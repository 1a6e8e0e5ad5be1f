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
  // The library: dist/fresco.js (browser, worker and Node; the WGSL is inside, as strings from
  // shaders.gen.ts) and dist/node.js (PNG files). `webgpu` (dawn.node) and node: builtins are only
  // reached through dynamic imports on Node paths, so they stay external and browsers never load them.
  build: {
    lib: { entry: { fresco: 'src/index.ts', node: 'src/node.ts' }, formats: ['es'] },
    rollupOptions: { external: ['webgpu', /^node:/, 'pngjs'], output: { chunkFileNames: 'fresco-[hash].js' } },
    target: 'es2022',
  },
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/setup/global.ts'],
    setupFiles: ['tests/setup/settle_gpu.ts'],
    // A clean machine compiles every kernel cold (lavapipe: minutes for a file that takes seconds
    // warm), so the per-test limit only catches real hangs; .ci/run bounds the whole run.
    testTimeout: 20 * 60_000,
    hookTimeout: 20 * 60_000,
    // Worker threads, not forks: dawn.node crashes inside vitest's forked workers.
    fileParallelism: true,
    pool: 'threads',
    // Files share their worker's modules, so one GPU device (tests/helpers/gpu.ts, the library's
    // shared runtime) and its compiled pipelines serve every file: a cold shader cache compiles
    // each kernel variant once per worker instead of once per file.
    isolate: false,
    // Both cores (vitest's default leaves one free): a CPU driver compiles a pipeline on the thread
    // that creates it, so a second worker keeps the other core busy (cold run 23 -> 22 min).
    maxWorkers: 2,
  },
});
