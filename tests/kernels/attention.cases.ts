import type { Runtime } from '../../src/gpu/runtime.ts';
import { ATTENTION_GEMM_MIN_HEAD } from '../../src/gpu/runtime.ts';
import { attention, attentionPath } from '../../src/kernels/attention.ts';
import { attentionRef } from '../ref/attention.ts';
import { input, randn, runGraph, withGemmFeed, withRuntime } from '../helpers/gpu.ts';
import { F32, type OpCase } from './cases.ts';

interface AttnRow {
  B: number;
  Tq: number;
  Tk: number;
  C: number;
  heads: number;
  causal?: boolean;
  scale?: number;
  /** Multiplies q and k (not v): the logits grow with its square. */
  qkScale?: number;
  note?: string;
  /** Forces a path (Runtime.attentionGemmMinHead 1 or Infinity, attentionGemmMinKeys Infinity); by head dim when absent. */
  path?: 'flash' | 'gemm';
  /** Runtime.planLimits.binding while the row runs: the GEMM path's scores in query-row chunks. */
  binding?: number;
  /** Uses the data of row `data` (same shape) instead of its own. */
  data?: number;
}

const rows: AttnRow[] = [
  { B: 1, Tq: 16, Tk: 16, C: 32, heads: 1 },
  // the fashion model's mid-block: 8x8 tokens, 128 channels, head dim 32
  { B: 2, Tq: 64, Tk: 64, C: 128, heads: 4, note: 'fashion mid-block' },
  { B: 2, Tq: 64, Tk: 64, C: 64, heads: 2 },
  // nothing is a tile multiple: 37 rows of a 64-row tile, 11 keys of a 12-key tile (short key
  // sets get a tile of their own length, rounded up to 4), d = 8
  { B: 3, Tq: 37, Tk: 11, C: 24, heads: 3 },
  // cross-attention on CLIP's 77 tokens: two key tiles (BK 64 at d = 8), the second partial
  { B: 1, Tq: 64, Tk: 77, C: 64, heads: 8, note: 'cross-attn' },
  { B: 2, Tq: 70, Tk: 7, C: 80, heads: 2, note: 'cross-attn d40' },
  { B: 2, Tq: 13, Tk: 13, C: 32, heads: 2, causal: true },
  // several query and key tiles under the causal mask (d 32 -> BK 64)
  { B: 1, Tq: 150, Tk: 150, C: 32, heads: 1, causal: true },
  // CLIP's text self-attention: 77 tokens, head dim 64 (SD's 768 / 12) -> BK 32, so the first
  // 64-row query tile skips the third key tile and the partial second tile reads all three
  { B: 2, Tq: 77, Tk: 77, C: 128, heads: 2, causal: true, note: 'CLIP text' },
  // d = 160 gives BK = 12: 29 keys are three tiles, the last one partial (the flash kernel forced:
  // heads of 128 and more take the GEMM path by default)
  { B: 1, Tq: 9, Tk: 29, C: 320, heads: 2, path: 'flash', note: 'd160' },
  // SD 1.5's d40 over several 48-key tiles, and a VAE mid-block's single 512-wide head (the GEMM
  // path; the flash kernel's 4-key tiles in the last row).
  { B: 2, Tq: 100, Tk: 101, C: 80, heads: 2, note: 'd40, 3 key tiles' },
  { B: 1, Tq: 24, Tk: 21, C: 512, heads: 1, note: 'd512 VAE mid-block' },
  { B: 1, Tq: 20, Tk: 40, C: 128, heads: 1, scale: 0.3, note: 'd128 explicit scale' },
  // logits up to ~138 (exp overflows f32 past 88), spread over two key tiles: only a softmax that
  // subtracts its running max and rescales survives
  { B: 2, Tq: 33, Tk: 70, C: 64, heads: 2, qkScale: 10, note: 'large logits' },
  // 70001 workgroups: past the 65535 per-dimension limit, folded over x and y with one spare
  { B: 70001, Tq: 1, Tk: 3, C: 2, heads: 1, note: 'folded dispatch' },
  // The GEMM path (two GEMMs and a row softmax): heads past the flash kernel's 512, several heads
  // and batch items (the per-(batch, head) offsets), nothing a tile multiple, large logits, causal.
  { B: 1, Tq: 19, Tk: 23, C: 640, heads: 1, note: 'd640' },
  { B: 2, Tq: 20, Tk: 33, C: 512, heads: 2, note: 'd256' },
  { B: 2, Tq: 37, Tk: 11, C: 96, heads: 3, path: 'gemm' },
  // the flash row's data: how far f16 rounding of the inputs moves these logits depends on it
  { B: 2, Tq: 33, Tk: 70, C: 64, heads: 2, qkScale: 10, path: 'gemm', data: 13, note: 'large logits' },
  { B: 2, Tq: 77, Tk: 77, C: 128, heads: 2, causal: true, path: 'gemm', note: 'CLIP text' },
  // 150 query rows in chunks of 50 (the scores' 800-byte rows against a 52000-byte binding), under
  // the causal mask: each chunk masks from its own first row
  { B: 1, Tq: 150, Tk: 200, C: 32, heads: 1, causal: true, path: 'gemm', binding: 52000, note: 'scores in 3 chunks' },
  // Several (batch, head) views past the first chunk, the last chunk short: 101 rows as 34 + 34 + 33
  // (a query row's scores over 4 views, 1600 bytes, against a 64000-byte binding).
  { B: 2, Tq: 101, Tk: 100, C: 64, heads: 2, causal: true, path: 'gemm', binding: 64000, note: 'B2 heads2, chunks 34 + 34 + 33' },
  // the flash kernel's widest head, which the GEMM path takes by default
  { B: 1, Tq: 24, Tk: 21, C: 512, heads: 1, path: 'flash', note: 'd512 VAE mid-block' },
];

