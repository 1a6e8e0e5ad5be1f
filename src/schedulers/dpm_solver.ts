// DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095) in its multistep 2nd-order form ("2M") as
// diffusers' DPMSolverMultistepScheduler v0.25.1 steps it with algorithm_type dpmsolver++ (and
// sde-dpmsolver++, "2M SDE", which adds fresh noise each step). The
// solver works on x0 predictions in log-SNR time λ = log(α_t/σ_t): a first-order step is
//   prev = (σ_t/σ_s)·x − α_t·(e^{−h} − 1)·x0,            h = λ_t − λ_s,
// and a second-order step also uses the previous step's x0 through D1 = (x0 − x0_prev)/r0,
// r0 = h_prev/h, so the fused GPU step keeps an x0 history buffer (SchedulerStepArgs.prevX0; the
// row's d slot multiplies it). Note that this version's last σ is σ(t = 0), not 0 (diffusers added
// final_sigmas_type later). Scalars are rounded to float32 where torch does float32 math.
import { packStepRow, STEP_ROW_LENGTH, type StepCoefficients } from '../kernels/step_row.ts';
import { karrasSigmas, logSigmaTable, sigmaToT } from './karras.ts';
import type { Scheduler } from './scheduler.ts';
import { alphasCumprod, ConfigReader, inferenceTimesteps, makeBetas, roundHalfEven, readScheduleConfig, readThreshold, stepAt, type PredictionType, type ScheduleConfig, type Threshold } from './schedule.ts';
import { SchedulerConfigError } from '../errors.ts';

const f = Math.fround;

export interface DPMSolverConfig {
  schedule: ScheduleConfig;
  predictionType: PredictionType;
  solverOrder: 1 | 2;
  /**
   * algorithm_type 'sde-dpmsolver++' ("DPM++ 2M SDE"): each step also adds fresh noise,
   *   prev = (σ_t/σ_s·e^{−h})·x + α_t(1 − e^{−2h})·x0 [+ k·D1] + σ_t·√(1 − e^{−2h})·noise.
   */
  sde: boolean;
  solverType: 'midpoint' | 'heun';
  lowerOrderFinal: boolean;
  eulerAtFinal: boolean;
  /** Thresholds the x0 prediction (the model output diffusers converts, and keeps for the next step). */
  threshold: Threshold | null;
  /**
   * use_karras_sigmas: Karras σ from σ(T − 1) down to σ(0) (src/schedulers/karras.ts), timesteps
   * rounded from them (and possibly repeated), and the last step ending at σ_min instead of below it.
   */
  karras: boolean;
}

function readConfig(r: ConfigReader, raw: Record<string, unknown>): DPMSolverConfig {
  const schedule = readScheduleConfig(r, { spacing: 'linspace', readZeroSnr: false });
  const refuse = (what: string) => {
    throw new SchedulerConfigError(`${r.who}: ${what} is not supported`);
  };
  // v0.25.1 has no rescale_betas_zero_snr here (it would be ignored with a warning); refuse rather than guess.
  if (r.bool('rescale_betas_zero_snr', false)) refuse('rescale_betas_zero_snr (not an option of this scheduler in diffusers v0.25.1)');
  if (r.bool('use_lu_lambdas', false)) refuse('use_lu_lambdas; set it to false');
  // The default -inf (no clipping) has no JSON spelling; a config carries it as null or not at all.
  const lmc = raw.lambda_min_clipped ?? -Infinity;
  if (lmc !== -Infinity) refuse(`lambda_min_clipped ${JSON.stringify(lmc)} (only -inf, no clipping)`);
  // diffusers maps 'deis' to dpmsolver++ and the UniPC solver types to midpoint.
  const algorithm = r.choice('algorithm_type', 'dpmsolver++', ['dpmsolver++', 'deis', 'sde-dpmsolver++'], ['dpmsolver', 'sde-dpmsolver']);
  const st = r.choice('solver_type', 'midpoint', ['midpoint', 'heun', 'logrho', 'bh1', 'bh2']);
  const order = r.int('solver_order', 2, 1);
  if (order > 2) refuse(`solver_order ${order} (supported: 1, 2)`);
  // diffusers only acts on the learned variants (it drops the variance channels); a DDPM config's
  // fixed_small carried over by from_config changes nothing.
  const variance = raw.variance_type ?? null;
  if (variance === 'learned' || variance === 'learned_range') refuse(`variance_type ${JSON.stringify(variance)} (learned variance needs a U-Net with 2x output channels)`);
  // A later diffusers option; 'sigma_min' is this version's behaviour.
  r.choice('final_sigmas_type', 'sigma_min', ['sigma_min'], ['zero']);
  return {
    schedule,
    predictionType: r.choice<PredictionType>('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample']),
    solverOrder: order as 1 | 2,
    sde: algorithm === 'sde-dpmsolver++',
    solverType: st === 'heun' ? 'heun' : 'midpoint',
    lowerOrderFinal: r.bool('lower_order_final', true),
    eulerAtFinal: r.bool('euler_at_final', false),
    threshold: readThreshold(r),
    karras: r.bool('use_karras_sigmas', false),
  };
}

