// Dynamic thresholding against torch itself: tests/fixtures/variants/threshold-cases.json holds
// diffusers' _threshold_sample evaluated by torch in float32 (scripts/reference/make_threshold_cases.py)
// on inputs that pin torch.quantile's rank and interpolation rules. The GPU path is the scheduler
// step's (x0 pass, quantile kernel, clamp and divide) with a row that makes x0 = x and prev = x0.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packStepRow, quantileRank, schedulerStep } from '../../src/kernels/scheduler_step.ts';
import { input, runGraph, runtime } from '../helpers/gpu.ts';
import { torchQuantileRef } from '../ref/scheduler_step.ts';

interface Case {
  name: string;
  shape: number[];
  ratio: number;
  sample_max_value: number;
  x: number[];
  s: number[];
  out: number[];
}

const file = join(import.meta.dirname, '../fixtures/variants/threshold-cases.json');
const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: Case[] };

describe('dynamic thresholding vs torch (float32)', () => {
  it('has the cases', () => expect(cases.length).toBeGreaterThanOrEqual(9));

  for (const c of cases) {
    it(c.name, async () => {
      const B = c.shape[0]!;
      const per = c.x.length / B;
      // The float64 reference's quantile agrees with torch's (before the clamp to [1, max]).
      for (let b = 0; b < B; b++) {
        const q = torchQuantileRef(c.x.slice(b * per, (b + 1) * per).map(Math.abs), c.ratio);
        expect(Math.min(Math.max(q, 1), c.sample_max_value)).toBeCloseTo(c.s[b]!, 5);
      }
      const rt = await runtime();
      const row = packStepRow(0, 0, { a0: 1, a1: 0, clip: null, b0: 0, b1: 0, b2: 0, c0: 1, c1: 0, c2: 0, c3: 0, nextScale: 1 });
      const rowBuf = rt.upload(row, 'row');
      const got = await runGraph(rt, (g) => {
        const x = input(rt, c.x, c.shape, 'x', 'f32');
        schedulerStep(g, 'step', { x, modelOut: input(rt, new Float32Array(c.x.length), c.shape, 'zeros', 'f32'), row: rowBuf, threshold: { ratio: c.ratio, maxValue: c.sample_max_value } });
        return x;
      });
      rt.destroyBuffer(rowBuf);
      let worst = 0;
      for (let i = 0; i < got.length; i++) {
        const err = Math.abs(got[i]! - c.out[i]!);
        worst = Math.max(worst, err);
        expect(err, `${c.name} [${i}]: ${got[i]} vs torch ${c.out[i]}`).toBeLessThanOrEqual(1e-6 + 1e-6 * Math.abs(c.out[i]!));
      }
      console.log(`${c.name}: ${B} × ${per}, s = ${c.s.map((v) => v.toPrecision(6)).join(', ')}; max|err| ${worst.toExponential(2)}`);
    });
  }

  it("computes torch's rank in float32", () => {
    expect(quantileRank(0.5, 9)).toEqual({ lo: 4, hi: 4, frac: 0 });
    expect(quantileRank(1, 50)).toEqual({ lo: 49, hi: 49, frac: 0 });
    expect(quantileRank(0, 1)).toEqual({ lo: 0, hi: 0, frac: 0 });
    // 0.8 · 36 in float32 is 28.8000011...: ranks 28 and 29, fraction from the float32 rank.
    const r = quantileRank(0.8, 37);
    expect([r.lo, r.hi]).toEqual([28, 29]);
    expect(r.frac).toBe(Math.fround(Math.fround(Math.fround(0.8) * 36) - 28));
    expect(r.frac).not.toBe(Math.fround(0.8 * 36 - 28));
  });
});
