// PNDM (Liu et al. 2022, arXiv 2202.09778) in its PLMS form, as diffusers' PNDMScheduler v0.25.1
// steps it with skip_prk_steps: steps + 1 U-Net calls over the timesteps d0, d1, d1, d2, ..., where
// call 0 steps d0 → d1 with its own output and keeps its sample; call 1 redoes d0 → d1 from that
// sample with the mean of both outputs; later calls use the Adams–Bashforth combination of the
// last 2–4 stored outputs (call 1's output is never stored). The update is formula (9):
//   prev = sqrt(ᾱ_prev/ᾱ_t)·s − (ᾱ_prev − ᾱ_t)·ε / (ᾱ_t·sqrt(1 − ᾱ_prev) + sqrt(ᾱ_t(1 − ᾱ_t)ᾱ_prev)).
// The combination runs on the GPU: each row says which ring slot of the eps history
// (SchedulerStepArgs.epsHistory) holds which stored output and with what weight. Scalars are
// rounded to float32 where torch computes on float32 0-dim tensors.
import { EPS_HISTORY_SLOTS, packPlmsRow, PLMS_ROW_LENGTH, type EpsHistoryCoefficients, type StepCoefficients } from '../kernels/step_row.ts';
import type { Scheduler } from './scheduler.ts';
import { alphasCumprod, ConfigReader, inferenceTimesteps, makeBetas, readScheduleConfig, stepAt, type ScheduleConfig } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

const f = Math.fround;

export interface PNDMConfig {
  schedule: ScheduleConfig;
  predictionType: 'epsilon' | 'v_prediction';
  setAlphaToOne: boolean;
}

/** Adams–Bashforth weights by age (newest first) for 1..4 stored outputs. */
const AB_WEIGHTS: readonly (readonly number[])[] = [[1], [3 / 2, -1 / 2], [23 / 12, -16 / 12, 5 / 12], [55 / 24, -59 / 24, 37 / 24, -9 / 24]];

function readConfig(r: ConfigReader, raw: Record<string, unknown>): PNDMConfig {
  const schedule = readScheduleConfig(r, { spacing: 'leading', readZeroSnr: false });
  // Options PNDMScheduler v0.25.1 does not have; diffusers would drop them silently, so refuse instead.
  if (r.bool('rescale_betas_zero_snr', false)) throw new SchedulerConfigError(`${r.who}: rescale_betas_zero_snr is not an option of this scheduler in diffusers v0.25.1`);
  if (r.bool('thresholding', false)) throw new SchedulerConfigError(`${r.who}: thresholding is not an option of this scheduler in diffusers v0.25.1`);
  // clip_sample (DDPM/DDIM) is ignored as diffusers ignores it: PNDM never clips.
  // Only the PLMS path exists here. A config of another class (reused as diffusers' from_config
  // would) carries no PNDM choice, so there the default is PLMS rather than diffusers' PRK.
  const own = raw._class_name === 'PNDMScheduler';
  if (!r.bool('skip_prk_steps', !own)) {
    throw new SchedulerConfigError(`${r.who}: skip_prk_steps false (the Runge–Kutta warm-up steps) is not supported; set skip_prk_steps to true for PLMS`);
  }
  return {
    schedule,
    predictionType: r.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction'], ['sample']),
    setAlphaToOne: r.bool('set_alpha_to_one', false),
  };
}

/** set_timesteps with skip_prk_steps: the inference timesteps d0 > d1 > ... with d1 repeated. */
export function plmsTimesteps(sc: ScheduleConfig, steps: number): number[] {
  const d = inferenceTimesteps(sc, steps);
  return d.length < 2 ? d : [d[0]!, d[1]!, ...d.slice(1)];
}

/** What step_plms does at call i: its (t, prev) pair, the sample it starts from, the stored outputs. */
export interface PlmsCall {
  t: number;
  prev: number;
  /** The call restarts from the sample call 0 kept (call 1). */
  fromStored: boolean;
  /** Call 0 keeps its sample for call 1. */
  storeSample: boolean;
  /** Ring slot this call's output is stored in, or -1 (call 1 stores nothing). */
  histWrite: number;
  /** Weight of this call's output, and of each ring slot. */
  wEps: number;
  wHist: [number, number, number];
}

export class PNDMScheduler implements Scheduler {
  readonly name = 'pndm' as const;
  readonly rowLength = PLMS_ROW_LENGTH;
  readonly initNoiseSigma = 1;
  /** The step needs SchedulerStepArgs.epsHistory, kept across the loop. */
  readonly usesEpsHistory = true;
  readonly config: PNDMConfig;
  /** steps + 1 U-Net timesteps (steps = 1 gives one). */
  readonly timesteps: number[];
  readonly alphasCumprod: Float32Array;
  readonly finalAlphaCumprod: number;
  /** Per call index; null before `start` (never run). */
  readonly calls: (PlmsCall | null)[];

