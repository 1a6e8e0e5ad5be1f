// The shipped model against its diffusers reference run, and the pipeline's own behaviour.
import { describe, expect, it } from 'vitest';
import { runPipelineCase } from '../../src/conformance/pipeline_case.ts';
import { generateClassConditional } from '../../src/pipelines/class_conditional.ts';
import { loadLdmFolder, type LdmModel } from '../../src/pipelines/ldm_folder.ts';
import { runtime } from '../helpers/gpu.ts';
import { StepRow } from '../../src/kernels/scheduler_step.ts';
import { schedulerStepRef } from '../ref/scheduler_step.ts';
import { CancelledError } from '../../src/errors.ts';

let model: LdmModel | null = null;
async function fashion(): Promise<LdmModel> {
  model ??= await loadLdmFolder(await runtime(), 'weights/fashion-ldm');
  return model;
}

describe('fashion-ldm pipeline', () => {
  it('reproduces diffusers step by step (guided eps, latents, final latents, image within 1e-3·max|ref|)', async () => {
    const rt = await runtime();
    const r = await runPipelineCase(rt, 'tests/fixtures/pipeline-fashion-ldm');
    console.log(`pipeline-fashion-ldm: worst ratio ${r.ratio.toExponential(2)} (${r.detail})`);
    expect(r.note).toBeUndefined();
    expect(r.ratio).toBeLessThanOrEqual(1e-3);
    expect(r.pass).toBe(true);
    // 25 guided steps of batch 2: seconds on lavapipe, minutes on SwiftShader.
  });

  it('draws the same image from the same seed, and another from another seed', async () => {
    const rt = await runtime();
    const m = await fashion();
    const run = (seed: number) => generateClassConditional(rt, m, { classLabels: [1], nullClass: 10, guidanceScale: 3, steps: 3, seed });
    const [a, b, c] = [await run(5), await run(5), await run(6)];
    expect(a.imageShape).toEqual([1, 1, 32, 32]);
    expect(Array.from(a.image)).toEqual(Array.from(b.image));
    const diff = a.image.reduce((s, v, i) => Math.max(s, Math.abs(v - c.image[i]!)), 0);
    expect(diff).toBeGreaterThan(0.1);
  });

  it('is batch-invariant: each image of a batch of 3 equals the one generated alone (DDIM, given latents)', async () => {
    const rt = await runtime();
    const m = await fashion();
    const n = 4 * 8 * 8;
    const labels = [7, 3, 5];
    const L = Float32Array.from({ length: 3 * n }, (_, i) => Math.sin(i * 7.13) * 1.2);
    const opts = { nullClass: 10, guidanceScale: 3, steps: 3, scheduler: 'ddim' as const };
    const all = await generateClassConditional(rt, m, { ...opts, classLabels: labels, latents: L });
    for (let k = 0; k < 3; k++) {
      const one = await generateClassConditional(rt, m, { ...opts, classLabels: [labels[k]!], latents: L.slice(k * n, (k + 1) * n) });
      const diff = one.image.reduce((d, v, i) => Math.max(d, Math.abs(v - all.image[k * 1024 + i]!)), 0);
      expect(diff, `image ${k}`).toBeLessThan(1e-5);
    }
  });

  it('DDPM adds seeded GPU noise at every step but the last', async () => {
    const rt = await runtime();
    const m = await fashion();
    const latents = new Float32Array(2 * 4 * 8 * 8).fill(0.5);
    const run = (seed: number) =>
      generateClassConditional(rt, m, { classLabels: [0, 9], nullClass: 10, guidanceScale: 2, steps: 4, scheduler: 'ddpm', seed, latents });
    const [a, b, c] = [await run(1), await run(1), await run(2)];
    expect(a.scheduler.name).toBe('ddpm');
    expect([0, 1, 2, 3].map((i) => a.scheduler.drawsNoise(i))).toEqual([true, true, true, false]);
    expect(a.image.every(Number.isFinite)).toBe(true);
    // Same initial latents: only the per-step noise (seeded, stream 1) can tell the runs apart.
    expect(Array.from(a.latents)).toEqual(Array.from(b.latents));
    const diff = a.latents.reduce((s, v, i) => Math.max(s, Math.abs(v - c.latents[i]!)), 0);
    expect(diff).toBeGreaterThan(0.01);
  });

  // With 3 steps the cancel comes at the last step but one, when the last is already submitted.
  for (const steps of [10, 3]) {
    it(`stops within one step when cancelled, reporting no step after it (${steps} steps)`, async () => {
      const rt = await runtime();
      const ctl = new AbortController();
      const seen: number[] = [];
      const p = generateClassConditional(rt, await fashion(), {
        classLabels: [3], nullClass: 10, guidanceScale: 3, steps, seed: 1, signal: ctl.signal,
        onStep: (s) => {
          seen.push(s.index);
          if (s.index === 1) ctl.abort();
        },
      });
      await expect(p).rejects.toBeInstanceOf(CancelledError);
      expect(seen).toEqual([0, 1]);
    });
  }

  it("reads back each step's own latents while the next step is already queued (latentsEvery against the per-step trace)", async () => {
    const rt = await runtime();
    const m = await fashion();
    const base = { classLabels: [2, 5], nullClass: 10, guidanceScale: 3, steps: 5, seed: 4, scheduler: 'ddpm' as const };
    const traced: Float32Array[] = [];
    const t = await generateClassConditional(rt, m, { ...base, trace: (_i, _eps, x) => traced.push(x) });
    // Every second step read back (and the last): the steps between run ahead of their reads.
    const read = new Map<number, Float32Array>();
    const r = await generateClassConditional(rt, m, { ...base, latentsEvery: 2, onStep: (s) => s.latents && read.set(s.index, s.latents) });
    expect([...read.keys()]).toEqual([1, 3, 4]);
    for (const [i, x] of read) expect(Array.from(x), `step ${i}`).toEqual(Array.from(traced[i]!));
    expect(Array.from(r.latents)).toEqual(Array.from(t.latents));
    // Consecutive steps differ, so a read one step late could not pass.
    expect(Array.from(traced[3]!)).not.toEqual(Array.from(traced[4]!));
  });

  it('rejects class labels outside the model', async () => {
    const rt = await runtime();
    await expect(generateClassConditional(rt, await fashion(), { classLabels: [11], steps: 1 })).rejects.toThrow(/class label 11 is out of range/);
    await expect(generateClassConditional(rt, await fashion(), { classLabels: [], steps: 1 })).rejects.toThrow(/at least one class label/);
  });
});

