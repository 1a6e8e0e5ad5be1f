// What the op table cannot show: shape errors, and the launch for a large latent.
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/graph/graph.ts';
import { attention, attentionKeyGroups, attentionKeyTile } from '../../src/kernels/attention.ts';
import { runtime } from '../helpers/gpu.ts';
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
      ['head dim too large', () => attention(g, 'a', t(1, 4, 4096), t(1, 4, 4096), t(1, 4, 4096), 1)],
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

  it('plans 4096 tokens, 8 heads of 64 within the dispatch limits', async () => {
    const rt = await runtime();
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
