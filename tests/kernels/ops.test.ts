import { describe, expect, it } from 'vitest';
import { isCpuAdapter } from '../../src/gpu/runtime.ts';
import { compare } from '../helpers/compare.ts';
import { hasF16, runtime, withStorage } from '../helpers/gpu.ts';
import { opTable } from './ops.table.ts';

describe('kernels vs CPU reference', () => {
  for (const c of opTable) {
    it(`${c.op}: ${c.name}`, async (ctx) => {
      const rt = await runtime();
      if ((c.dtype === 'f16' || c.needsF16) && !hasF16(rt)) {
        console.warn(`skipped ${c.op} ${c.name}: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
        ctx.skip();
      }
      if (c.gpuOnly && isCpuAdapter(rt.gpu.adapterName)) {
        console.warn(`skipped ${c.op} ${c.name} on a CPU adapter: ${c.gpuOnly}`);
        ctx.skip();
      }
      const { got, ref } = await withStorage(c.dtype ?? 'f32', () => c.run(rt));
      const cmp = compare(got, ref, c.atol, c.rtol);
      if (!cmp.ok) console.error(`${c.op} ${c.name}\n${cmp.report}`);
      expect(cmp.ok, cmp.report).toBe(true);
    });
  }
});
