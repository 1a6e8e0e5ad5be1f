// Chunked convs and norms (src/models/channel_split.ts) give the same tensors as the plain kernels,
// with the plan's binding limit lowered so small shapes split into several chunks.
import { afterEach, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { conv2d } from '../../src/kernels/gemm.ts';
import { fromF16Array } from '../../src/io/f16.ts';
import { groupNorm } from '../../src/kernels/group_norm.ts';
import { chunkStarts, single, splitConv, splitGroupNorm, WeightSlices } from '../../src/models/channel_split.ts';
import { compare } from '../helpers/compare.ts';
import { runAndRead } from '../helpers/split.ts';
import { hasF16, input, randn, runtime } from '../helpers/gpu.ts';

const saved: { rt: Runtime; limits: Runtime['planLimits'] }[] = [];
afterEach(() => {
  for (const s of saved.splice(0)) s.rt.planLimits = s.limits;
});

async function lowLimits(binding: number): Promise<Runtime> {
  const rt = await runtime();
  saved.push({ rt, limits: rt.planLimits });
  rt.planLimits = { binding, buffer: rt.planLimits.buffer };
  return rt;
}

function expectClose(got: Float32Array, ref: Float32Array, what: string): void {
  const c = compare(got, ref, 1e-5, 1e-5);
  console.log(`${what}: max|err| ${c.maxAbsErr.toExponential(2)} (max|ref| ${c.maxAbsRef.toFixed(2)})`);
  expect(c.ok, c.report).toBe(true);
}

describe('channel chunks', () => {
  it('chunks hold whole groups, cover the channels in order and fit the binding', () => {
    const limits = { binding: 4096, buffer: 1 << 20 };
    // 24 channels of 2·8·8 f32 = 512 bytes each: 8 fit, but chunks hold whole 3-channel groups.
    expect(chunkStarts([2, 24, 8, 8], 'f32', limits, 8)).toEqual([0, 6, 12, 18]);
    expect(chunkStarts([2, 24, 8, 8], 'f32', { ...limits, binding: 24 * 512 }, 8)).toEqual([0]);
    // 20 channels in groups of 2, at most 8 per chunk: three chunks.
    expect(chunkStarts([2, 20, 8, 8], 'f32', limits, 10)).toEqual([0, 8, 16]);
    expect(() => chunkStarts([2, 32, 8, 8], 'f32', limits, 2)).toThrow(/one group of 16 channels/);
  });

  it('a chunked resnet-style sequence (norm+SiLU, 3x3 conv with time embedding and residual, upsample, stride) equals the plain kernels', async () => {
    const rt = await runtime();
    const [B, C, H, W] = [2, 8, 12, 12];
    const x = input(rt, randn(B * C * H * W, 1), [B, C, H, W], 'x');
    const gamma = input(rt, randn(C, 2, 0.5).map((v) => v + 1), [C], 'gamma');
    const beta = input(rt, randn(C, 3, 0.5), [C], 'beta');
    const Cout = 16;
    const w1 = input(rt, randn(Cout * C * 9, 4, 0.2), [Cout, C, 3, 3], 'w1');
    const b1 = input(rt, randn(Cout, 5, 0.2), [Cout], 'b1');
    const ws = input(rt, randn(Cout * C, 6, 0.3), [Cout, C, 1, 1], 'ws');
    const bs = input(rt, randn(Cout, 7, 0.2), [Cout], 'bs');
    const temb = input(rt, randn(B * Cout, 12, 0.5), [B, Cout], 'temb');
    const wu = input(rt, randn(Cout * Cout * 9, 8, 0.2), [Cout, Cout, 3, 3], 'wu');
    const bu = input(rt, randn(Cout, 9, 0.2), [Cout], 'bu');
    const wd = input(rt, randn(4 * Cout * 9, 10, 0.2), [4, Cout, 3, 3], 'wd');
    const bd = input(rt, randn(4, 11, 0.2), [4], 'bd');
    const norm = { weight: gamma, bias: beta };
    const owned: GPUBuffer[] = [];
    const slices = new WeightSlices(rt, (b) => owned.push(b));

    const plain = new Graph(rt, 'plain');
    const n = groupNorm(plain, 'n', x, gamma, beta, { groups: 4, eps: 1e-6, silu: true });
    const s = conv2d(plain, 's', x, ws, { bias: bs });
    const h = conv2d(plain, 'c1', n, w1, { bias: b1, temb, padding: 1, residual: s, scale: 0.5 });
    const u = conv2d(plain, 'up', h, wu, { bias: bu, padding: 1, upsample: true, silu: true });
    const d = conv2d(plain, 'down', u, wd, { bias: bd, stride: 2, padding: [0, 0, 1, 1] });
    const [nRef, hRef, uRef, dRef] = await runAndRead(rt, plain, [n, h, u, d]);

    // 10 KiB bindings: x (2·8·12·12 floats) and every weight slice fit; 16 channels at 12×12 take
    // 2 chunks, at 24×24 eight (2 channels each, so the norm after it must have 2-channel groups).
    await lowLimits(10240);
    const g = new Graph(rt, 'split');
    const ns = splitGroupNorm(g, slices, 'n', single(x), norm, { groups: 4, eps: 1e-6, silu: true });
    const ss = splitConv(g, slices, 's', single(x), { weight: ws, bias: bs }, { groups: 4 });
    // Each of its two output chunks adds its own half of the time embedding's columns.
    const hs = splitConv(g, slices, 'c1', ns, { weight: w1, bias: b1 }, { groups: 4, padding: 1, temb, residual: ss, scale: 0.5 });
    const us = splitConv(g, slices, 'up', hs, { weight: wu, bias: bu }, { groups: 8, padding: 1, upsample: true, silu: true });
    const ds = splitConv(g, slices, 'down', us, { weight: wd, bias: bd }, { groups: 2, stride: 2, padding: [0, 0, 1, 1] });
    expect(hs.parts.length).toBe(2);
    expect(us.parts.length).toBe(8);
    expect(ds.parts.length).toBe(1);
    const [nGot, hGot, uGot, dGot] = await runAndRead(rt, g, [ns, hs, us, ds]);
    expect(g.stats.maxBindingBytes).toBeLessThanOrEqual(10240);
    expectClose(nGot!, nRef!, 'norm');
    expectClose(hGot!, hRef!, 'conv + time embedding + residual + scale');
    expectClose(uGot!, uRef!, 'upsample conv + silu');
    expectClose(dGot!, dRef!, 'strided conv over chunks');
    for (const b of owned) rt.destroyBuffer(b);
  });

  // A bias or a norm's weights is sliced per output chunk as whole rows of one value: 2 bytes in
  // f16, which the slicer once refused ("slice rows of 2 bytes are not whole 4-byte words").
  it('f16: a chunked conv and norm (bias and norm weights sliced per chunk, an odd-sized last chunk) equal the plain kernels', async (ctx) => {
    const rt = await runtime();
    if (!hasF16(rt)) {
      console.warn(`skipped: the adapter (${rt.gpu.adapterName}) has no shader-f16`);
      ctx.skip();
    }
    const [B, C, H, W, Cout] = [2, 2, 6, 6, 9];
    const f16 = (data: Float32Array, shape: number[], label: string) => input(rt, data, shape, label, 'f16');
    const x = f16(randn(B * C * H * W, 21), [B, C, H, W], 'x');
    const conv = { weight: f16(randn(Cout * C * 9, 22, 0.3), [Cout, C, 3, 3], 'w'), bias: f16(randn(Cout, 23, 0.5), [Cout], 'b') };
    const norm = { weight: f16(randn(Cout, 24, 0.5).map((v) => v + 1), [Cout], 'gamma'), bias: f16(randn(Cout, 25, 0.5), [Cout], 'beta') };
    const owned: GPUBuffer[] = [];
    const slices = new WeightSlices(rt, (b) => owned.push(b));
    // The f16 bits as stored, widened here (a cast on the GPU would pass the lowered binding limit).
    const read = async (g: Graph, ts: Tensor[]) => {
      g.finalize();
      g.submit();
      await rt.assertHealthy();
      const out: Float32Array[] = [];
      for (const t of ts) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        const raw = await rt.read(t.buffer, Math.ceil(n / 2) * 4);
        out.push(fromF16Array(new Uint16Array(raw.buffer, raw.byteOffset, n)));
      }
      g.destroy();
      return out;
    };
    const plain = new Graph(rt, 'plain');
    const h = conv2d(plain, 'c', x, conv.weight, { bias: conv.bias, padding: 1 });
    const n = groupNorm(plain, 'n', h, norm.weight, norm.bias, { groups: 3, eps: 1e-5, silu: true });
    const [hRef, nRef] = await read(plain, [h, n]);

    // 900-byte bindings: x (576 bytes) is whole; the [2, 9, 6, 6] output (144 bytes a channel)
    // takes 6 channels (two 3-channel groups, started at an even channel) and then 3.
    await lowLimits(900);
    const g = new Graph(rt, 'split');
    const hs = splitConv(g, slices, 'c', single(x), conv, { groups: 3, padding: 1 });
    const ns = splitGroupNorm(g, slices, 'n', hs, norm, { groups: 3, eps: 1e-5, silu: true });
    expect(hs.starts).toEqual([0, 6]);
    const got = await read(g, [...hs.parts, ...ns.parts]);
    const whole = (parts: Float32Array[]) => {
      const out = new Float32Array(B * Cout * H * W);
      parts.forEach((p, k) => {
        const c = hs.parts[k]!.shape[1]!;
        for (let b = 0; b < B; b++) out.set(p.subarray(b * c * H * W, (b + 1) * c * H * W), (b * Cout + hs.starts[k]!) * H * W);
      });
      return out;
    };
    // Each chunk is the plain f16 kernel on its channels: the same values, bit for bit.
    expect(Array.from(whole(got.slice(0, 2)))).toEqual(Array.from(hRef!));
    expect(Array.from(whole(got.slice(2)))).toEqual(Array.from(nRef!));
    for (const b of owned) rt.destroyBuffer(b);
  });
});

