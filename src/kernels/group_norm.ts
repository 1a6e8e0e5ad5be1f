// GroupNorm (torch.nn.GroupNorm semantics) with an optional fused activation (SiLU, Mish, GELU, ReLU): a statistics pass per
// (batch, group) and an elementwise apply pass; see shaders/group_norm.wgsl.
import { evenChunks, fold1d, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor, trafficBytes } from '../graph/tensor.ts';
import { type Activation } from './gemm.ts';
import { commonDType, storageParams, weightParams } from './dtype.ts';
import { ShapeError } from '../errors.ts';
import { activationParams } from './activation.ts';
import { reduceParams } from './reduce.ts';

const WG = 256;
/** Workgroups the statistics pass should have before it stops cutting groups into parts (GPUs). */
const TARGET_STAT_WORKGROUPS = 512;
/** The fewest values a part gets: shorter ones cost more in the merge than they save. */
const MIN_PART = 1024;

/**
 * Parts per group for the statistics pass: 1 on CPU adapters (Runtime.splitNormStats off), else
 * enough for about TARGET_STAT_WORKGROUPS workgroups, each part at least MIN_PART values.
 */
export function groupNormParts(split: boolean, groupsTotal: number, groupSize: number): { parts: number; chunk: number } {
  const want = split ? Math.min(Math.ceil(TARGET_STAT_WORKGROUPS / groupsTotal), Math.floor(groupSize / MIN_PART)) : 1;
  return want <= 1 ? { parts: 1, chunk: groupSize } : evenChunks(groupSize, want);
}

export interface GroupNormOptions {
  groups: number;
  eps: number;
  /** Shorthand for act: 'silu'. */
  silu?: boolean;
  /** The activation after the norm (and after scaleShift / spatial); not together with silu. */
  act?: Activation;
  /** [B, 2C]: y·(1 + scale) + shift after the affine, before the activation (scale = [:, :C], shift = [:, C:]). */
  scaleShift?: Tensor;
  /**
   * SpatialNorm (MoVQ): y·scale + shift after the affine, before the activation, with scale and shift
   * [B, C, h, w] (conv_y(zq), conv_b(zq) at the latent size) read at the nearest source pixel of
   * each output pixel, as torch's F.interpolate(size, mode='nearest') picks it in float32:
   * min(floor(f32(oy)·f32(h/H)), h − 1) (see nearestUniforms).
   */
  spatial?: { scale: Tensor; shift: Tensor };
}

