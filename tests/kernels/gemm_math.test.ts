// Where Runtime.gemmMath = 'f16' applies (F16_MATH in shaders/gemm.wgsl): the op table's
// '[f16 math]' rows check its results; this checks the kernels it is chosen for.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { quantize } from '../../src/io/quant.ts';
import { uploadQuantized, uploadTensor } from '../../src/kernels/cast.ts';
import { linear } from '../../src/kernels/gemm.ts';
import { hasF16, randn, runtime, withRuntime } from '../helpers/gpu.ts';

describe('gemmMath f16', async () => {
  const rt = await runtime();
  it.skipIf(!hasF16(rt))('multiplies f16 activations with f16 or q4 weights in f16 on the tiled feed, never q8 weights (raw integers until the epilogue) nor f32 activations', async () => {
    const [M, K, N] = [8, 64, 16];
    const w = randn(N * K, 5, 0.1);
    const weights = {
      f16: uploadTensor(rt, w, [N, K], 'w f16', 'f16'),
      q8: uploadQuantized(rt, quantize('q8', w, N, K), [N, K], 'w q8'),
      q4: uploadQuantized(rt, quantize('q4', w, N, K), [N, K], 'w q4'),
      f32: uploadTensor(rt, w, [N, K], 'w f32', 'f32'),
    };
    const f16Math = (x: 'f16' | 'f32', weight: keyof typeof weights, feed: 'tiled' | 'direct' = 'tiled') =>
      withRuntime(rt, { gemmFeed: feed, gemmAdapt: true, gemmMath: 'f16' }, async () => {
        const g = new Graph(rt, 'gemm math');
        try {
          linear(g, 'lin', uploadTensor(rt, randn(M * K, 6), [1, M, K], 'x', x), weights[weight]);
          g.finalize();
          return /\bF16_MATH=true\b/.test(g.ops[0]!.kernel.key);
        } finally {
          g.destroy();
        }
      });
    try {
      expect(await f16Math('f16', 'f16')).toBe(true);
      expect(await f16Math('f16', 'q4')).toBe(true);
      expect(await f16Math('f16', 'q8')).toBe(false);
      expect(await f16Math('f32', 'f32')).toBe(false);
      expect(await f16Math('f16', 'f16', 'direct')).toBe(false);
    } finally {
      for (const t of Object.values(weights)) rt.destroyBuffer(t.buffer);
    }
  });
});