describe('WeightSlices.refresh', () => {
  it('copies every slice of a weight again after the weight changed on the GPU (a merged LoRA), and only then', async () => {
    const rt = await runtime();
    const { readTensor, uploadTensor } = await import('../../src/kernels/cast.ts');
    const w = uploadTensor(rt, Float32Array.from({ length: 4 * 6 }, (_, i) => i), [4, 6], 'w');
    const slices = new WeightSlices(rt, () => {});
    const rows = slices.slice(w, 1, 3);
    const cols = slices.slice(w, 0, 4, 2, 5);
    const changed = Float32Array.from({ length: 4 * 6 }, (_, i) => 100 + i);
    rt.device.queue.writeBuffer(w.buffer, 0, changed);
    expect(Array.from(await readTensor(rt, rows))).toEqual(Array.from({ length: 12 }, (_, i) => 6 + i));
    slices.refresh(w);
    expect(Array.from(await readTensor(rt, rows))).toEqual(Array.from({ length: 12 }, (_, i) => 106 + i));
    expect(Array.from(await readTensor(rt, cols))).toEqual([0, 1, 2, 3].flatMap((o) => [2, 3, 4].map((c) => 100 + o * 6 + c)));
    expect(slices.slice(w, 1, 3)).toBe(rows);
    rt.destroyBuffer(w.buffer);
  });
});
