import { describe, expect, it } from 'vitest';
import { compare } from '../helpers/compare.ts';
import { runtime } from '../helpers/gpu.ts';
import { opTable } from './ops.table.ts';

describe('kernels vs CPU reference', () => {
  for (const c of opTable) {
    it(`${c.op}: ${c.name}`, async () => {
      const rt = await runtime();
      const { got, ref } = await c.run(rt);
      const cmp = compare(got, ref, c.atol, c.rtol);
      if (!cmp.ok) console.error(`${c.op} ${c.name}\n${cmp.report}`);
      expect(cmp.ok, cmp.report).toBe(true);
    });
  }
});
