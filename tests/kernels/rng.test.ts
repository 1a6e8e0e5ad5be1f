// Properties of the Philox noise beyond the table's GPU-vs-reference rows: the reference is real
// Philox4x32-10, the noise is standard normal, and seed / stream / counter each change the draw.
import { describe, expect, it } from 'vitest';
import { gaussianNoise } from '../../src/kernels/rng.ts';
import { compare } from '../helpers/compare.ts';
import { input, runGraph, runtime } from '../helpers/gpu.ts';
import { philox4x32_10, philoxNormalRef } from '../ref/rng.ts';

const N = 65536;

async function noise(seed: number, opts: Parameters<typeof gaussianNoise>[4] = {}, n = N): Promise<Float32Array> {
  const rt = await runtime();
  return runGraph(rt, (g) => gaussianNoise(g, 'noise', [n], seed, opts));
}

describe('gaussianNoise (Philox4x32-10 + Box-Muller)', () => {
  it('reference matches Random123 known-answer vectors', () => {
    const hex = (w: number[]) => w.map((v) => v.toString(16).padStart(8, '0')).join(' ');
    expect(hex(philox4x32_10([0, 0, 0, 0], [0, 0]))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    expect(hex(philox4x32_10([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toBe('d16cfe09 94fdcceb 5001e420 24126ea1');
  });

  it(`matches the reference over ${N} values (tails included)`, async () => {
    const cmp = compare(await noise(99, { stream: 2 }), philoxNormalRef(99, 2, 0, N), 1e-5, 0);
    expect(cmp.ok, cmp.report).toBe(true);
  });

  it('is standard normal within 3 sigma', async () => {
    const z = await noise(1);
    let s = 0;
    let s2 = 0;
    for (const v of z) {
      s += v;
      s2 += v * v;
    }
    const mean = s / N;
    const std = Math.sqrt(s2 / N - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(3 / Math.sqrt(N));
    expect(Math.abs(std - 1)).toBeLessThan(3 / Math.sqrt(2 * N));
    expect(z.every(Number.isFinite)).toBe(true);
  });

  it('differs across seeds, streams and counters, and reads the counter on the GPU', async () => {
    const rt = await runtime();
    const n = 1000;
    const base = await noise(5, {}, n);
    const counted = (step: number) => runGraph(rt, (g) => gaussianNoise(g, 'noise', [n], 5, { counter: { buffer: input(rt, [step], [1]), index: 0 } }));
    const draws = [await noise(6, {}, n), await noise(5 + 2 ** 32, {}, n), await noise(5, { stream: 1 }, n), await counted(1)];
    for (const d of draws) {
      let same = 0;
      for (let i = 0; i < n; i++) if (d[i] === base[i]) same++;
      expect(same).toBe(0);
    }
    expect(Array.from(await counted(0))).toEqual(Array.from(base));
  });

  it('gives a prefix-stable draw: element i does not depend on n', async () => {
    const long = await noise(3, {}, 1003);
    expect(Array.from(await noise(3, {}, 13))).toEqual(Array.from(long.subarray(0, 13)));
  });
});
