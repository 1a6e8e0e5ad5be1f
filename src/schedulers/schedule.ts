// The noise schedule shared by DDPM and DDIM: betas, alphas_cumprod and the inference timesteps,
// computed the way diffusers v0.25.1 computes them on PyTorch's CPU backend. The step coefficients
// divide by sqrt(alphas_cumprod[t]) near t = T, where a one-ulp difference in a table value shows up
// in the sample, so the tables copy torch's float32 rounding (Math.fround after every operation
// torch does in float32) rather than computing the schedule in float64.

import { ConfigReader as BaseConfigReader } from '../io/config_reader.ts';
import { SchedulerConfigError } from '../errors.ts';

const f = Math.fround;

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

export interface ScheduleConfig {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  trainedBetas: number[] | null;
  rescaleBetasZeroSnr: boolean;
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
}

/**
 * torch.linspace(start, end, n, dtype=float32) on the CPU as PyTorch 1.13's AVX2 build computes
 * it: `start + step*idx` below the halfway point and `end - step*(n-1-idx)` above it, with the
 * step in float32; the contiguous part is written in blocks of 8 lanes (two blocks per loop turn)
 * whose lanes are `base + k*step` from one base per block, and the compiler fuses the multiply-add
 * (one rounding). A plain per-element formula differs from this in the last bit of some betas, and
 * that changes the DDIM steps near t = T; this variant replays both diffusers traces bit for bit.
 */
export function torchLinspaceF32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (n === 0) return out;
  const s = f(start);
  const e = f(end);
  if (n === 1) {
    out[0] = s;
    return out;
  }
  const step = f(f(e - s) / (n - 1));
  const half = Math.floor(n / 2);
  // step*k is exact in float64 (24-bit mantissa times an index), so fround gives the fused result.
  const at = (idx: number) => (idx < half ? f(s + step * idx) : f(e - step * (n - idx - 1)));
  const LANES = 8;
  const vectorEnd = Math.floor(n / (2 * LANES)) * 2 * LANES;
  for (let base = 0; base < vectorEnd; base += LANES) {
    const b = at(base);
    for (let k = 0; k < LANES; k++) out[base + k] = f(b + step * k);
  }
  for (let idx = vectorEnd; idx < n; idx++) out[idx] = at(idx);
  return out;
}

/** torch.cumprod on a float32 CPU tensor: the running product is kept in double, each output rounded. */
export function torchCumprodF32(x: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  let acc = 1;
  for (let i = 0; i < x.length; i++) {
    acc *= x[i]!;
    out[i] = acc;
  }
  return out;
}

/** diffusers' betas_for_alpha_bar (cosine): computed in Python floats, stored as float32. */
function cosineBetas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return out;
}

