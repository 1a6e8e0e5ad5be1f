// The fused scheduler step (shaders/scheduler_step.wgsl): guidance combine, predicted x0, clip,
// and the update to the previous sample in one pass, with every per-step number read from a
// row buffer so one compiled kernel serves each step of a denoising loop (DDPM, DDIM, Euler,
// LCM, with an x0 history buffer DPM-Solver++ 2M, and with an eps history PNDM's PLMS).
import type { Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { fold1d } from '../graph/graph.ts';
import type { Threshold } from '../schedulers/schedule.ts';
import { EPS_HISTORY_SLOTS, PLMS_ROW_LENGTH, STEP_ROW_LENGTH } from './step_row.ts';

// The row layout and its packing live in step_row.ts (GPU-free, shared with the shader); re-exported
// here for the code that already imports them with the step.
export { EPS_HISTORY_SLOTS, packPlmsRow, packStepRow, PLMS_ROW_LENGTH, STEP_ROW_LENGTH, StepRow } from './step_row.ts';
import { ShapeError } from '../errors.ts';
export type { EpsHistoryCoefficients, StepCoefficients } from './step_row.ts';

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