/** set_timesteps(steps) with lambda_min_clipped = -inf (last_timestep = T). */
export function dpmTimesteps(sc: ScheduleConfig, steps: number): number[] {
  const T = sc.numTrainTimesteps;
  if (!Number.isInteger(steps) || steps < 1) throw new SchedulerConfigError(`the number of inference steps must be a positive integer, got ${steps}`);
  let ts: number[];
  if (sc.timestepSpacing === 'linspace') {
    // np.linspace(0, T − 1, steps + 1).round()[::-1][:-1]
    const step = (T - 1) / steps;
    ts = Array.from({ length: steps }, (_, j) => (j === 0 ? T - 1 : roundHalfEven((steps - j) * step)));
  } else if (sc.timestepSpacing === 'leading') {
    const ratio = Math.floor(T / (steps + 1));
    ts = Array.from({ length: steps }, (_, j) => (steps - j) * ratio + sc.stepsOffset);
  } else {
    ts = inferenceTimesteps(sc, steps);
  }
  for (const t of ts) {
    if (t < 0 || t >= T) throw new SchedulerConfigError(`timestep ${t} is outside [0, ${T - 1}] (timestep_spacing '${sc.timestepSpacing}', steps_offset ${sc.stepsOffset}, ${steps} steps)`);
  }
  return ts;
}

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly name: 'dpm++2m' | 'dpm++2m-sde';
  readonly rowLength = STEP_ROW_LENGTH;
  readonly initNoiseSigma = 1;
  /** The step needs SchedulerStepArgs.prevX0, a [B, ...] buffer kept across the loop. */
  readonly usesX0History = true;
  readonly config: DPMSolverConfig;
  readonly timesteps: number[];
  readonly alphasCumprod: Float32Array;
  /** σ at each inference timestep, then σ(t = 0): steps + 1 float32 values. */
  readonly sigmas: Float32Array;

  get threshold(): Threshold | null {
    return this.config.threshold;
  }

  /**
   * start: the first step the loop runs (img2img); diffusers' step() counts lower_order_nums from
   * its own first call, so that step is first order, whatever its index.
   */
  constructor(cfg: Record<string, unknown>, steps: number, readonly start = 0) {
    const r = new ConfigReader(cfg, 'DPMSolverMultistepScheduler');
    this.config = readConfig(r, cfg);
    this.name = this.config.sde ? 'dpm++2m-sde' : 'dpm++2m';
    const ac = alphasCumprod(makeBetas(this.config.schedule));
    this.alphasCumprod = ac;
    const table = ac.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
    if (this.config.karras) {
      dpmTimesteps(this.config.schedule, steps);
      const ks = karrasSigmas(table[0]!, table[table.length - 1]!, steps);
      const logs = logSigmaTable(table);
      this.timesteps = ks.map((s) => roundHalfEven(sigmaToT(s, logs)));
      this.sigmas = Float32Array.from([...ks, ks[ks.length - 1]!]);
    } else {
      this.timesteps = dpmTimesteps(this.config.schedule, steps);
      // Integer timesteps: np.interp returns the table values themselves.
      this.sigmas = Float32Array.from([...this.timesteps.map((t) => table[t]!), table[0]!]);
    }
    for (let i = 0; i < this.timesteps.length; i++) this.coefficients(i);
  }

  private check(i: number): void {
    stepAt(this.timesteps, i, 'DPMSolverMultistepScheduler');
  }

  modelInputScale(i: number): number {
    this.check(i);
    return 1;
  }

  drawsNoise(i: number): boolean {
    this.check(i);
    return this.config.sde;
  }

  /** Whether step i is second order (uses the previous x0), as diffusers' step() decides. */
  isSecondOrder(i: number): boolean {
    this.check(i);
    const n = this.timesteps.length;
    const c = this.config;
    const lowerFinal = i === n - 1 && (c.eulerAtFinal || (c.lowerOrderFinal && n < 15));
    return c.solverOrder === 2 && i >= this.start + 1 && !lowerFinal;
  }

  /** _sigma_to_alpha_sigma_t and λ for sigmas[j], in float32. */
  private point(j: number): { alpha: number; sigma: number; lambda: number } {
    const s = this.sigmas[j]!;
    const alpha = f(1 / f(Math.sqrt(f(f(s * s) + 1))));
    const sigma = f(s * alpha);
    return { alpha, sigma, lambda: f(f(Math.log(alpha)) - f(Math.log(sigma))) };
  }

  coefficients(i: number): StepCoefficients {
    this.check(i);
    const s0 = this.point(i);
    const t = this.point(i + 1);
    let a0: number, a1: number;
    if (this.config.predictionType === 'epsilon') [a0, a1] = [1 / s0.alpha, -s0.sigma / s0.alpha];
    else if (this.config.predictionType === 'v_prediction') [a0, a1] = [s0.alpha, -s0.sigma];
    else [a0, a1] = [0, 1];
    const h = f(t.lambda - s0.lambda);
    const em1 = f(f(Math.exp(-h)) - 1);
    const A = f(t.alpha * em1);
    // prev = cx·x + c0·D0 [+ k·D1] [+ c3·noise], D0 = x0, D1 = (x0 − x0_prev)/r0.
    const midpoint = this.config.solverType === 'midpoint';
    let c0: number, cx: number, kD1: number, c3 = 0;
    if (this.config.sde) {
      const om = f(1 - f(Math.exp(f(-2 * h))));
      cx = f(f(t.sigma / s0.sigma) * f(Math.exp(-h)));
      c0 = f(t.alpha * om);
      c3 = f(t.sigma * f(Math.sqrt(om)));
      kD1 = midpoint ? f(0.5 * c0) : f(t.alpha * f(f(om / f(-2 * h)) + 1));
    } else {
      cx = f(t.sigma / s0.sigma);
      c0 = -A;
      kD1 = midpoint ? -f(0.5 * A) : f(t.alpha * f(f(em1 / h) + 1));
    }
    let d = 0;
    if (this.isSecondOrder(i)) {
      const s1 = this.point(i - 1);
      const r0 = f(f(s0.lambda - s1.lambda) / h);
      const kr = f(kD1 * f(1 / r0));
      c0 += kr;
      d = -kr;
    }
    const k: StepCoefficients = { a0, a1, clip: null, b0: 0, b1: 0, b2: 0, c0, c1: 0, c2: cx, c3, nextScale: 1, d };
    for (const [key, v] of Object.entries(k)) {
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new SchedulerConfigError(`DPMSolverMultistepScheduler: step ${i} (t = ${this.timesteps[i]}) has a non-finite coefficient ${key} (repeated timesteps give h = 0)`);
      }
    }
    return k;
  }

  stepRow(i: number): Float32Array {
    return packStepRow(this.timesteps[i]!, i, this.coefficients(i));
  }
}
