// Float64 references for the scheduler step: the generic row step the kernel implements, and the
// DDPM / DDIM steps written out the way diffusers writes them (to check the rows' algebra).
import { StepRow } from '../../src/kernels/scheduler_step.ts';

export interface RowStepResult {
  prev: Float64Array;
  /** prev·nextScale, twice over with cfg. */
  next: Float64Array;
  /** The (guided) model output. */
  eps: Float64Array;
  /** The x0 the step used (what a PREV_X0 history receives). */
  x0: Float64Array;
}

export function schedulerStepRef(
  x: ArrayLike<number>,
  modelOut: ArrayLike<number>,
  row: ArrayLike<number>,
  opts: {
    noise?: ArrayLike<number>;
    cfg?: boolean;
    prevX0?: ArrayLike<number>;
    epsHist?: ArrayLike<number>;
    storedSample?: ArrayLike<number>;
    /** Dynamic thresholding over `items` batch items, in place of the row's clip. */
    threshold?: ThresholdRef | null;
    items?: number;
  } = {},
): RowStepResult & { epsHist?: Float64Array; storedSample?: Float64Array } {
  const n = x.length;
  const r = (k: keyof typeof StepRow) => row[StepRow[k]]!;
  const prev = new Float64Array(n);
  const next = new Float64Array(opts.cfg ? 2 * n : n);
  const eps = new Float64Array(n);
  const x0s = new Float64Array(n);
  const plms = opts.epsHist !== undefined;
  const hist = plms ? Float64Array.from(opts.epsHist!) : undefined;
  const stored = plms ? Float64Array.from(opts.storedSample!) : undefined;
  const xvs = new Float64Array(n);
  const mos = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const e = opts.cfg ? modelOut[n + i]! + r('guidance') * (modelOut[i]! - modelOut[n + i]!) : modelOut[i]!;
    // PLMS rows: the sample may be the stored one, the model output a mix of e and the ring.
    let xv = x[i]!;
    let mo = e;
    if (plms) {
      if (r('fromStored') !== 0) xv = opts.storedSample![i]!;
      mo = r('wEps') * e + [0, 1, 2].reduce((acc, k) => acc + (row[StepRow.wHist0 + k]! !== 0 ? row[StepRow.wHist0 + k]! * opts.epsHist![k * n + i]! : 0), 0);
      if (r('storeSample') !== 0) stored![i] = x[i]!;
      if (r('histWrite') >= 0) hist![r('histWrite') * n + i] = e;
    }
    x0s[i] = r('a0') * xv + r('a1') * mo;
    if (r('x0Inf') !== 0) x0s[i] = Math.sign(x0s[i]!) * 3e38;
    xvs[i] = xv;
    mos[i] = mo;
    eps[i] = e;
  }
  const clipped = clipOrThreshold(x0s, opts.items ?? 1, r('clip') !== 0 ? r('clipRange') : null, opts.threshold);
  for (let i = 0; i < n; i++) {
    const [xv, mo, x0] = [xvs[i]!, mos[i]!, clipped[i]!];
    const epsHat = (r('b0') * xv + r('b1') * mo + r('b2') * x0) / r('bDiv');
    let p = r('c0') * x0 + r('c1') * epsHat + r('c2') * xv;
    if (r('c3') !== 0) p += r('c3') * opts.noise![i]!;
    if (opts.prevX0 && r('d') !== 0) p += r('d') * opts.prevX0[i]!;
    prev[i] = p;
    x0s[i] = x0;
    next[i] = p * r('nextScale');
    if (opts.cfg) next[n + i] = next[i]!;
  }
  return { prev, next, eps, x0: x0s, epsHist: hist, storedSample: stored };
}

type Prediction = 'epsilon' | 'v_prediction' | 'sample';

