// Shape checks of the norm / elementwise / embedding / noise kernels, and dispatch folding past
// 65535 workgroups (the op table keeps shapes too small to need it).
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { add, concatChannels, upsampleNearest2x } from '../../src/kernels/elementwise.ts';
import { embeddingLookup, timestepEmbedding, uploadIds } from '../../src/kernels/embedding.ts';
import { groupNorm } from '../../src/kernels/group_norm.ts';
import { noiseAdd } from '../../src/kernels/noise_add.ts';
import { gaussianNoise } from '../../src/kernels/rng.ts';
import { input, runGraph, runtime } from '../helpers/gpu.ts';
import { ShapeError } from '../../src/errors.ts';

describe('shape checks', () => {
  it('throw ShapeError naming the problem', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'shape-checks');
    const t = (...shape: number[]): Tensor => input(rt, [0], shape);
    const x = t(2, 6, 4, 4);
    const cases: [() => unknown, RegExp][] = [
      [() => groupNorm(g, 'gn', x, t(6), t(6), { groups: 4, eps: 1e-5 }), /6 channels do not split into 4 groups/],
      [() => groupNorm(g, 'gn', x, t(5), t(6), { groups: 3, eps: 1e-5 }), /gamma \[5\] should be \[6\]/],
      [() => groupNorm(g, 'gn', x, t(6), t(6, 1), { groups: 3, eps: 1e-5 }), /beta \[6, 1\] should be \[6\]/],
      [() => add(g, 'add', x, t(2, 6, 4, 5)), /cannot add/],
      [() => concatChannels(g, 'cat', x, t(2, 3, 4, 5)), /along channels/],
      [() => concatChannels(g, 'cat', x, t(1, 3, 4, 4)), /along channels/],
      [() => upsampleNearest2x(g, 'up', t(2, 6, 4)), /not \[B, C, H, W\]/],
      [() => timestepEmbedding(g, 'temb', t(3), 4, 32, { flipSinToCos: true, downscaleFreqShift: 0 }), /4 timesteps needed/],
      [() => timestepEmbedding(g, 'temb', t(1), 1, 2, { flipSinToCos: true, downscaleFreqShift: 1 }), /divides by zero/],
      [() => embeddingLookup(g, 'emb', t(10), t(2)), /not \[num, dim\]/],
      [() => embeddingLookup(g, 'emb', t(10, 4), t(2, 1)), /not \[B\]/],
      [() => uploadIds(rt, [1, 10], 10), /id 10 at 1 is outside \[0, 10\)/],
      [() => gaussianNoise(g, 'noise', [4], -1), /seed -1/],
      [() => gaussianNoise(g, 'noise', [4], 1, { counter: { buffer: t(2), index: 2 } }), /counter index 2/],
      [() => noiseAdd(g, 'noise_add', x, t(2, 6, 4, 3), { sqrtAlphaBar: 1, sqrtOneMinusAlphaBar: 0 }), /differ/],
    ];
    for (const [fn, msg] of cases) {
      expect(fn).toThrow(ShapeError);
      expect(fn).toThrow(msg);
    }
    g.destroy();
  });
});

describe('dispatch folding', () => {
  it('covers every element past 65535 workgroups', async () => {
    const rt = await runtime();
    const n = 256 * 65535 + 1000;
    const a = new Float32Array(n).map((_, i) => i % 1000);
    const b = new Float32Array(n).map((_, i) => Math.floor(i / 1000));
    const got = await runGraph(rt, (g) => add(g, 'add', input(rt, a, [n]), input(rt, b, [n])));
    let bad = 0;
    for (let i = 0; i < n; i++) if (got[i] !== a[i]! + b[i]!) bad++;
    expect(bad).toBe(0);
  });
});
