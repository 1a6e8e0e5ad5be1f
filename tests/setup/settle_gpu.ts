import { afterAll } from 'vitest';
import { settleAllRuntimes } from '../../src/gpu/runtime.ts';

// Vitest terminates a file's worker thread when the file ends; dawn.node aborts the process if a
// GPU promise of that thread is still unresolved then (seen in CI: popErrorScope after a test that
// compiled kernels and threw before checking them). Each file waits for its GPU work first.
afterAll(async () => {
  await settleAllRuntimes();
});