describe('fashion-ldm with Euler ancestral', () => {
  it('starts from latents scaled by init_noise_sigma: one step lands on x0 = σ0·L − σ0·eps', async () => {
    const rt = await runtime();
    const L = Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i * 12.9898) * 0.8);
    let eps: Float32Array | null = null;
    // One step ends at σ = 0, where Euler ancestral draws no noise and returns its x0 estimate;
    // trailing spacing makes that one step start at t = 999, where σ0 is large.
    const m = await fashion();
    const trailing = { ...m, schedulerConfig: { ...m.schedulerConfig, timestep_spacing: 'trailing' } };
    const r = await generateClassConditional(rt, trailing, {
      classLabels: [7], nullClass: 10, guidanceScale: 3, steps: 1, scheduler: 'euler-a', latents: L,
      trace: (_i, e) => (eps = e),
    });
    const s0 = r.scheduler.initNoiseSigma;
    expect(r.scheduler.name).toBe('euler-a');
    expect(s0).toBeGreaterThan(10);
    const expected = L.map((l, i) => s0 * l - s0 * eps![i]!);
    const err = r.latents.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0);
    const ref = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(err / ref).toBeLessThan(1e-5);
  });
});

describe('fashion-ldm with DPM-Solver++ 2M', () => {
  it('carries the previous x0 across steps: every step equals the row reference fed the traced eps', async () => {
    const rt = await runtime();
    const m = await fashion();
    const L = Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.cos(i * 3.7) * 0.9);
    const traced: { eps: Float32Array; latents: Float32Array }[] = [];
    const r = await generateClassConditional(rt, m, {
      classLabels: [1], nullClass: 10, guidanceScale: 3, steps: 4, scheduler: 'dpm++2m', latents: L,
      trace: (_i, eps, latents) => traced.push({ eps, latents }),
    });
    expect(r.scheduler.usesX0History).toBe(true);
    let x: ArrayLike<number> = L;
    let prevX0: ArrayLike<number> | undefined;
    traced.forEach(({ eps, latents }, i) => {
      // The traced eps is already guided, so the reference step runs without CFG.
      const ref = schedulerStepRef(x, eps, r.scheduler.stepRow(i), { prevX0 });
      const err = latents.reduce((d, v, j) => Math.max(d, Math.abs(v - ref.prev[j]!)), 0);
      const scale = ref.prev.reduce((d, v) => Math.max(d, Math.abs(v)), 0);
      expect(err / scale, `step ${i}`).toBeLessThan(1e-5);
      x = latents;
      prevX0 = ref.x0;
    });
  });
});

