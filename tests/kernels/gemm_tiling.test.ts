// How the GEMM core cuts a GEMM into workgroups (gemmTiling): decisions only; the op table
// (the op table's '[tiled]' rows) checks the results of each cut against the CPU.
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../src/graph/graph.ts';
import { gemmTiling } from '../../src/kernels/gemm.ts';

const graph = (feed: 'direct' | 'tiled', adapt = true, binding = 128 * 2 ** 20) => ({ rt: { gemmFeed: feed, gemmAdapt: adapt }, limits: { binding, buffer: binding } }) as unknown as Graph;

describe('gemmTiling', () => {
  it('keeps 8 x 8 per thread over all of K on the direct feed and with adapting off', () => {
    for (const g of [graph('direct'), graph('tiled', false)]) expect(gemmTiling(g, 64, 64, 576, 2)).toEqual({ TM: 8, TN4: 2, splits: 1, kChunk: 576 });
  });

  it('splits a fashion-ldm conv (2 tiles, K = 576) into 64-deep slices on 64-wide tiles', () => {
    expect(gemmTiling(graph('tiled'), 64, 64, 576, 2)).toEqual({ TM: 4, TN4: 1, splits: 9, kChunk: 64 });
  });

  it('splits an SD 1.5 1280-channel conv at 8 x 8 (20 tiles) until about 256 workgroups', () => {
    const t = gemmTiling(graph('tiled'), 64, 1280, 11520, 2);
    expect(t).toMatchObject({ TM: 4, TN4: 2 });
    expect(t.splits).toBe(13);
    expect(t.kChunk % 16).toBe(0);
    expect(t.splits * t.kChunk).toBeGreaterThanOrEqual(11520);
    expect((t.splits - 1) * t.kChunk).toBeLessThan(11520);
  });

  it('leaves a GEMM with enough tiles, or too little K to split, in one slice', () => {
    expect(gemmTiling(graph('tiled'), 4096, 1280, 2880, 2).splits).toBe(1);
    // SD's GEGLU projection at 32x32: 8 x 20 = 160 tiles (measured slower split on an H200)
    expect(gemmTiling(graph('tiled'), 1024, 2560, 320, 1).splits).toBe(1);
    expect(gemmTiling(graph('tiled'), 64, 64, 100, 1).splits).toBe(1);
  });

  it('never makes an empty slice, the last one short where K is not a multiple', () => {
    for (const K of [128, 300, 577, 1000, 4607]) {
      const t = gemmTiling(graph('tiled'), 37, 50, K, 2);
      expect(t.kChunk % 16).toBe(0);
      expect((t.splits - 1) * t.kChunk).toBeLessThan(K);
      expect(t.splits * t.kChunk).toBeGreaterThanOrEqual(K);
    }
  });

  it('keeps the f32 scratch of partial sums within the binding limit', () => {
    // 2 x 64 x 1280 outputs = 640 KiB per slice: a 2 MiB binding holds 3 of them.
    expect(gemmTiling(graph('tiled', true, 2 * 2 ** 20), 64, 1280, 11520, 2).splits).toBe(3);
  });
});
