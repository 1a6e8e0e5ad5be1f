import { gaussianNoise } from '../../src/kernels/rng.ts';
import { philoxNormalRef } from '../ref/rng.ts';
import { input, runGraph } from '../helpers/gpu.ts';
import type { OpCase } from './cases.ts';

// Bits are exact (Philox is integer); what differs is f32 log/sqrt/sin/cos vs float64, at |z| <= 5.8.
const NOISE = { atol: 1e-5, rtol: 0, why: 'Box-Muller in f32 (log, sqrt, sin/cos) vs float64, |z| up to 5.8' };

interface Row { n: number; seed: number; stream?: number; counter?: number }

const rows: Row[] = [
  { n: 1, seed: 0 },
  { n: 7, seed: 42 },
  { n: 1000, seed: 1234, stream: 3 },
  { n: 4 * 8 * 8 * 2, seed: 2 ** 40 + 17, stream: 1 },
  { n: 4 * 8 * 8 * 2, seed: 7, counter: 5 },
  { n: 1001, seed: 0xffffffff, stream: 0xffffffff, counter: 999 },
];

export const rngCases: OpCase[] = rows.map((r) => ({
  op: 'gaussian_noise',
  name: `n ${r.n} seed ${r.seed} stream ${r.stream ?? 0}${r.counter !== undefined ? ` counter buffer = ${r.counter}` : ''}`,
  ...NOISE,
  async run(rt) {
    const got = await runGraph(rt, (g) => {
      // The step index sits at element 2 of a small f32 buffer, as a scheduler's state would hold it.
      const counter = r.counter !== undefined ? { buffer: input(rt, [0, -1, r.counter, 3], [4]), index: 2 } : undefined;
      return gaussianNoise(g, 'noise', [r.n], r.seed, { stream: r.stream, counter });
    });
    return { got, ref: philoxNormalRef(r.seed, r.stream ?? 0, r.counter ?? 0, r.n) };
  },
}));
