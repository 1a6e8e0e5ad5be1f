// One fused "linear" scheduler step, shared by every step of DDPM and DDIM. All per-step numbers
// come from the row buffer (layout: StepRow in src/kernels/step_row.ts), so a whole denoising
// loop runs one compiled kernel and changes only the row between steps:
//   eps    = modelOut                      or, with CFG, e_u + g·(e_c − e_u)
//   x0     = a0·x + a1·eps                 clamped to ±range when the row's clip flag is set
//   epsHat = (b0·x + b1·eps + b2·x0) / bDiv
//   prev   = c0·x0 + c1·epsHat + c2·x + c3·noise + d·x0_prev
// x is updated in place; NEXT also writes prev·nextScale as the next U-Net input (both CFG halves).
// PREV_X0 gives multistep solvers (DPM-Solver++ 2M) the previous step's x0: read for the d term,
// then overwritten with this step's x0 for the next one.
// EPS_HISTORY gives PNDM's PLMS (linear multistep) its state: a ring of 3 past guided model outputs
// and one stored sample. The update then uses the sample s (x, or the stored one when the row says)
// and the model output wEps·eps + Σ wHist_k·hist[k] in place of x and eps. Every history read
// happens before this step's writes, so the ring slot being refilled can still be read.
// Dynamic thresholding runs the step twice around shaders/threshold.wgsl: X0_ONLY writes the x0
// each element would get (nothing else), the threshold kernel takes a quantile per batch item,
// and THRESHOLD then clamps x0 to ±s and divides by s (s per batch item) in place of the clip.
#include "common"
// The row slots ROW_* and EPS_HISTORY_SLOTS, generated from StepRow (src/kernels/step_row.ts).
#include "step_row"

struct U {
  n: u32,
  // elements per batch item (THRESHOLD's s index)
  per: u32,
}

@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> row: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> modelOut: array<f32>;
#if NOISE
@group(0) @binding(4) var<storage, read> noise: array<f32>;
#endif
#if NEXT
@group(0) @binding(5) var<storage, read_write> nextInput: array<f32>;
#endif
#if EPS_OUT
@group(0) @binding(6) var<storage, read_write> epsOut: array<f32>;
#endif
#if PREV_X0
@group(0) @binding(7) var<storage, read_write> prevX0: array<f32>;
#endif
#if EPS_HISTORY
@group(0) @binding(8) var<storage, read_write> epsHist: array<f32>;
@group(0) @binding(9) var<storage, read_write> storedSample: array<f32>;
#endif
#if X0_ONLY
@group(0) @binding(10) var<storage, read_write> x0Out: array<f32>;
#endif
#if THRESHOLD
@group(0) @binding(11) var<storage, read> thresh: array<f32>;
#endif

const WG = 256u;
// Stands in for diffusers' ±inf x0 (finite: WGSL may assume no infinities); any clip range is far
// below it, so the clamp that follows gives the same ±range.
const X0_HUGE = 3.0e38;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = flat_workgroup(wid, nwg) * WG + lid.x;
  if (i >= u.n) { return; }

  let xIn = x[i];
#if CFG
  let ec = modelOut[i];
  let eu = modelOut[u.n + i];
  let eps = eu + row[ROW_GUIDANCE] * (ec - eu);
#else
  let eps = modelOut[i];
#endif

#if EPS_HISTORY
  var xv = xIn;
  // Weights of 0 skip the read: a slot not yet filled may hold anything.
  if (row[ROW_FROM_STORED] != 0.0) {
    xv = storedSample[i];
  }
  var mo = row[ROW_W_EPS] * eps;
  for (var k = 0u; k < EPS_HISTORY_SLOTS; k++) {
    let w = row[ROW_W_HIST0 + k];
    if (w != 0.0) {
      mo += w * epsHist[k * u.n + i];
    }
  }
  if (row[ROW_STORE_SAMPLE] != 0.0) {
    storedSample[i] = xIn;
  }
  let slot = row[ROW_HIST_WRITE];
  if (slot >= 0.0) {
    epsHist[u32(slot) * u.n + i] = eps;
  }
#else
  let xv = xIn;
  let mo = eps;
#endif

  var x0 = row[ROW_A0] * xv + row[ROW_A1] * mo;
  if (row[ROW_X0_INF] != 0.0) {
    x0 = sign(x0) * X0_HUGE;
  }
#if X0_ONLY
  x0Out[i] = x0;
#else
#if THRESHOLD
  let s = thresh[i / u.per];
  x0 = clamp(x0, -s, s) / s;
#else
  if (row[ROW_CLIP] != 0.0) {
    x0 = clamp(x0, -row[ROW_CLIP_RANGE], row[ROW_CLIP_RANGE]);
  }
#endif
  let epsHat = (row[ROW_B0] * xv + row[ROW_B1] * mo + row[ROW_B2] * x0) / row[ROW_B_DIV];
  var prev = row[ROW_C0] * x0 + row[ROW_C1] * epsHat + row[ROW_C2] * xv;
#if NOISE
  // A step that draws no noise has c3 = 0; skipping the read keeps a stale noise buffer out of it.
  if (row[ROW_C3] != 0.0) {
    prev += row[ROW_C3] * noise[i];
  }
#endif

#if PREV_X0
  // d = 0 on a first-order step (the first one): the history is not read, so it may be stale.
  if (row[ROW_D] != 0.0) {
    prev += row[ROW_D] * prevX0[i];
  }
  prevX0[i] = x0;
#endif

  x[i] = prev;
#if NEXT
  let nxt = prev * row[ROW_NEXT_SCALE];
  nextInput[i] = nxt;
#if CFG
  nextInput[u.n + i] = nxt;
#endif
#endif
#if EPS_OUT
  epsOut[i] = eps;
#endif
#endif
}
