import type { Runtime } from '../../src/gpu/runtime.ts';
import { attention } from '../../src/kernels/attention.ts';
import { attentionRef } from '../ref/attention.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
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
  // d = 160 gives BK = 12: 29 keys are three tiles, the last one partial
  { B: 1, Tq: 9, Tk: 29, C: 320, heads: 2, note: 'd160' },
  // SD 1.5's d40 over several 48-key tiles, and a VAE mid-block's single 512-wide head (4-key tiles).
  { B: 2, Tq: 100, Tk: 101, C: 80, heads: 2, note: 'd40, 3 key tiles' },
  { B: 1, Tq: 24, Tk: 21, C: 512, heads: 1, note: 'd512 VAE mid-block' },
  { B: 1, Tq: 20, Tk: 40, C: 128, heads: 1, scale: 0.3, note: 'd128 explicit scale' },
  // logits up to ~138 (exp overflows f32 past 88), spread over two key tiles: only a softmax that
  // subtracts its running max and rescales survives
  { B: 2, Tq: 33, Tk: 70, C: 64, heads: 2, qkScale: 10, note: 'large logits' },
  // 70001 workgroups: past the 65535 per-dimension limit, folded over x and y with one spare
  { B: 70001, Tq: 1, Tk: 3, C: 2, heads: 1, note: 'folded dispatch' },
];

const oneWay: OpCase[] = rows.map((r, i) => ({
  op: 'attention',
  name: `B${r.B} Tq${r.Tq} Tk${r.Tk} C${r.C} heads${r.heads} d${r.C / r.heads}${r.causal ? ' causal' : ''}${r.note ? ` (${r.note})` : ''}`,
  ...F32,
  async run(rt) {
    const qk = r.qkScale ?? 1;
    const q = randn(r.B * r.Tq * r.C, 200 + i, qk);
    const k = randn(r.B * r.Tk * r.C, 300 + i, qk);
    const v = randn(r.B * r.Tk * r.C, 400 + i);
    const opts = { scale: r.scale, causal: r.causal };
    const got = await runGraph(rt, (g) =>
      attention(g, 'attn', input(rt, q, [r.B, r.Tq, r.C]), input(rt, k, [r.B, r.Tk, r.C]), input(rt, v, [r.B, r.Tk, r.C]), r.heads, opts),
    );
    return { got, ref: attentionRef(q, k, v, r.B, r.Tq, r.Tk, r.C, r.heads, opts) };
  },
}));

/**
 * Every row with one group of four keys per scoring step and with up to four (Runtime.attentionKeyGroups:
 * GPUs' and CPU adapters' defaults), whichever the adapter runs by default.
 */
export const attentionCases: OpCase[] = [1, 4].flatMap((kg) =>
  oneWay.map((c) => ({
    ...c,
    name: `${c.name} [key groups <= ${kg}]`,
    async run(rt: Runtime) {
      const prev = rt.attentionKeyGroups;
      rt.attentionKeyGroups = kg;
      try {
        return await c.run(rt);
      } finally {
        rt.attentionKeyGroups = prev;
      }
    },
  })),
);