function predictX0(pred: Prediction, x: number, out: number, a: number): number {
  if (pred === 'epsilon') return (x - Math.sqrt(1 - a) * out) / Math.sqrt(a);
  if (pred === 'v_prediction') return Math.sqrt(a) * x - Math.sqrt(1 - a) * out;
  return out;
}

const clamp = (v: number, r: number | null) => (r === null ? v : Math.min(Math.max(v, -r), r));

export interface ThresholdRef {
  ratio: number;
  maxValue: number;
}

/** torch.quantile(v, q) with linear interpolation: the rank q·(n − 1) in float32, then torch.lerp. */
export function torchQuantileRef(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  const rank = Math.fround(Math.fround(q) * (sorted.length - 1));
  const lo = Math.floor(rank);
  const w = rank - lo;
  const a = sorted[lo]!;
  const b = sorted[Math.ceil(rank)]!;
  return w < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w);
}

/**
 * diffusers' _threshold_sample on x0 of `items` batch items: s = quantile(|x0|, ratio) per item,
 * clamped to [1, maxValue]; x0 → clamp(x0, −s, s) / s. Without a threshold, the plain clip.
 */
export function clipOrThreshold(x0: Float64Array, items: number, clip: number | null, threshold?: ThresholdRef | null): Float64Array {
  if (!threshold) return x0.map((v) => clamp(v, clip));
  const per = x0.length / items;
  const out = new Float64Array(x0.length);
  for (let b = 0; b < items; b++) {
    const item = x0.subarray(b * per, (b + 1) * per);
    const s = Math.min(Math.max(torchQuantileRef(item.map(Math.abs), threshold.ratio), 1), threshold.maxValue);
    for (let i = 0; i < per; i++) out[b * per + i] = clamp(item[i]!, s) / s;
  }
  return out;
}

/** DDPMScheduler.step in float64: a = ᾱ_t, ap = ᾱ_prev (1 past the start), noise only when t > 0. */
export function ddpmStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  noise: ArrayLike<number> | null,
  p: { a: number; ap: number; pred: Prediction; clip: number | null; variance: 'fixed_small' | 'fixed_small_log' | 'fixed_large'; threshold?: ThresholdRef | null; items?: number },
): Float64Array {
  const { a, ap } = p;
  const curAlpha = a / ap;
  const curBeta = 1 - curAlpha;
  const cx0 = (Math.sqrt(ap) * curBeta) / (1 - a);
  const cx = (Math.sqrt(curAlpha) * (1 - ap)) / (1 - a);
  const variance = Math.max(((1 - ap) / (1 - a)) * curBeta, 1e-20);
  const std = p.variance === 'fixed_large' ? Math.sqrt(curBeta) : Math.sqrt(variance);
  const x0 = clipOrThreshold(Float64Array.from(x, (xv, i) => predictX0(p.pred, xv, out[i]!, a)), p.items ?? 1, p.clip, p.threshold);
  return Float64Array.from(x, (xv, i) => cx0 * x0[i]! + cx * xv + (noise ? std * noise[i]! : 0));
}

/** DDIMScheduler.step in float64. */
export function ddimStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  noise: ArrayLike<number> | null,
  p: { a: number; ap: number; pred: Prediction; clip: number | null; eta: number; useClipped: boolean; threshold?: ThresholdRef | null; items?: number },
): Float64Array {
  const { a, ap } = p;
  const variance = ((1 - ap) / (1 - a)) * (1 - a / ap);
  const std = p.eta * Math.sqrt(variance);
  const rawX0 = Float64Array.from(x, (xv, i) => predictX0(p.pred, xv, out[i]!, a));
  const x0s = clipOrThreshold(rawX0, p.items ?? 1, p.clip, p.threshold);
  return Float64Array.from(x, (xv, i) => {
    const o = out[i]!;
    const x0 = x0s[i]!;
    let eps = p.pred === 'epsilon' ? o : p.pred === 'v_prediction' ? Math.sqrt(a) * o + Math.sqrt(1 - a) * xv : (xv - Math.sqrt(a) * rawX0[i]!) / Math.sqrt(1 - a);
    if (p.useClipped) eps = (xv - Math.sqrt(a) * x0) / Math.sqrt(1 - a);
    const dir = Math.sqrt(1 - ap - std * std) * eps;
    return Math.sqrt(ap) * x0 + dir + (p.eta > 0 && noise ? std * noise[i]! : 0);
  });
}

