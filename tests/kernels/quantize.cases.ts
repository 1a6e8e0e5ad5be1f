import { quantize } from '../../src/kernels/quantize.ts';
import { quantizeRef } from '../ref/quantize.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { weight } from '../helpers/weights.ts';
import { F32, type OpCase } from './cases.ts';

// The output is a copy of a codebook row (through z + (e − z), within an ulp of e), so any error
// beyond rounding means a different row won: exact checks, with data kept clear of near-ties
// (a distance gap below MIN_GAP relative to ||z||² + ||e||² would let f32 and float64 legitimately
// disagree).
const MIN_GAP = 1e-5;

interface Row { B: number; D: number; h: number; w: number; K: number; note?: string }

const rows: Row[] = [
  { B: 1, D: 3, h: 4, w: 4, K: 64, note: 'the vq fixture' },
  { B: 1, D: 4, h: 3, w: 5, K: 8192, note: 'a large codebook, many tiles' },
  { B: 2, D: 3, h: 9, w: 11, K: 257, note: 'odd sizes, two workgroups per image' },
  { B: 1, D: 5, h: 2, w: 3, K: 20, note: "torch.cdist's direct path" },
  { B: 3, D: 1, h: 1, w: 9, K: 12, note: 'one channel; the matmul path as 27 pixels > 25' },
  { B: 1, D: 200, h: 2, w: 2, K: 30, note: 'wide rows: 19 per tile' },
];

const randomCases: OpCase[] = rows.map((r, i) => ({
  op: 'quantize',
  name: `z [${r.B},${r.D},${r.h},${r.w}] codebook [${r.K},${r.D}]${r.note ? ` (${r.note})` : ''}`,
  ...F32,
  async run(rt) {
    const hw = r.h * r.w;
    const z = randn(r.B * r.D * hw, 1400 + i);
    const codebook = randn(r.K * r.D, 1500 + i);
    const ref = quantizeRef(z, codebook, r.B, r.D, hw, r.K);
    const tight = Math.min(...ref.gaps);
    if (tight < MIN_GAP) throw new Error(`quantize case data has a near-tie (relative gap ${tight}); pick another seed`);
    const got = await runGraph(rt, (g) => quantize(g, 'quantize', input(rt, z, [r.B, r.D, r.h, r.w]), weight(rt, codebook, [r.K, r.D])));
    return { got, ref: ref.out };
  },
}));

// Exact ties: z = 0 is equally far from every unit vector, and torch.argmin takes the first.
// Rows 0 and 1 are farther (length 2), so the winner is row 2, tied with every row after it,
// across three codebook tiles.
const tieCase: OpCase = {
  op: 'quantize',
  name: 'exact ties pick the first row',
  ...F32,
  async run(rt) {
    const D = 3;
    const K = 600;
    const codebook = new Float32Array(K * D);
    codebook.set([2, 0, 0, 0, 2, 0]);
    for (let k = 2; k < K; k++) codebook[k * D + ((k + 1) % D)] = k % 2 ? -1 : 1;
    const z = new Float32Array(D * 2);
    const got = await runGraph(rt, (g) => quantize(g, 'quantize', input(rt, z, [1, D, 1, 2]), weight(rt, codebook, [K, D])));
    // Row 2 is (1, 0, 0) at channel (2 + 1) % 3 = 0.
    return { got, ref: [1, 1, 0, 0, 0, 0] };
  },
};

export const quantizeCases: OpCase[] = [...randomCases, tieCase];
