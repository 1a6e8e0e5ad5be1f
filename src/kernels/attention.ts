// Multi-head scaled-dot-product attention, two ways. Small heads go through the flash kernel in
// shaders/attention.wgsl: memory stays O(tokens), never tokens². Large heads (the SD VAE's single
// d512 head) spill its per-thread d-wide accumulator, so they take two GEMMs on the GEMM core and
// a row softmax between them, over an f32 score scratch of query-row chunks that fit one binding.
import type { Graph } from '../graph/graph.ts';
import { evenChunks, fold1d } from '../graph/graph.ts';
import { shapeStr, type Tensor, trafficBytes } from '../graph/tensor.ts';
import { commonDType, storageParams } from './dtype.ts';
import { headGemm } from './gemm.ts';
import { expectShape } from './tensor_checks.ts';
import { reduceParams } from './reduce.ts';

/**
 * The fewest query rows a chunk of the GEMM path may have while the flash kernel could serve the
 * head instead: thinner chunks leave the GEMMs' M tiles mostly empty.
 */
const MIN_CHUNK_ROWS = 64;
const MAX_WG = 65535;

/** Query rows per workgroup (one thread each); short sequences take the small size. */
const BQ_LARGE = 64;
const BQ_SMALL = 32;
/** Floats of workgroup memory per staged tile: K and V tiles together stay within 16 KiB. */
const TILE_FLOATS = 16384 / 4 / 2;
/** Caps the key tile for small heads: each thread keeps BK scores in registers. */
const MAX_BK = 64;

export interface AttentionOptions {
  /** Multiplies q·kᵀ; defaults to 1/sqrt(C/heads). */
  scale?: number;
  /** Query i attends only keys j <= i (CLIP's text encoder). */
  causal?: boolean;
}

/**
 * Keys per tile for head dim d, so that 2 · BK · d floats fit the 16 KiB budget (0: d too wide for
 * the flash kernel), and BK · d fit `tileFloats` (Runtime.attentionTileFloats) down to 4 keys.
 */
export function attentionKeyTile(d: number, tileFloats = Infinity): number {
  // A multiple of 4: the kernel scores and accumulates four keys at a time.
  const keys = (floats: number) => Math.floor(floats / d / 4) * 4;
  const most = Math.min(MAX_BK, keys(TILE_FLOATS));
  return most < 4 ? most : Math.min(most, Math.max(4, keys(tileFloats)));
}

/**
 * Workgroup rows and key tile for one call. A tile longer than the keys would stage and score
 * clamped rows only to mask them (at 16 tokens, three quarters of the work), so short key sets
 * get a tile of their own length, rounded up to 4 to keep the pipeline variants few.
 */
export function attentionTiles(d: number, Tq: number, Tk: number, tileFloats = Infinity): { BQ: number; BK: number } {
  return {
    BQ: Tq <= BQ_SMALL ? BQ_SMALL : BQ_LARGE,
    BK: Math.min(attentionKeyTile(d, tileFloats), Math.ceil(Tk / 4) * 4),
  };
}

/**
 * Groups of four keys per scoring step: the largest power of two up to `most` whose keys divide
 * the key tile (the measured sizes: 1, 2, 4).
 */
export function attentionKeyGroups(most: number, BK: number): number {
  let kg = 2 ** Math.floor(Math.log2(Math.max(1, most)));
  while (kg > 1 && BK % (4 * kg) !== 0) kg /= 2;
  return kg;
}

export type AttentionPath = { path: 'flash' } | { path: 'gemm'; rows: number };

/**
 * Which way attention() runs a head dim d over Tk keys: the flash kernel below `minHead` and
 * `minKeys` (and wherever the GEMM path's score chunks would be thinner than MIN_CHUNK_ROWS query
 * rows), else the GEMM path with `rows` query rows of every (batch, head) per chunk, its
 * [B·heads·rows, Tk] f32 scores within `maxBytes` (the binding limit). Heads too wide for the
 * flash kernel take the GEMM path whatever the limit (one row per chunk at worst; a limit even
 * that exceeds is the planner's to report).
 */
export function attentionPath(d: number, B: number, heads: number, Tq: number, Tk: number, minHead: number, maxBytes: number, minKeys = Infinity): AttentionPath {
  const flash = attentionKeyTile(d) >= 4;
  // The GEMMs' z runs over batch·heads in one dispatch dimension.
  if (flash && ((d < minHead && Tk < minKeys) || B * heads > MAX_WG)) return { path: 'flash' };
  const fit = Math.floor(maxBytes / (4 * B * heads * Tk));
  if (flash && fit < Math.min(Tq, MIN_CHUNK_ROWS)) return { path: 'flash' };
  const { chunk } = evenChunks(Tq, Math.ceil(Tq / Math.max(1, fit)));
  return { path: 'gemm', rows: Math.max(1, Math.min(chunk, Tq)) };
}

/**
 * softmax(q·kᵀ·scale)·v per head. q: [B, Tq, C], k and v: [B, Tk, C]; heads are interleaved in
 * the channels (head h = channels [h·d, (h+1)·d), d = C / heads). Returns [B, Tq, C] with the same
 * interleaving.
 */