/**
 * Zero terminal SNR (arXiv 2305.08891, Algorithm 1), in float32 as diffusers does it on torch
 * tensors: shift sqrt(alphas_cumprod) so the last is 0, rescale so the first is unchanged.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const cum = torchCumprodF32(betas.map((b) => f(1 - b)));
  const sq = cum.map((a) => f(Math.sqrt(a)));
  const first = sq[0]!;
  const last = sq[n - 1]!;
  const scale = f(first / f(first - last));
  const bar = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = f(f(sq[i]! - last) * scale);
    bar[i] = f(v * v);
  }
  const out = new Float32Array(n);
  out[0] = f(1 - bar[0]!);
  for (let i = 1; i < n; i++) out[i] = f(1 - f(bar[i]! / bar[i - 1]!));
  return out;
}

export function makeBetas(cfg: ScheduleConfig): Float32Array {
  const n = cfg.numTrainTimesteps;
  let betas: Float32Array;
  if (cfg.trainedBetas) {
    if (cfg.trainedBetas.length !== n) {
      throw new SchedulerConfigError(`trained_betas has ${cfg.trainedBetas.length} values but num_train_timesteps is ${n}`);
    }
    betas = Float32Array.from(cfg.trainedBetas);
  } else if (cfg.betaSchedule === 'linear') {
    betas = torchLinspaceF32(cfg.betaStart, cfg.betaEnd, n);
  } else if (cfg.betaSchedule === 'scaled_linear') {
    betas = torchLinspaceF32(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), n).map((b) => f(b * b));
  } else if (cfg.betaSchedule === 'squaredcos_cap_v2') {
    betas = cosineBetas(n);
  } else {
    // GeoDiff's sigmoid schedule (DDPM only). torch's vectorised sigmoid is not reproduced bit for
    // bit; float64 then one rounding is within an ulp or two of it.
    const x = torchLinspaceF32(-6, 6, n);
    betas = x.map((v) => f((1 / (1 + Math.exp(-v))) * (cfg.betaEnd - cfg.betaStart) + cfg.betaStart));
  }
  return cfg.rescaleBetasZeroSnr ? rescaleZeroTerminalSnr(betas) : betas;
}

export function alphasCumprod(betas: Float32Array): Float32Array {
  return torchCumprodF32(betas.map((b) => f(1 - b)));
}

/** numpy's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.arange(start, stop, step) for float arguments, including numpy's length and fill rules. */
function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  if (len === 0) return [];
  // numpy writes start and start+step, then fills the rest with start + i*(second - first).
  const delta = start + step - start;
  return Array.from({ length: len }, (_, i) => (i === 0 ? start : i === 1 ? start + step : start + i * delta));
}

/** np.linspace(start, stop, n) with endpoint: i*step + start, the last value set to stop exactly. */
export function npLinspace(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (stop - start) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? stop : i * step + start));
}

/** set_timesteps(steps): the descending integer timesteps of the inference loop. */
export function inferenceTimesteps(cfg: ScheduleConfig, steps: number): number[] {
  const T = cfg.numTrainTimesteps;
  if (!Number.isInteger(steps) || steps < 1) throw new SchedulerConfigError(`the number of inference steps must be a positive integer, got ${steps}`);
  if (steps > T) {
    throw new SchedulerConfigError(`${steps} inference steps is more than num_train_timesteps (${T}): the model was only trained on ${T} timesteps`);
  }
  let ts: number[];
  if (cfg.timestepSpacing === 'linspace') {
    ts = npLinspace(0, T - 1, steps).map(roundHalfEven).reverse();
  } else if (cfg.timestepSpacing === 'leading') {
    const ratio = Math.floor(T / steps);
    ts = Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + cfg.stepsOffset);
  } else {
    ts = npArange(T, 0, -(T / steps)).map((v) => roundHalfEven(v) - 1);
  }
  for (const t of ts) {
    // diffusers would index alphas_cumprod out of bounds here (leading spacing with a large steps_offset).
    if (t < 0 || t >= T) throw new SchedulerConfigError(`timestep ${t} is outside [0, ${T - 1}] (timestep_spacing '${cfg.timestepSpacing}', steps_offset ${cfg.stepsOffset}, ${steps} steps)`);
  }
  return ts;
}

/** The shared config reader (src/io/config_reader.ts), raising SchedulerConfigError. */
export class ConfigReader extends BaseConfigReader {
  constructor(config: Record<string, unknown>, who: string) {
    super(config, who, (m) => new SchedulerConfigError(m));
  }
}

/** items[i] for a step index i of a loop of items.length steps; a RangeError naming `who` otherwise. */
export function stepAt<T>(items: readonly T[], i: number, who: string): T {
  if (!Number.isInteger(i) || i < 0 || i >= items.length) throw new RangeError(`${who} step ${i} is outside 0..${items.length - 1}`);
  return items[i]!;
}

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';

/** The settings DDPM and DDIM share, read with their (identical) diffusers defaults. */
export interface CommonConfig {
  schedule: ScheduleConfig;
  predictionType: PredictionType;
  /** Clamp range for predicted x0, or null. */
  clip: number | null;
  /** Dynamic thresholding of predicted x0, or null; when set, clip is null (diffusers ignores it then). */
  threshold: Threshold | null;
}