// The Euler and LCM references below are written from diffusers v0.25.1's formulas
// (scheduling_euler_discrete.py, scheduling_lcm.py) in float64; they are not generated by diffusers.

/** EulerDiscreteScheduler.step with s_churn = 0: prev = x + (σ_next − σ)·(x − x0)/σ. */
export function eulerStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  p: { sigma: number; sigmaNext: number; pred: Prediction },
): Float64Array {
  const { sigma: s, sigmaNext } = p;
  return Float64Array.from(x, (xv, i) => {
    const o = out[i]!;
    const x0 = p.pred === 'epsilon' ? xv - s * o : p.pred === 'v_prediction' ? o * (-s / Math.sqrt(s * s + 1)) + xv / (s * s + 1) : o;
    const derivative = (xv - x0) / s;
    return xv + derivative * (sigmaNext - s);
  });
}

/** LCMScheduler.step: a = ᾱ_t, ap = ᾱ of the next timestep, or null on the last step (prev = denoised). */
export function lcmStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  noise: ArrayLike<number> | null,
  p: { t: number; a: number; ap: number | null; pred: Prediction; clip: number | null; timestepScaling: number; threshold?: ThresholdRef | null; items?: number },
): Float64Array {
  const st = p.t * p.timestepScaling;
  const cSkip = 0.25 / (st * st + 0.25);
  const cOut = st / Math.sqrt(st * st + 0.25);
  const x0s = clipOrThreshold(Float64Array.from(x, (xv, i) => predictX0(p.pred, xv, out[i]!, p.a)), p.items ?? 1, p.clip, p.threshold);
  return Float64Array.from(x, (xv, i) => {
    const x0 = x0s[i]!;
    const denoised = cOut * x0 + cSkip * xv;
    if (p.ap === null) return denoised;
    return Math.sqrt(p.ap) * denoised + Math.sqrt(1 - p.ap) * noise![i]!;
  });
}

/**
 * LCMScheduler.set_timesteps(steps) (strength 1) written as the exact rational index floor(i·N/steps),
 * where diffusers floors the float64 product i·(N/steps); they agree for N ≤ 1000.
 */
export function lcmTimestepsRef(T: number, original: number, steps: number): number[] {
  const k = Math.floor(T / original);
  const origin = Array.from({ length: original }, (_, j) => (j + 1) * k - 1).reverse();
  return Array.from({ length: steps }, (_, i) => origin[Math.floor((i * original) / steps)]!);
}

/** DPMSolverMultistepScheduler (dpmsolver++) point σ → (α_t, σ_t, λ) and its first/second-order updates. */
function dpmPoint(s: number): { alpha: number; sigma: number; lambda: number } {
  const alpha = 1 / Math.sqrt(s * s + 1);
  const sigma = s * alpha;
  return { alpha, sigma, lambda: Math.log(alpha) - Math.log(sigma) };
}

/**
 * One DPM-Solver++ step (algorithm_type dpmsolver++) from sigmas[i] to sigmas[i + 1]; with prevX0
 * (the previous step's x0) and sPrev (= sigmas[i − 1]) it is the multistep second-order update.
 * Returns the new sample and this step's x0 (the next step's history).
 */
