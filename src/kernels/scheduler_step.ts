// The fused scheduler step (shaders/scheduler_step.wgsl): guidance combine, predicted x0, clip,
// and the update to the previous sample in one pass, with every per-step number read from a
// row buffer so one compiled kernel serves each step of a denoising loop (DDPM, DDIM, Euler,
// LCM, with an x0 history buffer DPM-Solver++ 2M, and with an eps history PNDM's PLMS).
import type { Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { fold1d } from '../graph/graph.ts';
import type { Threshold } from '../schedulers/schedule.ts';
import { ShapeError } from './gemm.ts';

/** Slots of a step row (f32); the shader's constants use the same numbers. */
export const StepRow = {
  /** The timestep, for the U-Net's time embedding. */
  t: 0,
  /** The step index, the counter of the GPU noise generator. */
  index: 1,
  guidance: 2,
  /** x0 = a0·x + a1·eps */
  a0: 3,
  a1: 4,
  /** 1 to clamp x0 to ±clipRange, 0 not to. */
  clip: 5,
  clipRange: 6,
  /** epsHat = (b0·x + b1·eps + b2·x0) / bDiv */
  b0: 7,
  b1: 8,
  b2: 9,
  /** prev = c0·x0 + c1·epsHat + c2·x + c3·noise */
  c0: 10,
  c1: 11,
  c2: 12,
  c3: 13,
  /** Model-input scale of the next step, applied to nextInput. */
  nextScale: 14,
  /** prev += d·x0_prev, the previous step's x0 (read only with a prevX0 binding). */
  d: 15,
  /**
   * epsHat is divided by this (1 when unused). The σ-space schedulers form (x − x0)/σ as diffusers
   * does, difference first: at σ in the thousands (zero terminal SNR) the step cancels x against
   * σ_to-sized terms, and x/σ − x0/σ rounds differently enough to move it by 2e-5 of its scale.
   */
  bDiv: 16,
  /**
   * 1: x0 is ±∞ with the sign of a0·x + a1·eps (an epsilon step at ᾱ_t = 0, zero terminal SNR,
   * where diffusers divides by sqrt(ᾱ_t) = 0); the clip that follows bounds it (schedulers set it
   * only with clip_sample: a threshold over infinities is NaN in diffusers, and is refused).
   */
  x0Inf: 17,
  // The slots below exist only in PLMS rows (PLMS_ROW_LENGTH) and are read only with an eps history.
  /** The model output the update uses is wEps·eps + Σ_k wHist_k·hist[k] (ring slots, not ages). */
  wEps: 18,
  wHist0: 19,
  wHist1: 20,
  wHist2: 21,
  /** Ring slot (0..2) that receives this step's eps, or -1 to store nothing. */
  histWrite: 22,
  /** 1: the step starts from the stored sample instead of x. */
  fromStored: 23,
  /** 1: store x (before the update) as the stored sample. */
  storeSample: 24,
} as const;

export const STEP_ROW_LENGTH = 18;
/** Row length for schedulers that use SchedulerStepArgs.epsHistory. */
export const PLMS_ROW_LENGTH = 25;
/** Past model outputs an eps history keeps (PLMS's 4th-order formula needs three). */
export const EPS_HISTORY_SLOTS = 3;

export interface StepCoefficients {
  a0: number;
  a1: number;
  /** Clamp range for x0, or null for no clamp. */
  clip: number | null;
  b0: number;
  b1: number;
  b2: number;
  c0: number;
  c1: number;
  c2: number;
  c3: number;
  nextScale: number;
  /** Coefficient of the previous step's x0 (multistep solvers); absent means 0. */
  d?: number;
  /** Divisor of epsHat; absent means 1. */
  bDiv?: number;
  /** x0 = ±∞·sign(a0·x + a1·eps) before the clip (StepRow.x0Inf). */
  x0Inf?: boolean;
}

/** How a PLMS row combines the eps history and picks its sample (the PLMS_ROW_LENGTH slots). */
export interface EpsHistoryCoefficients {
  wEps: number;
  /** Weights of ring slots 0..2. */
  wHist: [number, number, number];
  /** Ring slot for this step's eps, or -1. */
  histWrite: number;
  fromStored: boolean;
  storeSample: boolean;
}

export function packStepRow(t: number, index: number, k: StepCoefficients): Float32Array {
  const row = new Float32Array(STEP_ROW_LENGTH);
  row[StepRow.t] = t;
  row[StepRow.index] = index;
  // Guidance 1 makes the CFG combine return e_c; the pipeline overwrites it.
  row[StepRow.guidance] = 1;
  row[StepRow.a0] = k.a0;
  row[StepRow.a1] = k.a1;
  row[StepRow.clip] = k.clip === null ? 0 : 1;
  row[StepRow.clipRange] = k.clip ?? 0;
  row[StepRow.b0] = k.b0;
  row[StepRow.b1] = k.b1;
  row[StepRow.b2] = k.b2;
  row[StepRow.c0] = k.c0;
  row[StepRow.c1] = k.c1;
  row[StepRow.c2] = k.c2;
  row[StepRow.c3] = k.c3;
  row[StepRow.nextScale] = k.nextScale;
  row[StepRow.d] = k.d ?? 0;
  row[StepRow.bDiv] = k.bDiv ?? 1;
  row[StepRow.x0Inf] = k.x0Inf ? 1 : 0;
  return row;
}

export function packPlmsRow(t: number, index: number, k: StepCoefficients, h: EpsHistoryCoefficients): Float32Array {
  const row = new Float32Array(PLMS_ROW_LENGTH);
  row.set(packStepRow(t, index, k));
  row[StepRow.wEps] = h.wEps;
  row.set(h.wHist, StepRow.wHist0);
  row[StepRow.histWrite] = h.histWrite;
  row[StepRow.fromStored] = h.fromStored ? 1 : 0;
  row[StepRow.storeSample] = h.storeSample ? 1 : 0;
  return row;
}

export interface SchedulerStepArgs {
  /** [B, ...] current sample, updated in place to the previous sample. */
  x: Tensor;
  /** [B, ...], or with cfg [2B, ...] laid out [cond batch..., uncond batch...]. */
  modelOut: Tensor;
  /** Storage buffer holding the current step row (STEP_ROW_LENGTH f32). */
  row: GPUBuffer;
  /** [B, ...] Gaussian noise; read only on steps whose row has c3 ≠ 0. */
  noise?: Tensor;
  /** eps = e_u + g·(e_c − e_u) with g from the row. */
  cfg?: boolean;
  /** Receives prev·nextScale: [2B, ...] (both halves) with cfg, else [B, ...]. */
  nextInput?: Tensor;
  /** Receives the (guided) model output the step used, [B, ...]. */
  epsOut?: Tensor;
  /**
   * [B, ...] history for multistep solvers: holds the previous step's x0 on entry (read only when
   * the row's d ≠ 0) and this step's x0 on exit.
   */
  prevX0?: Tensor;
  /**
   * PLMS state kept across the loop: `eps` [3B, ...] is a ring of past (guided) model outputs, slot
   * k at offset k·numel(x); `sample` [B, ...] the sample a step may store and a later one restart
   * from. Needs rows of PLMS_ROW_LENGTH; read only where the row's weights and flags say so.
   */
  epsHistory?: { eps: Tensor; sample: Tensor };
  /**
   * Dynamic thresholding of x0 in place of the row's clip (Scheduler.threshold): the step then runs
   * as three dispatches (x0, its per-item quantile in shaders/threshold.wgsl, the step itself).
   */
  threshold?: Threshold | null;
}

/**
 * torch.quantile's rank for `ratio` over n values, as it computes it: q·(n − 1) in float32, the
 * order statistics at its floor and ceil, and the fraction between them.
 */
export function quantileRank(ratio: number, n: number): { lo: number; hi: number; frac: number } {
  const rank = Math.fround(Math.fround(ratio) * (n - 1));
  const lo = Math.floor(rank);
  return { lo, hi: Math.ceil(rank), frac: Math.fround(rank - lo) };
}

const WG = 256;

export function schedulerStep(g: Graph, label: string, args: SchedulerStepArgs): void {
  const { x, modelOut, row, noise, nextInput, epsOut, prevX0, epsHistory, threshold } = args;
  const cfg = !!args.cfg;
  const n = numel(x.shape);
  const tail = shapeStr(x.shape.slice(1));
  const B = x.shape[0] ?? 1;
  const sameTail = (t: Tensor) => shapeStr(t.shape.slice(1)) === tail;
  const batched = (t: Tensor, mult: number, what: string, want: string) => {
    if (t.shape.length !== x.shape.length || t.shape[0] !== B * mult || !sameTail(t)) {
      throw new ShapeError(`${label}: ${what} ${shapeStr(t.shape)} should be ${want} for sample ${shapeStr(x.shape)}`);
    }
  };
  if (x.shape.length === 0) throw new ShapeError(`${label}: sample has no batch dimension`);
  batched(modelOut, cfg ? 2 : 1, 'model output', cfg ? '[2B, ...] (cond then uncond)' : 'the sample shape');
  if (noise) batched(noise, 1, 'noise', 'the sample shape');
  if (epsOut) batched(epsOut, 1, 'eps output', 'the sample shape');
  if (nextInput) batched(nextInput, cfg ? 2 : 1, 'next input', cfg ? '[2B, ...]' : 'the sample shape');
  if (prevX0) batched(prevX0, 1, 'x0 history', 'the sample shape');
  if (epsHistory) {
    batched(epsHistory.eps, EPS_HISTORY_SLOTS, 'eps history', `[${EPS_HISTORY_SLOTS}B, ...] (${EPS_HISTORY_SLOTS} ring slots)`);
    batched(epsHistory.sample, 1, 'stored sample', 'the sample shape');
  }
  const rowFloats = epsHistory ? PLMS_ROW_LENGTH : STEP_ROW_LENGTH;
  if (row.size < rowFloats * 4) throw new ShapeError(`${label}: row buffer has ${row.size} bytes, a ${epsHistory ? 'PLMS ' : ''}step row needs ${rowFloats * 4}`);
  // A buffer written by this dispatch cannot also be bound under another name.
  const buffers: [string, GPUBuffer][] = [['sample', x.buffer], ['model output', modelOut.buffer], ['row', row]];
  if (noise) buffers.push(['noise', noise.buffer]);
  if (nextInput) buffers.push(['next input', nextInput.buffer]);
  if (epsOut) buffers.push(['eps output', epsOut.buffer]);
  if (prevX0) buffers.push(['x0 history', prevX0.buffer]);
  if (epsHistory) buffers.push(['eps history', epsHistory.eps.buffer], ['stored sample', epsHistory.sample.buffer]);
  for (let i = 0; i < buffers.length; i++)
    for (let j = i + 1; j < buffers.length; j++)
      if (buffers[i]![1] === buffers[j]![1]) throw new ShapeError(`${label}: ${buffers[i]![0]} and ${buffers[j]![0]} share one buffer`);

  const bind: Record<string, Tensor | GPUBuffer> = { row, x, modelOut };
  if (noise) bind.noise = noise;
  if (nextInput) bind.nextInput = nextInput;
  if (epsOut) bind.epsOut = epsOut;
  if (prevX0) bind.prevX0 = prevX0;
  if (epsHistory) {
    bind.epsHist = epsHistory.eps;
    bind.storedSample = epsHistory.sample;
  }
  const per = n / B;
  if (threshold) {
    if (epsHistory) throw new ShapeError(`${label}: dynamic thresholding with an eps history (PLMS) is not supported`);
    const x0 = g.alloc(x.shape, `${label}-x0`, 'f32');
    g.dispatch(`${label}-x0`, { shader: 'scheduler_step', params: { CFG: cfg, X0_ONLY: true } }, { row, x, modelOut, x0Out: x0 }, { n, per }, fold1d(Math.ceil(n / WG)));
    const s = g.alloc([B], `${label}-threshold`, 'f32');
    const { lo, hi, frac } = quantileRank(threshold.ratio, per);
    g.dispatch(`${label}-threshold`, { shader: 'threshold' }, { x0, s }, { n: per, batch: B, lo, hi, frac, smax: threshold.maxValue }, fold1d(B));
    bind.thresh = s;
  }
  g.dispatch(
    label,
    {
      shader: 'scheduler_step',
      params: { CFG: cfg, NOISE: !!noise, NEXT: !!nextInput, EPS_OUT: !!epsOut, PREV_X0: !!prevX0, EPS_HISTORY: !!epsHistory, THRESHOLD: !!threshold },
    },
    bind,
    { n, per },
    fold1d(Math.ceil(n / WG)),
  );
}