/**
 * diffusers' _threshold_sample (Imagen's dynamic thresholding): per batch item, s = the `ratio`
 * quantile of |x0| clamped to [1, maxValue], then x0 = clamp(x0, −s, s) / s.
 */
export interface Threshold {
  ratio: number;
  maxValue: number;
}

/** thresholding, dynamic_thresholding_ratio and sample_max_value (DDPM, DDIM, LCM, DPM-Solver). */
export function readThreshold(r: ConfigReader): Threshold | null {
  const ratio = r.num('dynamic_thresholding_ratio', 0.995);
  const maxValue = r.num('sample_max_value', 1);
  if (!r.bool('thresholding', false)) return null;
  if (!(ratio >= 0 && ratio <= 1)) throw new SchedulerConfigError(`${r.who}: dynamic_thresholding_ratio ${ratio} is not a quantile in [0, 1]`);
  if (!(maxValue > 0)) throw new SchedulerConfigError(`${r.who}: sample_max_value ${maxValue} must be > 0 (x0 is divided by the threshold)`);
  return { ratio, maxValue };
}

const BETA_SCHEDULES: readonly BetaSchedule[] = ['linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid'];

/** Where schedulers' defaults differ: the default spacing and betas, and which fields they read. */
export interface ScheduleDefaults {
  spacing: TimestepSpacing;
  betaStart?: number;
  betaEnd?: number;
  betaSchedule?: BetaSchedule;
  betaSchedules?: readonly BetaSchedule[];
  /** false: timestep_spacing and steps_offset do not apply (LCM picks its own timesteps). */
  readSpacing?: boolean;
  /** false: the scheduler has no rescale_betas_zero_snr and checks the key itself. */
  readZeroSnr?: boolean;
}

/** The training schedule fields every scheduler reads, with its own diffusers defaults. */
export function readScheduleConfig(r: ConfigReader, d: ScheduleDefaults): ScheduleConfig {
  const readSpacing = d.readSpacing ?? true;
  const schedule: ScheduleConfig = {
    numTrainTimesteps: r.int('num_train_timesteps', 1000, 1),
    betaStart: r.num('beta_start', d.betaStart ?? 0.0001),
    betaEnd: r.num('beta_end', d.betaEnd ?? 0.02),
    betaSchedule: d.betaSchedule ?? 'linear',
    trainedBetas: r.numbers('trained_betas'),
    rescaleBetasZeroSnr: (d.readZeroSnr ?? true) ? r.bool('rescale_betas_zero_snr', false) : false,
    timestepSpacing: readSpacing ? r.choice<TimestepSpacing>('timestep_spacing', d.spacing, ['leading', 'trailing', 'linspace']) : d.spacing,
    stepsOffset: readSpacing ? r.int('steps_offset', 0) : 0,
  };
  // trained_betas wins over beta_schedule, as in diffusers, so the name is not checked then.
  if (!schedule.trainedBetas) {
    schedule.betaSchedule = r.choice<BetaSchedule>('beta_schedule', d.betaSchedule ?? 'linear', d.betaSchedules ?? ['linear', 'scaled_linear', 'squaredcos_cap_v2'], BETA_SCHEDULES);
  }
  return schedule;
}

export function readCommonConfig(r: ConfigReader, betaSchedules: readonly BetaSchedule[]): CommonConfig {
  const threshold = readThreshold(r);
  const schedule = readScheduleConfig(r, { spacing: 'leading', betaSchedules });
  const predictionType = r.choice<PredictionType>('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample']);
  const clipSample = r.bool('clip_sample', true);
  const range = r.num('clip_sample_range', 1);
  return { schedule, predictionType, clip: clipSample && !threshold ? range : null, threshold };
}
