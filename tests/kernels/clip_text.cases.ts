// Kernel rows added for CLIP's text encoder: the GEMM epilogue's quick_gelu and exact GELU (its MLP
// fc1), and the token + position embedding read from a token table bound in row chunks.
import { linear } from '../../src/kernels/gemm.ts';
import { tokenEmbedding, tokenTableChunks } from '../../src/kernels/embedding.ts';
import { linearRef } from '../ref/gemm.ts';
import { geluRef, quickGeluRef, tokenEmbeddingRef } from '../ref/clip_text.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { activationsBesideWeights, weight } from '../helpers/weights.ts';
import { F32, type OpCase } from './cases.ts';

const acts = { quickGelu: quickGeluRef, gelu: geluRef } as const;

// B, M, K, N: CLIP's fc1 on 77 tokens (64 -> 256 as in the tiny fixture), and shapes off the tile grid.
const shapes: [number, number, number, number][] = [
  [2, 77, 64, 256],
  [1, 5, 7, 3],
  [3, 33, 20, 70],
];

const activationCases: OpCase[] = shapes.flatMap(([B, M, K, N], i) =>
  (['quickGelu', 'gelu'] as const).map((act) => ({
    op: 'linear',
    name: `B${B} M${M} K${K} N${N} +bias +${act}`,
    ...F32,
    async run(rt) {
      const x = randn(B * M * K, 1500 + i);
      // Pre-activations of a few units: both tails and the curved middle of the activation.
      const w = randn(N * K, 1510 + i, 0.6);
      const bias = randn(N, 1520 + i);
      const got = await runGraph(rt, (g) => linear(g, 'fc1', input(rt, x, [B, M, K]), weight(rt, w, [N, K]), { bias: weight(rt, bias, [N]), [act]: true }));
      return { got, ref: linearRef(x, w, bias, B, M, K, N).map(acts[act]) };
    },
  })),
);

interface TokenRow {
  num: number;
  dim: number;
  T: number;
  ids: number[];
  /** Binding budget for the table, bytes: smaller than the table splits it into row chunks. */
  binding: number;
  note?: string;
}

const tokenRows: TokenRow[] = [
  { num: 50, dim: 16, T: 4, ids: [49, 0, 7, 7, 3, 48, 12, 1], binding: 1 << 20, note: 'one chunk' },
  // 13 rows per chunk: 4 chunks, the last one of 11; ids at every chunk edge
  { num: 50, dim: 16, T: 3, ids: [0, 12, 13, 25, 26, 38, 39, 49, 20], binding: 13 * 64 + 5, note: '4 chunks' },
  // an id past the table reads the last row, from the last chunk only
  { num: 30, dim: 8, T: 2, ids: [29, 0xffffffff, 31, 5], binding: 7 * 32, note: 'clamped ids, 5 chunks' },
  { num: 77, dim: 33, T: 77, ids: Array.from({ length: 77 }, (_, t) => (t * 37) % 77), binding: 20 * 132, note: 'CLIP length, odd dim' },
];

const tokenCases: OpCase[] = tokenRows.map((r, i) => ({
  op: 'embedding_lookup',
  name: `tokens + positions table [${r.num},${r.dim}] ids [${r.ids.length / r.T},${r.T}] (${r.note})`,
  ...F32,
  async run(rt) {
    const table = randn(r.num * r.dim, 1600 + i);
    const positions = randn(r.T * r.dim, 1610 + i);
    const ids = { buffer: rt.upload(Uint32Array.from(r.ids), 'ids'), shape: [r.ids.length / r.T, r.T], label: 'ids' };
    // Chunk rows are planned for f32 so the f16 rerun splits at the same rows.
    const chunks = tokenTableChunks(r.num, r.dim, 'f32', r.binding).map(([s, e]) => weight(rt, table.subarray(s * r.dim, e * r.dim), [e - s, r.dim], `table[${s}:${e}]`));
    const got = await runGraph(rt, (g) => tokenEmbedding(g, 'emb', chunks, ids, weight(rt, positions, [r.T, r.dim]), activationsBesideWeights()));
    return { got, ref: tokenEmbeddingRef(table, r.num, r.dim, positions, r.ids, r.T) };
  },
}));

export const clipTextCases: OpCase[] = [...activationCases, ...tokenCases];
