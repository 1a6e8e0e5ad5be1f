// Scheduler traces made by diffusers' own scheduler code (v0.25.1, torch 1.13: the shared fixtures'
// versions) for configs the shared fixtures do not cover: Karras σ (Euler, DPM-Solver++ 2M midpoint
// and Heun), dynamic thresholding (DDPM, DDIM with eta, LCM, DPM-Solver), zero terminal SNR with
// trailing spacing (DDIM, Euler ancestral at σ ≈ 4096), PNDM as SD 1.x ships it. Written by
// scripts/reference/make_scheduler_traces.py, which first regenerates the shared sched-* fixtures
// bit for bit. Same replay and tolerance as the shared cases: 1e-5 of max|ref| per step.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { replaySchedulerTrace } from '../../src/conformance/scheduler_case.ts';
import { runtime } from '../helpers/gpu.ts';

const root = join(import.meta.dirname, '../fixtures/variants');
const cases = readdirSync(root).filter((d) => d.startsWith('sched-')).sort();

describe('scheduler traces from diffusers code (tests/fixtures/variants/sched-*)', () => {
  it('has the traces', () => expect(cases.length).toBeGreaterThanOrEqual(11));
  for (const name of cases) {
    it(name, async () => {
      const rt = await runtime();
      const r = await replaySchedulerTrace(rt, join(root, name));
      expect(r.timestepsMatch, `timesteps ${r.timesteps.join(', ')} vs ${r.expectedTimesteps.join(', ')}`).toBe(true);
      const worst = Math.max(...r.steps.map((s) => s.maxAbsErr / s.maxAbsRef));
      const worstIn = Math.max(...r.steps.map((s) => s.modelInputMaxAbsErr / s.modelInputMaxAbsRef));
      console.log(`${name}: ${r.steps.length} steps, worst step ${worst.toExponential(2)}, model input ${worstIn.toExponential(2)}`);
      for (const s of r.steps) {
        expect(s.maxAbsErr / s.maxAbsRef, `${name} step ${s.i} (t = ${s.t})`).toBeLessThanOrEqual(1e-5);
        expect(s.modelInputMaxAbsErr / s.modelInputMaxAbsRef, `${name} step ${s.i} model input`).toBeLessThanOrEqual(1e-5);
      }
    });
  }
});
