// The op table's runner, shared by the two test files that split it: cold, one file's variants
// took 17 of a CI run's 24 minutes on one of its two workers while the other ran everything else
// in 14; in two files both workers compile op-table variants. Each op stays in one file, so no
// variant is compiled by both workers.
import { describe, expect, it } from 'vitest';
import { isCpuAdapter } from '../../src/gpu/runtime.ts';
import { compare } from '../helpers/compare.ts';
import { hasF16, runtime, withStorage } from '../helpers/gpu.ts';
import type { OpCase } from './cases.ts';
import { opTable } from './ops.table.ts';

/** The ops tests/kernels/ops_linear_attention.test.ts runs; tests/kernels/ops.test.ts runs the rest. */
export const LINEAR_ATTENTION_OPS: ReadonlySet<string> = new Set(['linear', 'attention']);

/** Every row of the op table that `select` takes, against its CPU reference. */
export function opTableSuite(title: string, select: (c: OpCase) => boolean): void {
  describe(title, () => {
    for (const c of opTable.filter(select)) {
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
}
