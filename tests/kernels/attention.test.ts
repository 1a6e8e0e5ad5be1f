// What the op table cannot show: shape errors, and the launch for a large latent.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { attention, attentionKeyGroups, attentionKeyTile, attentionPath } from '../../src/kernels/attention.ts';
import { generateWgsl, isCpuAdapter } from '../../src/gpu/runtime.ts';
import { runtime, withRuntime } from '../helpers/gpu.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { ShapeError } from '../../src/errors.ts';

describe('attention', () => {
  it('rejects bad shapes with a ShapeError', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'attn-shapes');
    const buffer = rt.createBuffer(16, 'dummy');
    const t = (...shape: number[]): Tensor => ({ buffer, shape, label: 't' });
    const bad: [string, () => unknown][] = [
      ['heads do not divide C', () => attention(g, 'a', t(1, 4, 30), t(1, 4, 30), t(1, 4, 30), 4)],
      ['batch mismatch', () => attention(g, 'a', t(2, 4, 32), t(1, 4, 32), t(1, 4, 32), 2)],
      ['v batch mismatch', () => attention(g, 'a', t(2, 4, 32), t(2, 4, 32), t(1, 4, 32), 2)],
      ['channel mismatch', () => attention(g, 'a', t(1, 4, 32), t(1, 4, 16), t(1, 4, 32), 2)],
      ['v channel mismatch', () => attention(g, 'a', t(1, 4, 32), t(1, 4, 32), t(1, 4, 16), 2)],
      ['k/v tokens differ', () => attention(g, 'a', t(1, 4, 32), t(1, 5, 32), t(1, 4, 32), 2)],
      ['no keys', () => attention(g, 'a', t(1, 4, 32), t(1, 0, 32), t(1, 0, 32), 2)],
      ['not 3-D', () => attention(g, 'a', t(4, 32), t(1, 4, 32), t(1, 4, 32), 2)],
      ['zero heads', () => attention(g, 'a', t(1, 4, 32), t(1, 4, 32), t(1, 4, 32), 0)],
    ];
    for (const [what, f] of bad) expect(f, what).toThrow(ShapeError);
    rt.destroyBuffer(buffer);
    g.destroy();
  });

  it('keeps K and V tiles within 16 KiB of workgroup memory, in whole groups of four keys', () => {
    for (const d of [1, 8, 16, 24, 32, 40, 64, 80, 128, 160, 256, 512]) {
      const bk = attentionKeyTile(d);
      expect(bk, `d ${d}`).toBeGreaterThanOrEqual(4);
      expect(bk % 4, `d ${d}`).toBe(0);
      expect(2 * bk * d * 4, `d ${d}`).toBeLessThanOrEqual(16384);
    }
    expect(attentionKeyTile(513)).toBe(0);
  });

  it('shrinks the key tile to a smaller budget (CPU adapters) down to four keys, never changing which heads fit', () => {
    // d -> keys at 1024 floats a tile (Runtime.attentionTileFloats on CPU adapters) and at the whole 16 KiB
    const cases: [number, number, number][] = [[8, 64, 64], [32, 32, 64], [40, 24, 48], [64, 16, 32], [128, 8, 16], [160, 4, 12], [512, 4, 4], [513, 0, 0]];
    for (const [d, capped, whole] of cases) {
      expect(attentionKeyTile(d, 1024), `d ${d}`).toBe(capped);
      expect(attentionKeyTile(d), `d ${d}`).toBe(whole);
      expect(attentionKeyTile(d, Infinity), `d ${d}`).toBe(whole);
    }
  });

  it('stages K and V in workgroup memory on GPUs only: the direct form declares none', async () => {
    const rt = await runtime();
    expect(rt.attentionStageKV).toBe(!isCpuAdapter(rt.gpu.adapterName));
    const params = { D: 64, BQ: 64, BK: 16, KG: 4, CAUSAL: false, UNROLL_D: false, F16: false };
    expect(generateWgsl({ shader: 'attention', params: { ...params, STAGE_KV: true } })).toMatch(/var<workgroup>/);
    expect(generateWgsl({ shader: 'attention', params: { ...params, STAGE_KV: false } })).not.toMatch(/var<workgroup>|workgroupBarrier/);
  });

  it('plans 4096 tokens, 8 heads of 64 within the dispatch limits', async () => {
    const rt = await runtime();
    // The flash kernel's launch, which CPU adapters leave for the GEMM path at this many keys.
    await withRuntime(rt, { attentionGemmMinKeys: Infinity }, async () => {
      const g = new Graph(rt, 'attn-4096');
      const x = g.alloc([2, 4096, 512], 'x');
      const out = attention(g, 'a', x, x, x, 8);
      g.finalize();
      expect(out.shape).toEqual([2, 4096, 512]);
      // 64 query tiles x 8 heads x 2 batches, one workgroup each
      expect(g.ops.map((o) => o.workgroups)).toEqual([[1024, 1, 1]]);
      g.destroy();
    });
  });
});