export function dpmSolverPPStepRef(
  x: ArrayLike<number>,
  out: ArrayLike<number>,
  p: { s: number; sNext: number; pred: Prediction; solverType: 'midpoint' | 'heun'; prev: { x0: ArrayLike<number>; s: number } | null },
): { prev: Float64Array; x0: Float64Array } {
  const s0 = dpmPoint(p.s);
  const t = dpmPoint(p.sNext);
  const x0 = Float64Array.from(x, (xv, i) => {
    const o = out[i]!;
    return p.pred === 'epsilon' ? (xv - s0.sigma * o) / s0.alpha : p.pred === 'v_prediction' ? s0.alpha * xv - s0.sigma * o : o;
  });
  const h = t.lambda - s0.lambda;
  const prev = Float64Array.from(x, (xv, i) => {
    const base = (t.sigma / s0.sigma) * xv - t.alpha * (Math.exp(-h) - 1) * x0[i]!;
    if (!p.prev) return base;
    const r0 = (s0.lambda - dpmPoint(p.prev.s).lambda) / h;
    const d1 = (1 / r0) * (x0[i]! - p.prev.x0[i]!);
    if (p.solverType === 'midpoint') return base - 0.5 * (t.alpha * (Math.exp(-h) - 1)) * d1;
    return base + t.alpha * ((Math.exp(-h) - 1) / h + 1) * d1;
  });
  return { prev, x0 };
}

/**
 * PNDMScheduler.step_plms (skip_prk_steps) in float64, with its running state: the list of stored
 * model outputs (appended on every call but the second, trimmed to the last 4), the call counter,
 * and the sample the first call keeps for the second. Written from diffusers v0.25.1's
 * scheduling_pndm.py; not generated by diffusers. `ac` is the ᾱ table, `final` the ᾱ past t = 0.
 */
export class PlmsRef {
  private ets: Float64Array[] = [];
  private counter = 0;
  private curSample: Float64Array | null = null;

  constructor(private readonly p: { ac: ArrayLike<number>; final: number; ratio: number; pred: 'epsilon' | 'v_prediction' }) {}

  step(out: ArrayLike<number>, timestep: number, sample: ArrayLike<number>): Float64Array {
    let t = timestep;
    let prevT = t - this.p.ratio;
    const o = Float64Array.from(out);
    if (this.counter !== 1) {
      this.ets = [...this.ets.slice(-3), o];
    } else {
      // The second call redoes the first step: same start, the mean of both outputs.
      prevT = t;
      t = t + this.p.ratio;
    }
    let s: Float64Array = Float64Array.from(sample);
    let mo: Float64Array;
    const e = this.ets;
    const at = (k: number) => e[e.length - k]!;
    if (e.length === 1 && this.counter === 0) {
      mo = o;
      this.curSample = s;
    } else if (e.length === 1 && this.counter === 1) {
      mo = o.map((v, i) => (v + at(1)[i]!) / 2);
      s = this.curSample!;
      this.curSample = null;
    } else if (e.length === 2) {
      mo = o.map((_, i) => (3 * at(1)[i]! - at(2)[i]!) / 2);
    } else if (e.length === 3) {
      mo = o.map((_, i) => (23 * at(1)[i]! - 16 * at(2)[i]! + 5 * at(3)[i]!) / 12);
    } else {
      mo = o.map((_, i) => (55 * at(1)[i]! - 59 * at(2)[i]! + 37 * at(3)[i]! - 9 * at(4)[i]!) / 24);
    }
    this.counter++;
    // PNDM paper formula (9): x_prev = sqrt(ap/a)·x − (ap − a)·eps / (a·sqrt(1 − ap) + sqrt(a(1 − a)ap)).
    const a = this.p.ac[t]!;
    const ap = prevT >= 0 ? this.p.ac[prevT]! : this.p.final;
    const denom = a * Math.sqrt(1 - ap) + Math.sqrt(a * (1 - a) * ap);
    return s.map((sv, i) => {
      const eps = this.p.pred === 'v_prediction' ? Math.sqrt(a) * mo[i]! + Math.sqrt(1 - a) * sv : mo[i]!;
      return Math.sqrt(ap / a) * sv - ((ap - a) * eps) / denom;
    });
  }
}
