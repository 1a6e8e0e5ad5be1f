// The step row: the per-step f32 coefficients a scheduler packs on the host and the fused step
// (shaders/scheduler_step.wgsl) reads. Its layout is written only here; the shader's slot constants
// are generated from StepRow (stepRowWgsl, #include "step_row"), so the two cannot disagree.
// GPU-free, so the schedulers' host math imports it without the graph or the runtime.

/** Slots of a step row (f32). */
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
  /** The shader reads the EPS_HISTORY_SLOTS weights as wHist0 + k, so they stay consecutive. */
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

export type StepRowSlot = keyof typeof StepRow;

/** Floats in a plain step row: the PLMS-only slots start where it ends. */
export const STEP_ROW_LENGTH = StepRow.wEps;
/** Row length for schedulers that use SchedulerStepArgs.epsHistory: every slot. */
export const PLMS_ROW_LENGTH = Object.keys(StepRow).length;
/** Past model outputs an eps history keeps (PLMS's 4th-order formula needs three). */
export const EPS_HISTORY_SLOTS = 3;

/** The WGSL name of a slot's index constant: ROW_ and the slot in upper snake case (clipRange → ROW_CLIP_RANGE). */
export function wgslSlotName(slot: StepRowSlot): string {
  return `ROW_${slot.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** The `#include "step_row"` text: one u32 constant per StepRow slot, and the history's ring size. */
export function stepRowWgsl(): string {
  const slots = (Object.keys(StepRow) as StepRowSlot[]).map((s) => `const ${wgslSlotName(s)} = ${StepRow[s]}u;`);
  return [`// Generated from StepRow in src/kernels/step_row.ts.`, ...slots, `const EPS_HISTORY_SLOTS = ${EPS_HISTORY_SLOTS}u;`].join('\n');
}

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