const runs = (r: AttnRow): 'flash' | 'gemm' => r.path ?? attentionPath(r.C / r.heads, r.B, r.heads, r.Tq, r.Tk, ATTENTION_GEMM_MIN_HEAD, r.binding ?? 2 ** 27).path;

const oneWay = rows.map((r, i): OpCase & { path: 'flash' | 'gemm'; d: number; Tk: number } => ({
  op: 'attention',
  path: runs(r),
  d: r.C / r.heads,
  Tk: r.Tk,
  name: `B${r.B} Tq${r.Tq} Tk${r.Tk} C${r.C} heads${r.heads} d${r.C / r.heads}${r.causal ? ' causal' : ''}${r.note ? ` (${r.note})` : ''} [${runs(r)}]`,
  ...F32,
  async run(rt) {
    const qk = r.qkScale ?? 1;
    const seed = r.data ?? i;
    const q = randn(r.B * r.Tq * r.C, 200 + seed, qk);
    const k = randn(r.B * r.Tk * r.C, 300 + seed, qk);
    const v = randn(r.B * r.Tk * r.C, 400 + seed);
    const opts = { scale: r.scale, causal: r.causal };
    const choices = {
      ...(r.path ? { attentionGemmMinHead: r.path === 'gemm' ? 1 : Infinity, attentionGemmMinKeys: Infinity } : {}),
      ...(r.binding ? { planLimits: { ...rt.planLimits, binding: r.binding } } : {}),
    };
    const got = await withRuntime(rt, choices, () =>
      runGraph(rt, (g) => attention(g, 'attn', input(rt, q, [r.B, r.Tq, r.C]), input(rt, k, [r.B, r.Tk, r.C]), input(rt, v, [r.B, r.Tk, r.C]), r.heads, opts)),
    );
    return { got, ref: attentionRef(q, k, v, r.B, r.Tq, r.Tk, r.C, r.heads, opts) };
  },
}));

/**
 * Flash rows as GPUs run them (one group of four keys per scoring step, key tiles up to the whole
 * 16 KiB, staged in workgroup memory) and as CPU adapters do (up to four groups, 1024-float tiles
 * read from the inputs: Runtime.attentionKeyGroups, attentionTileFloats and attentionStageKV),
 * the head-dim loops to a uniform bound (CPU adapters') and, on some shapes, to the constant D
 * (GPUs'); GEMM-path rows under both feeds of the GEMM core (Runtime.gemmFeed: CPU adapters'
 * direct one, GPUs' tiled one). The rows' tile notes are the GPUs' tiles.
 */
export const attentionCases: OpCase[] = [
  ...([[1, Infinity, true], [4, 1024, false]] as const).flatMap(([kg, tile, stage]) =>
    oneWay.filter((c) => c.path === 'flash').map((c) => ({
      ...c,
      name: `${c.name} [key groups <= ${kg}]${tile === Infinity ? '' : ` [${tile}-float tiles]`} [K/V ${stage ? 'staged' : 'direct'}]`,
      run: (rt: Runtime) => withRuntime(rt, { attentionKeyGroups: kg, attentionTileFloats: tile, attentionStageKV: stage, attentionUnrollHead: false }, () => c.run(rt)),
    })),
  ),
  // GPUs' form of the flash kernel: head-dim loops to the constant D (Runtime.attentionUnrollHead).
  // lavapipe compiles it in seconds only for a head of 40 or more, or at most 16 keys (d16 aside):
  // the other shapes took it 20-99 s per kernel, so CPU adapters skip them (gpuOnly).
  ...oneWay
    .filter((c) => c.path === 'flash')
    .map((c) => ({
      ...c,
      name: `${c.name} [key groups <= 1] [K/V staged] [head unrolled]`,
      ...(c.d >= 40 || (c.Tk <= 16 && c.d !== 16) ? {} : { gpuOnly: 'lavapipe takes 20-99 s to compile this shape with the head unrolled' }),
      run: (rt: Runtime) => withRuntime(rt, { attentionKeyGroups: 1, attentionTileFloats: Infinity, attentionStageKV: true, attentionUnrollHead: true }, () => c.run(rt)),
    })),
  ...(['direct', 'tiled'] as const).flatMap((feed) =>
    oneWay.filter((c) => c.path === 'gemm').map((c) => ({ ...c, name: `${c.name} [${feed}]`, run: (rt: Runtime) => withGemmFeed(rt, feed, () => c.run(rt)) })),
  ),
];
