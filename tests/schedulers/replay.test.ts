// The acceptance check: diffusers' DDPM and DDIM traces replayed through the fused GPU step.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { replaySchedulerTrace } from '../../src/conformance/scheduler_case.ts';
import { runtime } from '../helpers/gpu.ts';

const TOL = 1e-5;

describe('scheduler traces (GPU step vs diffusers)', () => {
  for (const name of ['sched-ddpm', 'sched-ddim']) {
    it(name, async () => {
      const rt = await runtime();
      const dir = fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
      const r = await replaySchedulerTrace(rt, dir);
      expect(r.timesteps, 'timesteps').toEqual(r.expectedTimesteps);
      expect(r.timestepsMatch).toBe(true);
      expect(r.steps.length).toBe(r.expectedTimesteps.length);
      const lines = r.steps.map((s) => `  step ${s.i} t=${s.t}: max|err| ${s.maxAbsErr.toExponential(2)} / max|ref| ${s.maxAbsRef.toFixed(3)} = ${(s.maxAbsErr / s.maxAbsRef).toExponential(2)}`);
      console.log(`${name}\n${lines.join('\n')}`);
      for (const s of r.steps) {
        expect(s.maxAbsErr / s.maxAbsRef, `step ${s.i} (t = ${s.t})`).toBeLessThanOrEqual(TOL);
        expect(s.modelInputMaxAbsErr / s.modelInputMaxAbsRef, `step ${s.i} model input`).toBeLessThanOrEqual(TOL);
      }
    });
  }
});
