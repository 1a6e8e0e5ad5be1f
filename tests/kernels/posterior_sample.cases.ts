import { posteriorSample } from '../../src/kernels/posterior_sample.ts';
import { posteriorSampleRef } from '../ref/posterior_sample.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { F32, type OpCase } from './cases.ts';

// [B, C, h, w] of the sample, logvar spread: SD's VAE latents, odd sizes, and logvars far past
// both clamp bounds (±30 / 20) so the clamp must hold.
const rows: [number[], number][] = [
  [[1, 4, 8, 8], 3],
  [[2, 4, 16, 16], 3],
  [[3, 3, 5, 7], 60],
  [[2, 1, 1, 1], 40],
];

export const posteriorSampleCases: OpCase[] = rows.map(([shape, spread], i) => ({
  op: 'posterior_sample',
  name: `[${shape.join(',')}] logvar spread ${spread}`,
  ...F32,
  async run(rt) {
    const [B, C, ...sp] = shape as [number, number, ...number[]];
    const chw = C * sp.reduce((a, b) => a * b, 1);
    const mean = randn(B * chw, 1200 + i, 2);
    const logvar = randn(B * chw, 1210 + i, spread);
    const moments = new Float32Array(2 * B * chw);
    for (let b = 0; b < B; b++) {
      moments.set(mean.subarray(b * chw, (b + 1) * chw), 2 * b * chw);
      moments.set(logvar.subarray(b * chw, (b + 1) * chw), (2 * b + 1) * chw);
    }
    const noise = randn(B * chw, 1220 + i, 2);
    const got = await runGraph(rt, (g) => posteriorSample(g, 'posterior', input(rt, moments, [B, 2 * C, ...sp]), input(rt, noise, shape)));
    return { got, ref: posteriorSampleRef(moments, noise, B, chw) };
  },
}));
