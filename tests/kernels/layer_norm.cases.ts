import { layerNorm } from '../../src/kernels/layer_norm.ts';
import { layerNormRef } from '../ref/layer_norm.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { weight } from '../helpers/weights.ts';
import { F32, type OpCase } from './cases.ts';

interface Row { shape: number[]; eps: number; offset?: number }

const rows: Row[] = [
  { shape: [2, 64, 32], eps: 1e-5 },
  { shape: [2, 16, 64], eps: 1e-5 },
  { shape: [3, 7, 5], eps: 1e-6 },
  { shape: [1], eps: 1e-5 },
  { shape: [5, 1], eps: 1e-5 },
  { shape: [2, 3, 320], eps: 1e-5 },
  { shape: [1, 4, 2100], eps: 1e-5 },
  // Large common offset: the variance must be two-pass.
  { shape: [2, 9, 40], eps: 1e-5, offset: 100 },
];

export const layerNormCases: OpCase[] = rows.map((r, i) => ({
  op: 'layer_norm',
  name: `[${r.shape.join(',')}] eps ${r.eps.toExponential()}${r.offset ? ` offset ${r.offset}` : ''}`,
  ...F32,
  async run(rt) {
    const C = r.shape[r.shape.length - 1]!;
    const n = r.shape.reduce((a, b) => a * b, 1);
    const x = randn(n, 1200 + i).map((v) => v + (r.offset ?? 0));
    const gamma = randn(C, 1300 + i, 2);
    const beta = randn(C, 1400 + i);
    const got = await runGraph(rt, (g) => layerNorm(g, 'ln', input(rt, x, r.shape), weight(rt, gamma, [C]), weight(rt, beta, [C]), r.eps));
    return { got, ref: layerNormRef(x, gamma, beta, C, r.eps) };
  },
}));
