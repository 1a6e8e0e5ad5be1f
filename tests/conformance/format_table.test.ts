// The conformance table shows the tolerance each verdict used: a guided pipeline's f16 noise
// prediction is bounded by tol · (1 + 2g), so its f16 tol cell names that bound too.
import { describe, expect, it } from 'vitest';
import { formatQuantTable, formatTable, type CaseResult } from '../../src/conformance/runner.ts';
import { formatTol } from '../../src/conformance/measure.ts';

const row = (f16: CaseResult['f16']): CaseResult => ({ name: 'c', kind: 'pipeline', cls: 'pipeline', maxAbsErr: 1e-5, maxAbsRef: 1, ratio: 1e-5, tol: 1e-3, status: 'pass', ms: 1000, note: '', f16 });

describe('conformance table', () => {
  it("shows a guided pipeline's effective f16 bound beside the tolerance", () => {
    const cells = (t: string) => t.split('\n')[2]!.split('|').map((c) => c.trim());
    const guided = cells(formatTable([row({ maxAbsErr: 0.04, ratio: 2.3e-2, tol: 1e-2, epsTol: 1e-2 * 7, status: 'pass', note: '' })]));
    expect(guided.slice(7, 10)).toEqual(['2.30e-2', '1e-2 (guided eps 7e-2)', 'PASS']);
    const model = cells(formatTable([row({ maxAbsErr: 1e-3, ratio: 1e-3, tol: 1e-2, status: 'pass', note: '' })]));
    expect(model[8]).toBe('1e-2');
    expect(cells(formatTable([row(undefined)])).slice(7, 10)).toEqual(['-', '-', '-']);
  });

  it('formats tolerances with at most two significant digits', () => {
    expect([1e-3, 1e-2, 0.07, 0.01 * 13, 0.01 * 16].map(formatTol)).toEqual(['1e-3', '1e-2', '7e-2', '1.3e-1', '1.6e-1']);
  });

  it('reports quantized runs without a tolerance: the ratio, its multiple of the f32 bound, REPORTED', () => {
    const q: CaseResult = { name: 'u', kind: 'model', cls: 'UNet2DModel', maxAbsErr: 0.04, maxAbsRef: 2, ratio: 2e-2, tol: Infinity, status: 'reported', weights: 'q8', weightBytes: 1234, ms: 100, note: '' };
    const lines = formatQuantTable([q]).split('\n');
    expect(lines[0]).toContain('ratio / f32 tol');
    const cells = lines[2]!.split('|').map((c) => c.trim());
    expect(cells.slice(1, 11)).toEqual(['u', 'UNet2DModel', 'q8', '4.00e-2', '2.00e+0', '2.00e-2', '20.0x', '1234', 'REPORTED', '0.1s']);
  });
});