  /**
   * start: the first call the loop makes (img2img runs timesteps[start:] on a fresh scheduler, as
   * diffusers' pipelines slice them): step_plms's counter and stored outputs start there, so the
   * warm-up of calls 0 and 1 happens at calls start and start + 1. Calls before it have no row.
   */
  constructor(cfg: Record<string, unknown>, steps: number, readonly start = 0) {
    const r = new ConfigReader(cfg, 'PNDMScheduler');
    this.config = readConfig(r, cfg);
    this.alphasCumprod = alphasCumprod(makeBetas(this.config.schedule));
    this.finalAlphaCumprod = this.config.setAlphaToOne ? 1 : this.alphasCumprod[0]!;
    this.timesteps = plmsTimesteps(this.config.schedule, steps);
    if (!(Number.isInteger(start) && start >= 0 && start < this.timesteps.length)) throw new SchedulerConfigError(`PNDMScheduler: first call ${start} is outside 0..${this.timesteps.length - 1}`);
    this.calls = this.plan(Math.floor(this.config.schedule.numTrainTimesteps / steps));
    for (let i = start; i < this.timesteps.length; i++) this.coefficients(i);
  }

  /**
   * Replays step_plms's bookkeeping over the whole run: the stored outputs are appended on every
   * call but call 1 and trimmed to the newest 4; the newest is this call's own (not yet on the GPU),
   * the 3 before it sit in the ring at (append number mod 3).
   */
  private plan(ratio: number): (PlmsCall | null)[] {
    const T = this.config.schedule.numTrainTimesteps;
    const stored: number[] = []; // append numbers of the stored outputs, oldest first
    let appends = 0;
    return this.timesteps.map((ts, i) => {
      // step_plms's counter: calls before the first one run do not exist for it.
      const c = i - this.start;
      if (c < 0) return null;
      let t = ts;
      let prev = ts - ratio;
      const wHist: [number, number, number] = [0, 0, 0];
      let wEps: number;
      let histWrite = -1;
      if (c === 1) {
        prev = ts;
        t = ts + ratio;
        // The mean of this output and the one stored by call 0 (append 0, slot 0).
        wEps = 0.5;
        wHist[stored[stored.length - 1]! % EPS_HISTORY_SLOTS] += 0.5;
      } else {
        const past = stored.slice(-3);
        const w = AB_WEIGHTS[past.length]!;
        wEps = w[0]!;
        past.reverse().forEach((m, age) => (wHist[m % EPS_HISTORY_SLOTS] += w[age + 1]!));
        histWrite = appends % EPS_HISTORY_SLOTS;
        stored.push(appends++);
      }
      // diffusers would index alphas_cumprod out of range here (e.g. a large steps_offset).
      if (t >= T) throw new SchedulerConfigError(`PNDMScheduler: call ${i} steps from timestep ${t}, outside [0, ${T - 1}] (timestep_spacing '${this.config.schedule.timestepSpacing}', ${this.timesteps.length - 1} steps)`);
      return { t, prev, fromStored: c === 1, storeSample: c === 0, histWrite, wEps, wHist };
    });
  }

  private check(i: number): PlmsCall {
    const call = stepAt(this.calls, i, 'PNDMScheduler');
    if (!call) throw new RangeError(`PNDMScheduler: call ${i} comes before the first call run (${this.start})`);
    return call;
  }

  modelInputScale(i: number): number {
    this.check(i);
    return 1;
  }

  drawsNoise(i: number): boolean {
    this.check(i);
    return false;
  }

  /** _get_prev_sample as row coefficients: prev = c2·s + c1·(b0·s + b1·mo), mo the combined output. */
  coefficients(i: number): StepCoefficients {
    const { t, prev } = this.check(i);
    const a = this.alphasCumprod[t]!;
    const ap = prev >= 0 ? this.alphasCumprod[prev]! : this.finalAlphaCumprod;
    const b = f(1 - a);
    const bp = f(1 - ap);
    const sampleCoeff = f(Math.sqrt(f(ap / a)));
    const denom = f(f(a * f(Math.sqrt(bp))) + f(Math.sqrt(f(f(a * b) * ap))));
    const k = f(ap - a) / denom;
    // v_prediction turns the combined v into ε with the same sample: ε = sqrt(ᾱ)·v + sqrt(1 − ᾱ)·s.
    const [b0, b1] = this.config.predictionType === 'v_prediction' ? [f(Math.sqrt(b)), f(Math.sqrt(a))] : [0, 1];
    const coeffs: StepCoefficients = { a0: 0, a1: 0, clip: null, b0, b1, b2: 0, c0: 0, c1: -k, c2: sampleCoeff, c3: 0, nextScale: 1 };
    for (const [key, v] of Object.entries(coeffs)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(`PNDMScheduler: step ${i} (t = ${t}, prev = ${prev}) has a non-finite coefficient ${key} (alphas_cumprod[t] = ${a})`);
      }
    }
    return coeffs;
  }

  history(i: number): EpsHistoryCoefficients {
    const c = this.check(i);
    return { wEps: c.wEps, wHist: c.wHist, histWrite: c.histWrite, fromStored: c.fromStored, storeSample: c.storeSample };
  }

  stepRow(i: number): Float32Array {
    return packPlmsRow(this.timesteps[i]!, i, this.coefficients(i), this.history(i));
  }
}