/** x: [B, C, ...spatial] (NCHW); gamma, beta: [C]. */
export function groupNorm(g: Graph, label: string, x: Tensor, gamma: Tensor, beta: Tensor, opts: GroupNormOptions): Tensor {
  const { groups, eps } = opts;
  if (x.shape.length < 2) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} is not [B, C, ...spatial]`);
  const [B, C] = x.shape as [number, number];
  if (!Number.isInteger(groups) || groups <= 0 || C % groups !== 0) throw new ShapeError(`${label}: ${C} channels do not split into ${groups} groups`);
  checkNormParams(label, C, gamma, beta, eps);
  if (opts.silu && opts.act && opts.act !== 'silu') throw new ShapeError(`${label}: silu and ${opts.act} cannot both follow the norm`);
  const act = opts.act ?? (opts.silu ? 'silu' : undefined);
  const ss = opts.scaleShift;
  if (ss && (ss.shape.length !== 2 || ss.shape[0] !== B || ss.shape[1] !== 2 * C)) throw new ShapeError(`${label}: scale/shift ${shapeStr(ss.shape)} should be [${B}, ${2 * C}]`);
  const sp = opts.spatial;
  if (sp && ss) throw new ShapeError(`${label}: scale/shift and spatial modulation do not combine`);
  if (sp && x.shape.length !== 4) throw new ShapeError(`${label}: spatial modulation needs an NCHW input, got ${shapeStr(x.shape)}`);
  for (const t of sp ? [sp.scale, sp.shift] : []) {
    if (t.shape.length !== 4 || t.shape[0] !== B || t.shape[1] !== C || !(t.shape[2]! >= 1) || !(t.shape[3]! >= 1)) throw new ShapeError(`${label}: spatial modulation ${shapeStr(t.shape)} should be [${B}, ${C}, h, w]`);
  }
  if (sp && (sp.scale.shape[2] !== sp.shift.shape[2] || sp.scale.shape[3] !== sp.shift.shape[3])) throw new ShapeError(`${label}: spatial scale ${shapeStr(sp.scale.shape)} and shift ${shapeStr(sp.shift.shape)} differ`);
  const spatial = numel(x.shape.slice(2));
  const groupSize = (C / groups) * spatial;
  const n = B * C * spatial;

  const dtype = commonDType(label, { input: x, scaleShift: ss, spatialScale: sp?.scale, spatialShift: sp?.shift });
  // gamma and beta are model weights: stored like x, or in f16 beside an f32 x.
  const weights = weightParams(g.rt.gpu.features, label, dtype, { gamma, beta }, 'input');
  // Statistics stay f32 whatever the storage type (an f16 variance of a large group overflows or underflows).
  const groupsTotal = B * groups;
  const { parts, chunk } = groupNormParts(g.rt.splitNormStats, groupsTotal, groupSize);
  const applyParams = { ...activationParams(act), SCALE_SHIFT: !!ss, SPATIAL: !!sp, ...storageParams(dtype), ...weights };
  const applyBind = { x, gamma, beta, ...(ss ? { ss } : {}), ...(sp ? { my: sp.scale, mb: sp.shift } : {}) };
  const applyUniforms = { n, spatial, C, group_size: groupSize, ...(sp ? nearestUniforms(x.shape, sp.scale.shape) : {}) };
  if (g.rt.fuseGroupNorm && parts === 1) {
    const out = g.alloc(x.shape, label, dtype);
    // More threads per group than the statistics pass alone takes (16 values each, not 64): they
    // write the outputs too (fashion-ldm's norms on lavapipe 7.7 ms as two passes, 8.4 ms fused
    // at 64, 5.2-5.3 ms at 8 or 16; SwiftShader 16 ms either way at 16, 21 ms at 8).
    g.dispatch(
      label,
      { shader: 'group_norm', params: { STATS: true, FUSED: true, WG: runStatsThreads(groupSize, 16), ...applyParams, ...reduceParams(g.rt) } },
      { ...applyBind, out },
      { ...applyUniforms, eps, groups_total: groupsTotal },
      fold1d(groupsTotal),
      // x is read twice for the statistics and once more for the output.
      { bytes: trafficBytes(x, x, x, gamma, beta, out, ss, sp?.scale, sp?.shift) },
    );
    return out;
  }
  const stats = g.alloc([B, groups, 4], `${label}/stats`);
  if (parts === 1) {
    g.dispatch(`${label}/stats`, { shader: 'group_norm', params: { STATS: true, WG: runStatsThreads(groupSize, 64), ...storageParams(dtype), ...reduceParams(g.rt) } }, { x, stats }, { group_size: groupSize, groups_total: groupsTotal, eps }, fold1d(groupsTotal), { bytes: trafficBytes(x, stats) });
  } else {
    const partial = g.alloc([groupsTotal, parts, 4], `${label}/partial stats`);
    g.dispatch(
      `${label}/stats`,
      { shader: 'group_norm', params: { STATS: true, PARTS: true, WG: runStatsThreads(chunk, 64), ...storageParams(dtype), ...reduceParams(g.rt) } },
      { x, partial },
      { group_size: groupSize, groups_total: groupsTotal, parts, chunk },
      fold1d(groupsTotal * parts),
      { bytes: trafficBytes(x, partial) },
    );
    g.dispatch(`${label}/stats merge`, { shader: 'group_norm', params: { COMBINE: true } }, { partial, stats }, { groups_total: groupsTotal, parts, eps, group_size: groupSize, chunk }, fold1d(Math.ceil(groupsTotal / 64)), { bytes: trafficBytes(partial, stats) });
    g.release(partial);
  }
  const out = g.alloc(x.shape, label, dtype);
  g.dispatch(
    label,
    { shader: 'group_norm', params: { APPLY: true, ...applyParams } },
    { ...applyBind, stats, out },
    applyUniforms,
    fold1d(Math.ceil(n / WG)),
    { bytes: trafficBytes(x, stats, gamma, beta, out, ss, sp?.scale, sp?.shift) },
  );
  g.release(stats);
  return out;
}

/**
 * The apply pass's nearest-source uniforms: torch's float32 scale in/out per axis (its
 * nearest_idx computes floorf(dst · (float)in/out)); Math.fround gives the f32 the shader multiplies by.
 */
function nearestUniforms(x: readonly number[], z: readonly number[]) {
  const [H, W] = [x[2]!, x[3]!];
  const [zh, zw] = [z[2]!, z[3]!];
  return { W, zh, zw, sy: Math.fround(zh / H), sx: Math.fround(zw / W) };
}

/**
 * Threads for the statistics of one contiguous run (shaders/run_stats.wgsl): a power of two in
 * 1..256 giving each thread at least `perThread` values, so short runs skip wide reductions.
 */
export function runStatsThreads(n: number, perThread: number): number {
  let wg = 1;
  while (wg < 256 && wg * perThread < n) wg *= 2;
  return wg;
}

/** The affine parameters and eps every norm over C channels takes. */
export function checkNormParams(label: string, C: number, gamma: Tensor, beta: Tensor, eps: number): void {
  for (const [name, t] of [['gamma', gamma], ['beta', beta]] as const) {
    if (t.shape.length !== 1 || t.shape[0] !== C) throw new ShapeError(`${label}: ${name} ${shapeStr(t.shape)} should be [${C}]`);
  }
  if (!(eps >= 0)) throw new ShapeError(`${label}: eps ${eps} is not a non-negative number`);
}
