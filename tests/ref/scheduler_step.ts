// Float64 references for the scheduler step: the generic row step the kernel implements, and the
// DDPM / DDIM steps written out the way diffusers writes them (to check the rows' algebra).
import { StepRow } from '../../src/kernels/scheduler_step.ts';

export interface RowStepResult {
  prev: Float64Array;
  /** prev·nextScale, twice over with cfg. */
  next: Float64Array;
  /** The (guided) model output. */
  eps: Float64Array;
}

export function schedulerStepRef(
  x: ArrayLike<number>,
  modelOut: ArrayLike<number>,
  row: ArrayLike<number>,
  opts: { noise?: ArrayLike<number>; cfg?: boolean } = {},
): RowStepResult {
  const n = x.length;
  const r = (k: keyof typeof StepRow) => row[StepRow[k]]!;
  const prev = new Float64Array(n);
  const next = new Float64Array(opts.cfg ? 2 * n : n);
  const eps = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const xv = x[i]!;
    const e = opts.cfg ? modelOut[n + i]! + r('guidance') * (modelOut[i]! - modelOut[n + i]!) : modelOut[i]!;
    let x0 = r('a0') * xv + r('a1') * e;
    if (r('clip') !== 0) x0 = Math.min(Math.max(x0, -r('clipRange')), r('clipRange'));
    const epsHat = r('b0') * xv + r('b1') * e + r('b2') * x0;
    let p = r('c0') * x0 + r('c1') * epsHat + r('c2') * xv;
    if (r('c3') !== 0) p += r('c3') * opts.noise![i]!;
    prev[i] = p;
    next[i] = p * r('nextScale');
    if (opts.cfg) next[n + i] = next[i]!;
    eps[i] = e;
  }
  return { prev, next, eps };
}

type Prediction = 'epsilon' | 'v_prediction' | 'sample';

function predictX0(pred: Prediction, x: number, out: number, a: number): number {
  if (pred === 'epsilon') return (x - Math.sqrt(1 - a) * out) / Math.sqrt(a);
  if (pred === 'v_prediction') return Math.sqrt(a) * x - Math.sqrt(1 - a) * out;
  return out;
}

const clamp = (v: number, r: number | null) => (r === null ? v : Math.min(Math.max(v, -r), r));

/** DDPMScheduler.step in float64: a = ᾱ_t, ap = ᾱ_prev (1 past the start), noise only when t > 0. */
export function ddpmStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  noise: ArrayLike<number> | null,
  p: { a: number; ap: number; pred: Prediction; clip: number | null; variance: 'fixed_small' | 'fixed_small_log' | 'fixed_large' },
): Float64Array {
  const { a, ap } = p;
  const curAlpha = a / ap;
  const curBeta = 1 - curAlpha;
  const cx0 = (Math.sqrt(ap) * curBeta) / (1 - a);
  const cx = (Math.sqrt(curAlpha) * (1 - ap)) / (1 - a);
  const variance = Math.max(((1 - ap) / (1 - a)) * curBeta, 1e-20);
  const std = p.variance === 'fixed_large' ? Math.sqrt(curBeta) : Math.sqrt(variance);
  return Float64Array.from(x, (xv, i) => {
    const x0 = clamp(predictX0(p.pred, xv, out[i]!, a), p.clip);
    return cx0 * x0 + cx * xv + (noise ? std * noise[i]! : 0);
  });
}

/** DDIMScheduler.step in float64. */
export function ddimStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  noise: ArrayLike<number> | null,
  p: { a: number; ap: number; pred: Prediction; clip: number | null; eta: number; useClipped: boolean },
): Float64Array {
  const { a, ap } = p;
  const variance = ((1 - ap) / (1 - a)) * (1 - a / ap);
  const std = p.eta * Math.sqrt(variance);
  return Float64Array.from(x, (xv, i) => {
    const o = out[i]!;
    let x0 = predictX0(p.pred, xv, o, a);
    let eps = p.pred === 'epsilon' ? o : p.pred === 'v_prediction' ? Math.sqrt(a) * o + Math.sqrt(1 - a) * xv : (xv - Math.sqrt(a) * x0) / Math.sqrt(1 - a);
    x0 = clamp(x0, p.clip);
    if (p.useClipped) eps = (xv - Math.sqrt(a) * x0) / Math.sqrt(1 - a);
    const dir = Math.sqrt(1 - ap - std * std) * eps;
    return Math.sqrt(ap) * x0 + dir + (p.eta > 0 && noise ? std * noise[i]! : 0);
  });
}
