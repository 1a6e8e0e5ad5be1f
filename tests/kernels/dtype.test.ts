// Kernels pick their f16 variant from their tensors and refuse a mix by name.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { add } from '../../src/kernels/elementwise.ts';
import { conv2d, linear } from '../../src/kernels/gemm.ts';
import { embeddingLookup, timestepEmbedding, tokenEmbedding, uploadIds } from '../../src/kernels/embedding.ts';
import { weightParams } from '../../src/kernels/dtype.ts';
import { groupNorm } from '../../src/kernels/group_norm.ts';
import { layerNorm } from '../../src/kernels/layer_norm.ts';
import { quantize } from '../../src/kernels/quantize.ts';
import { hasF16, input, runtime } from '../helpers/gpu.ts';
import { runtimeWithoutF16 } from '../helpers/weights.ts';
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

  it('reads f16 weights beside f32 activations as array<f16> with shader-f16, else as packed u32 words', async () => {
    const rt = await runtime();
    const w = input(rt, [1, 2, 3, 4], [1, 4], 'w', 'f16');
    expect(weightParams(new Set(['shader-f16']), 'lin', 'f32', { weight: w })).toEqual({ W_F16: true });
    expect(weightParams(new Set(), 'lin', 'f32', { weight: w })).toEqual({ W_PACKED: true });
    // Weights stored like the activations need no parameter (the existing f32 and f16 kernels).
    expect(weightParams(new Set(), 'lin', 'f16', { weight: w })).toEqual({});
    expect(weightParams(new Set(), 'lin', 'f32', { weight: input(rt, [1, 2], [1, 2], 'w32', 'f32') })).toEqual({});
    expect(weightParams(new Set(), 'lin', 'f32', { bias: undefined })).toEqual({});
    // The output keeps the activations' type, on a device without shader-f16 too.
    const plain = await runtimeWithoutF16();
    const g = new Graph(plain, 'mixed weights');
    const y = linear(g, 'lin', input(plain, [1, 2, 3, 4], [1, 4], 'x', 'f32'), input(plain, [1, 2, 3, 4], [1, 4], 'w', 'f16'));
    expect(y.dtype).toBe('f32');
    g.destroy();
  });

  it('refuses weights and activations it has no variant for, naming the tensor', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'refused');
    const x16 = input(rt, randnish(2 * 4 * 3 * 3), [2, 4, 3, 3], 'x16', 'f16');
    const x32 = input(rt, randnish(2 * 4 * 3 * 3), [2, 4, 3, 3], 'x32', 'f32');
    const w32 = input(rt, randnish(4), [4], 'gamma32', 'f32');
    const w16 = input(rt, randnish(4), [4], 'gamma16', 'f16');
    // f32 weights beside f16 activations: no variant (f16 models store their weights in f16).
    expect(() => groupNorm(g, 'gn', x16, w32, w32, { groups: 2, eps: 1e-5 })).toThrow(DTypeError);
    expect(() => groupNorm(g, 'gn', x16, w32, w32, { groups: 2, eps: 1e-5 })).toThrow(/gn: input is f16 but gamma \(gamma32\) is f32; f32 weights beside f16 activations are not supported/);
    expect(() => layerNorm(g, 'ln', input(rt, [1, 2, 3, 4], [1, 4], 'row', 'f16'), w32, w32, 1e-5)).toThrow(/ln: input is f16 but gamma \(gamma32\) is f32/);
    expect(() => conv2d(g, 'conv', x16, input(rt, randnish(4 * 4 * 9), [4, 4, 3, 3], 'k32', 'f32'))).toThrow(/conv: input is f16 but weight \(k32\) is f32/);
    expect(() => quantize(g, 'vq', x16, input(rt, randnish(8), [2, 4], 'codes32', 'f32'))).toThrow(/vq: z is f16 but codebook \(codes32\) is f32/);
    const ids = uploadIds(rt, [0, 1], 4);
    expect(() => embeddingLookup(g, 'emb', input(rt, randnish(8), [4, 2], 'table32', 'f32'), ids, 'f16')).toThrow(/emb: the output is f16 but table \(table32\) is f32/);
    const tokenIds = { ...uploadIds(rt, [0, 1], 4), shape: [1, 2] };
    expect(() => tokenEmbedding(g, 'tok', [input(rt, randnish(8), [4, 2], 'chunk32', 'f32')], tokenIds, input(rt, randnish(4), [2, 2], 'pos32', 'f32'), 'f16')).toThrow(/tok: the output is f16 but table chunk 0 \(chunk32\) is f32/);
    // A layer's weights are stored alike: a mixed pair is a wiring error, named.
    expect(() => groupNorm(g, 'gn', x32, w16, input(rt, randnish(4), [4], 'beta32', 'f32'), { groups: 2, eps: 1e-5 })).toThrow(/gn: gamma is f16 but beta \(beta32\) is f32/);
    expect(() => linear(g, 'lin', input(rt, [1, 2, 3, 4], [1, 4], 'x', 'f32'), input(rt, [1, 2, 3, 4], [1, 4], 'w16', 'f16'), { bias: input(rt, [1], [1], 'b32', 'f32') })).toThrow(/lin: weight is f16 but bias \(b32\) is f32/);
    g.destroy();
  });
});

function randnish(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7));
}
