// FRESCO_COMPILE_LOG=FILE: each test file appends the kernels compiled while it ran (tab-separated:
// milliseconds, test file, kernel key), so a cold run (MESA_SHADER_CACHE_DISABLE=true) shows where
// a clean machine's compile time goes: `node scripts/compile-log-summary.mjs FILE`.
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';
import { allRuntimes, type CompiledKernel } from '../../src/gpu/runtime.ts';

// Module state survives from file to file in a worker (vitest's isolate: false).
const logged = new WeakSet<CompiledKernel>();

export function logCompiles(file: string, testFile: string | undefined): void {
  const lines: string[] = [];
  const where = testFile ? relative(process.cwd(), testFile) : '?';
  for (const rt of allRuntimes()) {
    for (const k of rt.compiledKernels()) {
      if (logged.has(k)) continue;
      logged.add(k);
      lines.push(`${k.compileMs.toFixed(1)}\t${where}\t${k.key}`);
    }
  }
  if (lines.length) appendFileSync(file, lines.join('\n') + '\n');
}
