// Kernels pick their f16 variant from their tensors and refuse a mix by name.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { add } from '../../src/kernels/elementwise.ts';
import { linear } from '../../src/kernels/gemm.ts';
import { timestepEmbedding } from '../../src/kernels/embedding.ts';
import { hasF16, input, runtime } from '../helpers/gpu.ts';
import { DTypeError } from '../../src/errors.ts';

describe('storage types', () => {
  it('refuses mixed f32/f16 inputs, naming both tensors', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) ctx.skip();
    const g = new Graph(rt, 'mixed');
    const x = input(rt, [1, 2, 3, 4], [1, 4], 'x', 'f16');
    const w = input(rt, [1, 2, 3, 4, 5, 6, 7, 8], [2, 4], 'w', 'f32');
    expect(() => linear(g, 'lin', x, w)).toThrow(DTypeError);
    expect(() => linear(g, 'lin', x, w)).toThrow(/lin: input is f16 but weight \(w\) is f32/);
    expect(() => add(g, 'sum', x, input(rt, [1, 2, 3, 4], [1, 4], 'y', 'f32'))).toThrow(/sum: a is f16 but b \(y\) is f32/);
    expect(() => timestepEmbedding(g, 'temb', x, 1, 4, { flipSinToCos: false, downscaleFreqShift: 0 })).toThrow(/timesteps \(x\) must be f32/);
    g.destroy();
  });

  it('gives the output the inputs\' storage type, and keys the kernel by it', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) ctx.skip();
    const g = new Graph(rt, 'keys');
    const h = linear(g, 'h', input(rt, [1, 2, 3, 4], [1, 4], 'x', 'f16'), input(rt, [1, 2, 3, 4], [1, 4], 'w', 'f16'));
    const f = linear(g, 'f', input(rt, [1, 2, 3, 4], [1, 4], 'x', 'f32'), input(rt, [1, 2, 3, 4], [1, 4], 'w', 'f32'));
    expect(h.dtype).toBe('f16');
    expect(f.dtype).toBe('f32');
    expect(rt.kernel({ shader: 'gemm', params: { TM: 8, TN4: 2, F16: true } }).key).not.toBe(rt.kernel({ shader: 'gemm', params: { TM: 8, TN4: 2, F16: false } }).key);
    g.destroy();
  });
});
