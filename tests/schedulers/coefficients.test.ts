// Host-side checks of the step rows: their algebra against diffusers' formulas in float64, and
// the float32 tables against the diffusers traces (an exact float32 emulation of torch's step must
// reproduce every traced sample bit for bit, which pins alphas_cumprod to the last bit).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseSafetensors, toFloat32, toInt64Numbers, type HostTensor } from '../../src/io/safetensors.ts';
import { DDIMScheduler } from '../../src/schedulers/ddim.ts';
import { DDPMScheduler } from '../../src/schedulers/ddpm.ts';
import { randn } from '../helpers/gpu.ts';
import { ddimStepRef, ddpmStepRef, schedulerStepRef } from '../ref/scheduler_step.ts';

const f = Math.fround;
const fixture = (name: string) => new URL(`../fixtures/${name}/`, import.meta.url);

function loadTrace(name: string) {
  const dir = fixture(name);
  const config = JSON.parse(readFileSync(new URL('scheduler_config.json', dir), 'utf8')) as Record<string, unknown>;
  const kase = JSON.parse(readFileSync(new URL('case.json', dir), 'utf8')) as { steps: number };
  const tensors = parseSafetensors(new Uint8Array(readFileSync(new URL('trace.safetensors', dir))), name);
  const get = (k: string): HostTensor => {
    const t = tensors.get(k);
    if (!t) throw new Error(`${name}: no tensor ${k}`);
    return t;
  };
  return { config, steps: kase.steps, get };
}

function maxRelErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let e = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    e = Math.max(e, Math.abs(got[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return e / m;
}

describe('step rows reproduce diffusers formulas (float64)', () => {
  // The rows hold float32 coefficients computed the way torch rounds them; where eps is re-derived
  // from x0 near t = 0, 1/sqrt(1 − ᾱ_t) ≈ 30 amplifies that rounding to a few 1e-6. A wrong
  // formula is off by O(1).
  const TOL = 2e-5;
  const n = 200;
  const x = randn(n, 1, 2);
  const out = randn(n, 2, 1.5);
  const noise = randn(n, 3);
  for (const pred of ['epsilon', 'v_prediction', 'sample'] as const) {
    for (const clip of [null, 1]) {
      for (const variance of ['fixed_small', 'fixed_small_log', 'fixed_large'] as const) {
        it(`DDPM ${pred} clip=${clip} ${variance}`, () => {
          const s = new DDPMScheduler({ prediction_type: pred, clip_sample: clip !== null, variance_type: variance }, 20);
          for (const i of [0, 7, 19]) {
            const t = s.timesteps[i]!;
            const prev = s.prevTimestep(i);
            const ap = prev >= 0 ? s.alphasCumprod[prev]! : 1;
            const ref = ddpmStepRef(x, out, s.drawsNoise(i) ? noise : null, { a: s.alphasCumprod[t]!, ap, pred, clip, variance });
            const got = schedulerStepRef(x, out, s.stepRow(i), { noise }).prev;
            expect(maxRelErr(got, ref)).toBeLessThan(TOL);
          }
        });
      }
      for (const [eta, useClipped] of [[0, false], [1, false], [0.5, true]] as const) {
        it(`DDIM ${pred} clip=${clip} eta=${eta} use_clipped_model_output=${useClipped}`, () => {
          const s = new DDIMScheduler({ prediction_type: pred, clip_sample: clip !== null, beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, set_alpha_to_one: false, steps_offset: 1 }, 20, { eta, useClippedModelOutput: useClipped });
          for (const i of [0, 7, 19]) {
            const prev = s.prevTimestep(i);
            const ap = prev >= 0 ? s.alphasCumprod[prev]! : s.finalAlphaCumprod;
            const ref = ddimStepRef(x, out, noise, { a: s.alphasCumprod[s.timesteps[i]!]!, ap, pred, clip, eta, useClipped });
            const got = schedulerStepRef(x, out, s.stepRow(i), { noise }).prev;
            expect(maxRelErr(got, ref)).toBeLessThan(TOL);
          }
        });
      }
    }
  }
});

describe('alphas_cumprod against the diffusers traces', () => {
  it('DDIM: a float32 emulation of torch with our tables matches every traced step exactly', () => {
    const { config, steps, get } = loadTrace('sched-ddim');
    const s = new DDIMScheduler(config, steps);
    expect(s.timesteps).toEqual(toInt64Numbers(get('timesteps')));
    const c = toFloat32(get('c'));
    let x = toFloat32(get('x_init'));
    for (let i = 0; i < steps; i++) {
      const t = s.timesteps[i]!;
      const prev = s.prevTimestep(i);
      const a = s.alphasCumprod[t]!;
      const ap = prev >= 0 ? s.alphasCumprod[prev]! : s.finalAlphaCumprod;
      const sa = f(Math.sqrt(a));
      const sb = f(Math.sqrt(f(1 - a)));
      const dir = f(Math.sqrt(f(f(1 - ap) - 0)));
      const sap = f(Math.sqrt(ap));
      const got = x.map((xv, j) => {
        const eps = f(f(xv * f(0.1)) + c[j]!);
        const x0 = f(f(xv - f(sb * eps)) / sa);
        return f(f(sap * x0) + f(dir * eps));
      });
      const want = toFloat32(get(`step${i}_out`));
      expect(Array.from(got), `step ${i} (t = ${t})`).toEqual(Array.from(want));
      x = want;
    }
  });

  it('DDPM: the same for the clipped, noisy DDPM trace', () => {
    const { config, steps, get } = loadTrace('sched-ddpm');
    const s = new DDPMScheduler(config, steps);
    const c = toFloat32(get('c'));
    let x = toFloat32(get('x_init'));
    for (let i = 0; i < steps; i++) {
      const t = s.timesteps[i]!;
      const prev = s.prevTimestep(i);
      const a = s.alphasCumprod[t]!;
      const ap = prev >= 0 ? s.alphasCumprod[prev]! : 1;
      const bt = f(1 - a);
      const k = s.coefficients(i);
      const noise = toFloat32(get(`step${i}_noise`));
      const got = x.map((xv, j) => {
        const eps = f(f(xv * f(0.1)) + c[j]!);
        const x0 = Math.min(Math.max(f(f(xv - f(f(Math.sqrt(bt)) * eps)) / f(Math.sqrt(a))), -1), 1);
        const mean = f(f(k.c0 * x0) + f(k.c2 * xv));
        return t > 0 ? f(mean + f(k.c3 * noise[j]!)) : mean;
      });
      expect(Array.from(got), `step ${i} (t = ${t}, prev ${ap})`).toEqual(Array.from(toFloat32(get(`step${i}_out`))));
      x = toFloat32(get(`step${i}_out`));
    }
  });

  it('DDIM: alphas_cumprod inferred from each traced step agree with the table', () => {
    // With eps = 0.1x + c, DDIM (eta 0, epsilon) gives prev = A·x + B·c where B = k and
    // A = r + 0.1k, r = sqrt(ᾱ_prev/ᾱ_t), k = sqrt(1 − ᾱ_prev) − r·sqrt(1 − ᾱ_t): fit A and B by
    // least squares, then solve for ᾱ_t (bisection) and ᾱ_prev = r²·ᾱ_t. The fit is poorly
    // conditioned at small ᾱ (1.5e-5 off at t = 901), so this is a loose, independent check; the
    // exact-emulation tests above are the tight one.
    const { config, steps, get } = loadTrace('sched-ddim');
    const s = new DDIMScheduler(config, steps);
    const c = toFloat32(get('c'));
    let x = toFloat32(get('x_init'));
    for (let i = 0; i < steps; i++) {
      const y = toFloat32(get(`step${i}_out`));
      let sxx = 0, sxc = 0, scc = 0, sxy = 0, scy = 0;
      for (let j = 0; j < y.length; j++) {
        sxx += x[j]! * x[j]!;
        sxc += x[j]! * c[j]!;
        scc += c[j]! * c[j]!;
        sxy += x[j]! * y[j]!;
        scy += c[j]! * y[j]!;
      }
      const det = sxx * scc - sxc * sxc;
      const A = (sxy * scc - scy * sxc) / det;
      const B = (scy * sxx - sxy * sxc) / det;
      const k = B;
      const r = A - 0.1 * B;
      // g(a) = sqrt(1 − r²a) − r·sqrt(1 − a) − k is monotone on (0, 1/r²) for the a we look for.
      const g = (a: number) => Math.sqrt(Math.max(0, 1 - r * r * a)) - r * Math.sqrt(1 - a) - k;
      let lo = 1e-6, hi = Math.min(1, 1 / (r * r)) - 1e-12;
      for (let it = 0; it < 200; it++) {
        const mid = (lo + hi) / 2;
        if (Math.sign(g(mid)) === Math.sign(g(lo))) lo = mid;
        else hi = mid;
      }
      const a = (lo + hi) / 2;
      const ap = r * r * a;
      const prev = s.prevTimestep(i);
      const tableA = s.alphasCumprod[s.timesteps[i]!]!;
      const tableAp = prev >= 0 ? s.alphasCumprod[prev]! : s.finalAlphaCumprod;
      expect(Math.abs(a - tableA) / tableA, `alphas_cumprod[${s.timesteps[i]}]`).toBeLessThan(1e-4);
      expect(Math.abs(ap - tableAp) / tableAp, `alphas_cumprod[${prev}]`).toBeLessThan(1e-4);
      x = y;
    }
  });
});