export function attention(
  g: Graph,
  label: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  heads: number,
  opts: { scale?: number; causal?: boolean } = {},
): Tensor {
  expectShape(q.shape.length === 3, `${label}: q ${shapeStr(q.shape)} is not [B, Tq, C]`);
  expectShape(k.shape.length === 3, `${label}: k ${shapeStr(k.shape)} is not [B, Tk, C]`);
  expectShape(v.shape.length === 3, `${label}: v ${shapeStr(v.shape)} is not [B, Tk, C]`);
  const [B, Tq, C] = q.shape as [number, number, number];
  const [kB, Tk, kC] = k.shape as [number, number, number];
  expectShape(kB === B && v.shape[0] === B, `${label}: batch differs: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`);
  expectShape(kC === C && v.shape[2] === C, `${label}: channels differ: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}`);
  expectShape(v.shape[1] === Tk, `${label}: k ${shapeStr(k.shape)} and v ${shapeStr(v.shape)} have different token counts`);
  expectShape(Tk > 0, `${label}: no keys (k ${shapeStr(k.shape)}): softmax over nothing is undefined`);
  expectShape(Number.isInteger(heads) && heads > 0, `${label}: heads = ${heads} is not a positive integer`);
  expectShape(C % heads === 0, `${label}: ${C} channels do not split into ${heads} heads`);
  const d = C / heads;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  expectShape(Number.isFinite(scale), `${label}: scale ${scale} is not finite`);
  const dtype = commonDType(label, { q, k, v });
  const out = g.alloc([B, Tq, C], label, dtype);
  const plan = attentionPath(d, B, heads, Tq, Tk, g.rt.attentionGemmMinHead, Math.min(g.limits.binding, g.limits.buffer), g.rt.attentionGemmMinKeys);
  if (plan.path === 'gemm') {
    gemmAttention(g, label, q, k, v, out, heads, plan.rows, scale, !!opts.causal);
    return out;
  }
  const { BQ, BK } = attentionTiles(d, Tq, Tk, g.rt.attentionTileFloats);
  expectShape(attentionKeyTile(d) >= 4, `${label}: head dim ${d} is over ${TILE_FLOATS / 4}, too large to stage four keys in 16 KiB`);
  const qTiles = Math.ceil(Tq / BQ);
  const total = qTiles * heads * B;
  g.dispatch(
    label,
    { shader: 'attention', params: { D: d, BQ, BK, KG: attentionKeyGroups(g.rt.attentionKeyGroups, BK), STAGE_KV: g.rt.attentionStageKV, CAUSAL: !!opts.causal, UNROLL_D: g.rt.attentionUnrollHead, ...storageParams(dtype) } },
    { q, k, v, out },
    { Tq, Tk, C, heads, q_tiles: qTiles, total, scale_log2: scale * Math.LOG2E },
    total === 0 ? [0] : fold1d(total),
    // q·kᵀ and p·v: 2 FMAs per (query, key, channel); a causal mask still computes every tile it touches.
    { flops: 4 * B * Tq * Tk * C, bytes: trafficBytes(q, k, v, out) },
  );
  return out;
}

/**
 * The GEMM path, `rows` query rows of every (batch, head) at a time: S = scale·Q·Kᵀ into the f32
 * scratch, the softmax over its rows in place, then out = P·V written into the chunk's rows of
 * the head-interleaved output. Causal masking happens in the softmax (the GEMM scores every key).
 */
function gemmAttention(g: Graph, label: string, q: Tensor, k: Tensor, v: Tensor, out: Tensor, heads: number, rows: number, scale: number, causal: boolean): void {
  const [B, Tq, C] = q.shape as [number, number, number];
  const Tk = k.shape[1]!;
  const d = C / heads;
  const scores = g.alloc([B * heads * rows, Tk], `${label}/scores`, 'f32');
  // k's and v's rows of head h: key j's channels at (b·Tk + j)·C + h·d.
  const keys = { batch: Tk * C, head: d, ld: C };
  for (let r0 = 0; r0 < Tq; r0 += rows) {
    const M = Math.min(rows, Tq - r0);
    // q's and out's rows r0 .. r0 + M - 1 of head h, in place in the [B, T, C] layout.
    const chunk = { base: r0 * C, batch: Tq * C, head: d, ld: C };
    headGemm(g, `${label}/q·kᵀ`, { M, N: Tk, K: d, B, heads, a: { t: q, ...chunk }, w: { t: k, ...keys }, out: scores, scale });
    const n = B * heads * M;
    softmaxRows(g, `${label}/softmax`, scores, { rows: n, cols: Tk, rowsPerZ: M, r0, causal });
    headGemm(g, `${label}/p·v`, { M, N: d, K: Tk, B, heads, a: scores, w: { t: v, ...keys, kMajor: true }, out: { t: out, ...chunk } });
  }
  g.release(scores);
}

/**
 * The softmax over each of `rows` rows of `cols` f32 scores, in place (shaders/softmax_rows.wgsl):
 * row z·rowsPerZ + m holds query r0 + m of a (batch, head), which `causal` limits to keys <= r0 + m.
 */
export function softmaxRows(g: Graph, label: string, scores: Tensor, o: { rows: number; cols: number; rowsPerZ: number; r0: number; causal: boolean }): void {
  g.dispatch(
    label,
    { shader: 'softmax_rows', params: { CAUSAL: o.causal, ...reduceParams(g.rt) } },
    { s: scores },
    { rows: o.rows, cols: o.cols, rows_per_z: o.rowsPerZ, r0: o.r0 },
    fold1d(o.rows),
    { bytes: 3 * 4 * o.rows * o.cols },
  );
}
