import { beforeAll, describe, expect, it } from 'vitest';
import { kernelKind, profileGraph, summarizeByKind } from '../../src/gpu/profiler.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import { attention } from '../../src/kernels/attention.ts';
import { silu } from '../../src/kernels/elementwise.ts';
import { conv2d, linear } from '../../src/kernels/gemm.ts';
import { groupNorm } from '../../src/kernels/group_norm.ts';
import { input, randn, runtime } from '../helpers/gpu.ts';
import { ProfilerError } from '../../src/errors.ts';

let rt: Runtime;
beforeAll(async () => {
  rt = await runtime();
});

/** A small block with one op of each kind the U-Net profile groups. */
function tinyGraph(): { g: Graph; M: number; N: number; K: number } {
  const g = new Graph(rt, 'profile-test');
  const x = input(rt, randn(2 * 8 * 4 * 4, 1), [2, 8, 4, 4], 'x');
  const cw = input(rt, randn(16 * 8 * 9, 2), [16, 8, 3, 3], 'conv-w');
  const h = conv2d(g, 'conv', x, cw, { padding: 1 });
  const n = groupNorm(g, 'norm', h, input(rt, randn(16, 3), [16]), input(rt, randn(16, 4), [16]), { groups: 4, eps: 1e-5 });
  const s = silu(g, 'silu', n);
  const [M, N, K] = [16, 24, 16];
  const tokens = input(rt, randn(M * K, 5), [1, M, K], 'tokens');
  const q = linear(g, 'to_q', tokens, input(rt, randn(N * K, 6), [N, K], 'wq'));
  attention(g, 'attn', q, q, q, 2);
  g.release(s);
  return { g: g.finalize(), M, N, K };
}

describe('profileGraph', () => {
  it('gives every op a non-negative time, and the kinds add up to the total', async () => {
    const { g } = tinyGraph();
    try {
      if (!rt.gpu.features.has('timestamp-query')) {
        console.warn(`SKIPPED per-kernel profiling: ${rt.gpu.adapterName} has no timestamp-query`);
        await expect(profileGraph(rt, g, 1)).rejects.toThrow(ProfilerError);
        return;
      }
      const p = await profileGraph(rt, g, 2);
      expect(p.ops.map((o) => o.label)).toEqual(g.ops.map((o) => o.label));
      for (const op of p.ops) {
        expect(Number.isFinite(op.ms), op.label).toBe(true);
        expect(op.ms, op.label).toBeGreaterThanOrEqual(0);
      }
      const kinds = summarizeByKind(p);
      expect(new Set(kinds.map((k) => k.kind))).toEqual(new Set(['conv2d', 'gemm', 'group_norm', 'elementwise', 'attention']));
      const sum = kinds.reduce((a, k) => a + k.ms, 0);
      expect(Math.abs(sum - p.totalMs)).toBeLessThanOrEqual(1e-9 * Math.max(1, p.totalMs));
      expect(kinds.reduce((a, k) => a + k.ops, 0)).toBe(p.ops.length);
      if (p.totalMs > 0) expect(Math.abs(kinds.reduce((a, k) => a + k.share, 0) - 1)).toBeLessThan(1e-9);
      console.log(`profile on ${rt.gpu.adapterName}: total ${p.totalMs.toFixed(3)} ms, timestamp granularity ${p.granularityNs} ns`);
    } finally {
      g.destroy();
    }
  });

  it('rejects a graph with nothing recorded', async () => {
    await expect(profileGraph(rt, new Graph(rt, 'empty'), 1)).rejects.toThrow(/no ops recorded|timestamp-query/);
  });
});

describe('cost estimates', () => {
  it('a linear layer costs 2·M·N·K flops and reads/writes each tensor once', () => {
    const { g, M, N, K } = tinyGraph();
    try {
      const op = g.ops.find((o) => o.label === 'to_q')!;
      expect(op.cost?.flops).toBe(2 * M * N * K);
      expect(op.cost?.bytes).toBe(4 * (M * K + N * K + M * N));
    } finally {
      g.destroy();
    }
  });

  it('a conv2d costs 2·M·N·K flops with M = B·Hout·Wout, N = Cout, K = Cin·kh·kw', () => {
    const { g } = tinyGraph();
    try {
      const op = g.ops.find((o) => o.label === 'conv')!;
      expect(op.cost?.flops).toBe(2 * (2 * 4 * 4) * 16 * (8 * 9));
      expect(kernelKind(op.kernel.key)).toBe('conv2d');
      const attn = g.ops.find((o) => o.label === 'attn')!;
      expect(attn.cost?.flops).toBe(4 * 1 * 16 * 16 * 24);
    } finally {
      g.destroy();
    }
  });

  it("attention's GEMM path (per-head GEMMs and the row softmax) is filed under attention, with the flash kernel", () => {
    const g = new Graph(rt, 'attention paths');
    const prev = rt.attentionGemmMinHead;
    try {
      const t = (T: number, C: number) => input(rt, randn(T * C, T + C), [1, T, C]);
      rt.attentionGemmMinHead = 1;
      attention(g, 'gemm path', t(8, 16), t(8, 16), t(8, 16), 1);
      rt.attentionGemmMinHead = Infinity;
      attention(g, 'flash', t(8, 16), t(8, 16), t(8, 16), 1);
      g.finalize();
      const kinds = g.ops.map((o) => [o.label, kernelKind(o.kernel.key)]);
      expect(kinds).toEqual([['gemm path/q·kᵀ', 'attention'], ['gemm path/softmax', 'attention'], ['gemm path/p·v', 'attention'], ['flash', 'attention']]);
    } finally {
      rt.attentionGemmMinHead = prev;
      g.destroy();
    }
  });

  it('a K-split GEMM (tiled feed) is a conv2d dispatch and a split-K sum', async () => {
    const prev = [rt.gemmFeed, rt.gemmAdapt] as const;
    [rt.gemmFeed, rt.gemmAdapt] = ['tiled', true];
    const g = new Graph(rt, 'split-k-kinds');
    try {
      const x = input(rt, randn(2 * 32 * 6 * 5, 7), [2, 32, 6, 5], 'x');
      conv2d(g, 'conv', x, input(rt, randn(12 * 32 * 9, 8), [12, 32, 3, 3], 'w'), { padding: 1 });
      g.finalize();
      expect(g.ops.map((o) => [o.label, kernelKind(o.kernel.key)])).toEqual([['conv', 'conv2d'], ['conv/reduce', 'split-K sum']]);
    } finally {
      g.destroy();
      [rt.gemmFeed, rt.gemmAdapt] = prev;
    }
  });
});
