// GEMM weights stored 'n4' (Tensor.layout: four output channels interleaved per k, N padded to a
// multiple of 4): the host reordering, the loader's choice at load time, and everything besides
// the GEMM core that touches such a weight's buffer (readback, LoRA merge, channel slices). The
// GEMM core's reads of it are op-table rows (weight_layout.cases.ts).
import { describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { Graph } from '../../src/graph/graph.ts';
import type { DType, Tensor } from '../../src/graph/tensor.ts';
import { toF16Array } from '../../src/io/f16.ts';
import type { HostTensor } from '../../src/io/safetensors.ts';
import { deinterleaveN4, interleaveN4 } from '../../src/io/weight_layout.ts';
import { WeightStore } from '../../src/io/weights.ts';
import { readTensor, uploadTensor } from '../../src/kernels/cast.ts';
import { loraMerge } from '../../src/kernels/lora_merge.ts';
import { chunkStarts, single, splitConv, WeightSlices } from '../../src/models/channel_split.ts';
import { conv2d } from '../../src/kernels/gemm.ts';
import { compare } from '../helpers/compare.ts';
import { runAndRead } from '../helpers/split.ts';
import { WeightLoader } from '../../src/models/loader.ts';
import { PlanLimitError } from '../../src/errors.ts';
import { hasF16, input, randn, runtime, withGemmFeed, withRuntime } from '../helpers/gpu.ts';
import { roundF16, runtimeWithoutF16 } from '../helpers/weights.ts';

/** values ([N, K] row-major) uploaded 'n4' in `dtype`. */
const uploadN4 = (rt: Runtime, values: Float32Array, shape: number[], dtype: DType): Tensor => uploadTensor(rt, values, shape, 'w', dtype, 'n4');

describe("'n4' weights", () => {
  it('interleave four output channels per k, N padded with zero rows, and back', () => {
    const N = 6;
    const K = 3;
    const v = Float32Array.from({ length: N * K }, (_, i) => i + 1);
    const out = new Float32Array(interleaveN4(new Uint8Array(v.buffer), N, K, 'f32').buffer);
    // (n, k) at ((n / 4)·K + k)·4 + n % 4
    expect(Array.from(out)).toEqual([1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12, 13, 16, 0, 0, 14, 17, 0, 0, 15, 18, 0, 0]);
    expect(Array.from(deinterleaveN4(out, N, K))).toEqual(Array.from(v));
    const h = toF16Array(v);
    const h4 = new Uint16Array(interleaveN4(new Uint8Array(h.buffer), N, K, 'f16').buffer);
    expect(Array.from(h4)).toEqual(Array.from(out).map((x) => (x === 0 ? 0 : h[x - 1]!)));
  });

  it('are what the loader makes of GEMM weights while the feed is direct, and only then', async () => {
    const rt = await runtime();
    const data = randn(5 * 3 * 3 * 3, 1);
    const tensors = new Map<string, HostTensor>([['conv.weight', { name: 'conv.weight', dtype: 'F32', shape: [5, 3, 3, 3], bytes: new Uint8Array(data.buffer) }]]);
    for (const [feed, layout] of [['direct', 'n4'], ['tiled', undefined]] as const) {
      const loader = new WeightLoader(rt, new WeightStore(tensors, 'test'));
      try {
        const w = await withGemmFeed(rt, feed, async () => loader.gemmWeight('conv.weight', [5, 3, 3, 3]));
        expect(w.layout).toBe(layout);
        expect(Array.from(await readTensor(rt, w))).toEqual(Array.from(data));
        if (layout) expect(w.buffer.size).toBeGreaterThanOrEqual(8 * 27 * 4);
      } finally {
        loader.destroy();
      }
    }
    const loader = new WeightLoader(rt, new WeightStore(tensors, 'test'));
    loader.gemmLayout = 'rows';
    try {
      expect(loader.sub('x').gemmLayout).toBe('rows');
      expect(await withGemmFeed(rt, 'direct', async () => loader.gemmWeight('conv.weight', [5, 3, 3, 3]).layout)).toBeUndefined();
    } finally {
      loader.destroy();
    }
  });

  it('take a LoRA merge at their own places (f32, packed f16, f16), the padding rows left zero', async () => {
    const N = 7;
    const K = 5;
    const w = randn(N * K, 2);
    const delta = randn(N * K, 3);
    const shared = await runtime();
    const cases: [string, Runtime, DType][] = [['f32', shared, 'f32'], ['packed f16', await runtimeWithoutF16(), 'f16']];
    if (hasF16(shared)) cases.push(['f16', shared, 'f16']);
    for (const [what, rt, dtype] of cases) {
      const t = uploadN4(rt, w, [N, K], dtype);
      const d = uploadTensor(rt, delta, [N, K], 'delta');
      const g = new Graph(rt, 'merge');
      loraMerge(g, 'merge', t, d, 0.5);
      g.finalize();
      g.submit('merge');
      await rt.assertHealthy();
      const base = dtype === 'f16' ? roundF16(w) : w;
      const want = base.map((x, i) => x + Math.fround(0.5 * delta[i]!));
      const got = await readTensor(rt, t);
      expect(Array.from(got), what).toEqual(Array.from(dtype === 'f16' ? roundF16(want) : want.map(Math.fround)));
      const stored = await readTensor(rt, { ...t, layout: undefined, shape: [8 * K] });
      for (let k = 0; k < K; k++) expect(stored[(K + k) * 4 + 3], `${what}: padding row at k ${k}`).toBe(0);
      g.destroy();
      for (const b of [t.buffer, d.buffer]) rt.destroyBuffer(b);
    }
  });

  it('are sliced by channel chunks in whole groups of four output channels', async () => {
    const rt = await runtime();
    const [Cout, Cin, inner] = [10, 3, 2];
    const v = Float32Array.from({ length: Cout * Cin * inner }, (_, i) => i);
    const at = (o: number, i: number, t: number) => v[(o * Cin + i) * inner + t]!;
    for (const dtype of ['f32', 'f16'] as const) {
      const w = uploadN4(rt, v, [Cout, Cin, inner, 1], dtype);
      const slices = new WeightSlices(rt, () => {});
      for (const [o0, o1, i0, i1] of [[4, 10, 1, 3], [0, 4, 0, 3], [4, 7, 0, 2], [8, 10, 2, 3]] as const) {
        const s = slices.slice(w, o0, o1, i0, i1);
        expect(s.layout).toBe('n4');
        const want: number[] = [];
        for (let o = o0; o < o1; o++) for (let i = i0; i < i1; i++) for (let t = 0; t < inner; t++) want.push(at(o, i, t));
        expect(Array.from(await readTensor(rt, s)), `${dtype} [${o0}:${o1}, ${i0}:${i1}]`).toEqual(want);
      }
      expect(() => slices.slice(w, 2, 6)).toThrow(PlanLimitError);
      rt.destroyBuffer(w.buffer);
    }
  });

  it('split a conv into channel chunks between groups of four output channels, whatever the norm groups', async () => {
    const rt = await runtime();
    // 2-channel groups would cut the 12 output channels at 6, inside a group of four.
    const limits = { binding: 6 * 64 * 4, buffer: 1 << 20 };
    expect(chunkStarts([1, 12, 8, 8], 'f32', limits, 6)).toEqual([0, 6]);
    expect(chunkStarts([1, 12, 8, 8], 'f32', limits, 6, 'f32', 'n4')).toEqual([0, 4, 8]);
    const wv = randn(12 * 3 * 9, 2, 0.3);
    const x = input(rt, randn(3 * 64, 1), [1, 3, 8, 8], 'x');
    const bias = input(rt, randn(12, 3), [12], 'bias');
    const rows = input(rt, wv, [12, 3, 3, 3], 'w');
    const plain = new Graph(rt, 'plain');
    const [ref] = await runAndRead(rt, plain, [conv2d(plain, 'c', x, rows, { bias, padding: 1 })]);
    const w = uploadN4(rt, wv, [12, 3, 3, 3], 'f32');
    const owned: GPUBuffer[] = [];
    try {
      await withRuntime(rt, { planLimits: limits }, async () => {
        const g = new Graph(rt, 'split');
        const out = splitConv(g, new WeightSlices(rt, (b) => owned.push(b)), 'c', single(x), { weight: w, bias }, { groups: 6, padding: 1 });
        expect(out.starts).toEqual([0, 4, 8]);
        const [got] = await runAndRead(rt, g, [out]);
        const c = compare(got!, ref!, 1e-5, 1e-5);
        expect(c.ok, c.report).toBe(true);
      });
    } finally {
      for (const b of [...owned, w.buffer]) rt.destroyBuffer(b);
    }
  });
});
