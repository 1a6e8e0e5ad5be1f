import { guidanceRescale } from '../../src/kernels/guidance_rescale.ts';
import { guidanceRescaleRef } from '../ref/guidance_rescale.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { F32, type OpCase } from './cases.ts';

// [2B, C, h, w] guidance batches; the cond half is compared (the uncond half is left as it was).
const rows: [number[], number, number][] = [
  [[2, 4, 8, 8], 7.5, 0.7],
  [[6, 4, 5, 7], 3, 1],
  [[2, 1, 33, 31], 12, 0.25],
];

export const guidanceRescaleCases: OpCase[] = rows.map(([shape, s, phi], i) => ({
  op: 'guidance_rescale',
  name: `[${shape.join(',')}] guidance ${s} rescale ${phi}`,
  ...F32,
  async run(rt) {
    const n = shape.reduce((a, b) => a * b, 1);
    // The uncond half a scaled copy of cond plus noise, as real predictions correlate.
    const c = randn(n / 2, 1400 + i, 1.5);
    const u = c.map((v, j) => 0.8 * v + 0.3 * Math.sin(j * 1.7 + i));
    const eps = Float32Array.from([...c, ...u]);
    const got = await runGraph(rt, (g) => guidanceRescale(g, 'rescale', input(rt, eps, shape), s, phi));
    return { got: got.subarray(0, n / 2), ref: guidanceRescaleRef(eps, shape[0]! / 2, s, phi) };
  },
}));