describe('attentionPath', () => {
  const MiB = 2 ** 20;
  it('keeps small heads on the flash kernel and takes large ones to the GEMM path', () => {
    // SD's U-Net self-attention at 64x64 latents: 8 heads of 40 (its scores would be 1 GiB)
    expect(attentionPath(40, 2, 8, 4096, 4096, 256, 128 * MiB)).toEqual({ path: 'flash' });
    expect(attentionPath(64, 2, 12, 77, 77, 256, 128 * MiB)).toEqual({ path: 'flash' });
    // the SD VAE's mid-block at 512x512: 64 MiB of scores, one chunk
    expect(attentionPath(512, 1, 1, 4096, 4096, 256, 128 * MiB)).toEqual({ path: 'gemm', rows: 4096 });
    expect(attentionPath(256, 1, 1, 100, 100, 256, 128 * MiB)).toEqual({ path: 'gemm', rows: 100 });
    expect(attentionPath(255, 1, 1, 100, 100, 256, 128 * MiB)).toEqual({ path: 'flash' });
    // the runtime's threshold forces either way
    expect(attentionPath(8, 1, 1, 100, 100, 1, 128 * MiB)).toEqual({ path: 'gemm', rows: 100 });
    expect(attentionPath(512, 1, 1, 100, 100, Infinity, 128 * MiB)).toEqual({ path: 'flash' });
  });

  it('takes long key sets to the GEMM path from minKeys (CPU adapters: Runtime.attentionGemmMinKeys), whatever the head', () => {
    // SD 1.5's d40 self-attention at 64x64 latents: 1 GiB of scores, 512 rows (128 MiB) a chunk
    expect(attentionPath(40, 2, 8, 4096, 4096, 128, 128 * MiB, 256)).toEqual({ path: 'gemm', rows: 512 });
    expect(attentionPath(32, 2, 4, 256, 256, 128, 128 * MiB, 256)).toEqual({ path: 'gemm', rows: 256 });
    // below it, and cross-attention over 77 keys, stay on the flash kernel
    expect(attentionPath(32, 2, 4, 255, 255, 128, 128 * MiB, 256)).toEqual({ path: 'flash' });
    expect(attentionPath(40, 2, 8, 4096, 77, 128, 128 * MiB, 256)).toEqual({ path: 'flash' });
    // the default (GPUs) never takes it by key count
    expect(attentionPath(40, 2, 8, 4096, 4096, 128, 128 * MiB)).toEqual({ path: 'flash' });
    // a chunk thinner than 64 rows still falls back to the flash kernel
    expect(attentionPath(40, 2, 8, 4096, 4096, 128, 4 * MiB, 256)).toEqual({ path: 'flash' });
  });

  it('cuts the scores into even query-row chunks that fit the binding limit', () => {
    // the VAE's mid-block at 1024x1024: 16384 rows of 64 KiB, 2048 a chunk
    expect(attentionPath(512, 1, 1, 16384, 16384, 256, 128 * MiB)).toEqual({ path: 'gemm', rows: 2048 });
    // 65 rows fit: three chunks of 50, not 65 + 65 + 20
    expect(attentionPath(32, 1, 1, 150, 200, 1, 52000)).toEqual({ path: 'gemm', rows: 50 });
  });

  it('falls back to the flash kernel where the GEMM path would be thin or too wide for one dispatch', () => {
    // 32 rows of 64 KiB a chunk: fewer than 64; 64 are enough
    expect(attentionPath(512, 1, 1, 16384, 16384, 256, 2 * MiB)).toEqual({ path: 'flash' });
    expect(attentionPath(512, 1, 1, 16384, 16384, 256, 4 * MiB)).toEqual({ path: 'gemm', rows: 64 });
    // and a short query set that fits whole
    expect(attentionPath(512, 1, 1, 30, 16384, 256, 2 * MiB)).toEqual({ path: 'gemm', rows: 30 });
    // batch·heads past 65535 z slices
    expect(attentionPath(512, 70000, 1, 1, 3, 1, 128 * MiB)).toEqual({ path: 'flash' });
  });

  it('takes heads past 512, which the flash kernel cannot stage, to the GEMM path whatever the limit', () => {
    expect(attentionPath(640, 1, 1, 19, 23, Infinity, 128 * MiB)).toEqual({ path: 'gemm', rows: 19 });
    expect(attentionPath(1024, 1, 1, 16384, 16384, 256, 2 * MiB)).toEqual({ path: 'gemm', rows: 32 });
    expect(attentionPath(1024, 1, 1, 100, 16384, 256, 1024)).toEqual({ path: 'gemm', rows: 1 });
  });

  it('plans heads past 512 as two GEMMs and a softmax per chunk', async () => {
    const rt = await runtime();
    const g = new Graph(rt, 'attn-d4096');
    const x = g.alloc([1, 4, 4096], 'x');
    const out = attention(g, 'a', x, x, x, 1);
    g.finalize();
    expect(out.shape).toEqual([1, 4, 4096]);
    expect(g.ops.map((o) => o.label)).toEqual(['a/q·kᵀ', 'a/softmax', 'a/p·v']);
    g.destroy();
  });
});

describe('attentionKeyGroups', () => {
  it('takes the most groups of four keys, up to the runtime cap, that divide the key tile', () => {
    expect(attentionKeyGroups(4, 48)).toBe(4); // SD d40: 48-key tiles
    expect(attentionKeyGroups(4, 64)).toBe(4);
    expect(attentionKeyGroups(4, 24)).toBe(2); // d80
    expect(attentionKeyGroups(4, 12)).toBe(1); // d160
    expect(attentionKeyGroups(4, 4)).toBe(1); // d512, or four keys
    expect(attentionKeyGroups(1, 64)).toBe(1); // GPUs' default
    // A cap that is not a power of two rounds down to one, never to a fraction.
    expect(attentionKeyGroups(3, 16)).toBe(2);
    expect(attentionKeyGroups(3, 48)).toBe(2);
    expect(attentionKeyGroups(2.5, 64)).toBe(2);
    expect(attentionKeyGroups(0, 64)).toBe(1);
  });
});