describe('fashion-ldm with DPM-Solver++ 2M SDE', () => {
  it('adds σ_t·√(1 − e^{−2h}) of fresh GPU noise each step: the residual over the deterministic step is unit Gaussian', async () => {
    const rt = await runtime();
    const m = await fashion();
    const L = Float32Array.from({ length: 4 * 8 * 8 }, (_, i) => Math.sin(i * 1.3) * 0.9);
    const traced: { eps: Float32Array; latents: Float32Array }[] = [];
    const r = await generateClassConditional(rt, m, {
      classLabels: [4], nullClass: 10, guidanceScale: 3, steps: 4, scheduler: 'dpm++2m-sde', seed: 11, latents: L,
      trace: (_i, eps, latents) => traced.push({ eps, latents }),
    });
    expect(r.scheduler.name).toBe('dpm++2m-sde');
    let x: ArrayLike<number> = L;
    let prevX0: ArrayLike<number> | undefined;
    const draws: number[][] = [];
    traced.forEach(({ eps, latents }, i) => {
      expect(r.scheduler.drawsNoise(i)).toBe(true);
      const row = r.scheduler.stepRow(i);
      // The row reference with zero noise is the step's deterministic part; what the GPU added on
      // top, divided by the noise coefficient, must be the standard normal draw.
      const ref = schedulerStepRef(x, eps, row, { prevX0, noise: new Float32Array(latents.length) });
      const c3 = row[StepRow.c3]!;
      expect(c3).toBeGreaterThan(0);
      const z = Array.from(latents, (v, j) => (v - ref.prev[j]!) / c3);
      const mean = z.reduce((a, b) => a + b, 0) / z.length;
      const sd = Math.sqrt(z.reduce((a, b) => a + (b - mean) ** 2, 0) / z.length);
      // 256 draws: the mean's standard error is 1/16, the sd's about 1/23.
      expect(Math.abs(mean), `step ${i} mean`).toBeLessThan(0.25);
      expect(Math.abs(sd - 1), `step ${i} sd`).toBeLessThan(0.2);
      draws.push(z);
      x = latents;
      prevX0 = ref.x0;
    });
    // Fresh noise each step: the draws are uncorrelated (one reused draw would give about 1).
    for (let i = 1; i < draws.length; i++) {
      const corr = draws[i]!.reduce((a, v, j) => a + v * draws[i - 1]![j]!, 0) / draws[i]!.length;
      expect(Math.abs(corr), `steps ${i - 1} and ${i}`).toBeLessThan(0.25);
    }
  });
});
