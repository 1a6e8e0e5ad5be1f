import { noiseAdd } from '../../src/kernels/noise_add.ts';
import { noiseAddRef } from '../ref/noise_add.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { F32, type OpCase } from './cases.ts';

// alpha_bar near the start, middle and end of a 1000-step linear-beta schedule.
const rows: [number[], number][] = [
  [[2, 4, 8, 8], 0.9999],
  [[3, 5, 7], 0.5],
  [[1, 3, 16, 16], 0.0047],
];

const fixedCases: OpCase[] = rows.map(([shape, alphaBar], i) => ({
  op: 'noise_add',
  name: `[${shape.join(',')}] alpha_bar ${alphaBar}`,
  ...F32,
  async run(rt) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x0 = randn(n, 1200 + i);
    const noise = randn(n, 1300 + i, 3);
    const [a, b] = [Math.fround(Math.sqrt(alphaBar)), Math.fround(Math.sqrt(1 - alphaBar))];
    const got = await runGraph(rt, (g) => noiseAdd(g, 'noise_add', input(rt, x0, shape), input(rt, noise, shape), { sqrtAlphaBar: a, sqrtOneMinusAlphaBar: b }));
    return { got, ref: noiseAddRef(x0, noise, a, b) };
  },
}));

// Coefficients read from a row buffer at an offset, as the inpainting loop reads each step's.
const rowCases: OpCase[] = ([[[2, 4, 8, 8], 0.3, 18], [[3, 5, 7], 0.9999, 0], [[1, 4, 5, 5], 0.0047, 3]] as [number[], number, number][]).map(([shape, alphaBar, index], i) => ({
  op: 'noise_add',
  name: `[${shape.join(',')}] alpha_bar ${alphaBar} from row [${index}]`,
  ...F32,
  async run(rt) {
    const n = shape.reduce((a, b) => a * b, 1);
    const x0 = randn(n, 1250 + i);
    const noise = randn(n, 1350 + i, 3);
    const [a, b] = [Math.fround(Math.sqrt(alphaBar)), Math.fround(Math.sqrt(1 - alphaBar))];
    const row = new Float32Array(index + 4).fill(NaN);
    row[index] = a;
    row[index + 1] = b;
    const coef = input(rt, row, [row.length], 'coef');
    const got = await runGraph(rt, (g) => noiseAdd(g, 'noise_add', input(rt, x0, shape), input(rt, noise, shape), { buffer: coef, index }));
    return { got, ref: noiseAddRef(x0, noise, a, b) };
  },
}));

export const noiseAddCases: OpCase[] = [...fixedCases, ...rowCases];
