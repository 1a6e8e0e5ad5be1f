import { conv2d, linear } from '../../src/kernels/gemm.ts';
import { setLoraAttachment, type LoraAttachment } from '../../src/kernels/lora_attach.ts';
import { conv2dRef, linearRef, loraTermRef } from '../ref/gemm.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import type { Tensor } from '../../src/graph/tensor.ts';
import { input, randn, runGraph, withGemmFeed } from '../helpers/gpu.ts';
import { weight } from '../helpers/weights.ts';
import { F32, type OpCase } from './cases.ts';
import { maybeActRef, type ActName } from '../ref/elementwise.ts';

const linearShapes: [number, number, number, number][] = [
  // B, M, K, N
  [1, 1, 32, 128],
  [2, 5, 7, 3],
  [2, 64, 64, 64],
  [3, 67, 33, 70],
  [1, 256, 128, 128],
  // past one 128 x 128 tile of the tiled feed in both dimensions, K not a multiple of its 16-deep slices
  [2, 150, 45, 140],
  // long K in the tiled feed's K splits, the last slice short (K = 300: 80 + 80 + 80 + 60)
  [2, 37, 300, 50],
];

// No activation, the silu flag, and on the first three shapes the other act_fn activations by name.
type Act = boolean | ActName;
const linearCases: OpCase[] = linearShapes.flatMap(([B, M, K, N], i) =>
  (i < 3 ? [false, true, 'mish', 'gelu', 'relu'] as Act[] : [false, true]).map((silu) => ({
    op: 'linear',
    name: `B${B} M${M} K${K} N${N}${silu === true ? ' +silu' : silu ? ` +${silu}` : ''} +bias +residual`,
    ...F32,
    async run(rt) {
      const x = randn(B * M * K, 10 + i);
      const w = randn(N * K, 20 + i, 0.3);
      const bias = randn(N, 30 + i);
      const res = randn(B * M * N, 40 + i);
      const got = await runGraph(rt, (g) =>
        linear(g, 'lin', input(rt, x, [B, M, K]), weight(rt, w, [N, K]), {
          bias: weight(rt, bias, [N]),
          residual: input(rt, res, [B, M, N]),
          scale: 0.5,
          ...(typeof silu === 'string' ? { act: silu } : { silu }),
        }),
      );
      const ref = linearRef(x, w, bias, B, M, K, N).map((v, j) => {
        const y = (v + res[j]!) * 0.5;
        return maybeActRef(silu, y);
      });
      return { got, ref };
    },
  })),
);

/** x laid out NCHW, projected over channels and written back NCHW (attention projections). */
const channelCases: OpCase[] = [
  [1, 8, 4, 4, 8],
  [2, 5, 3, 7, 6],
  // K split in the tiled feed, the slices summed into a channel-major output
  [1, 160, 4, 4, 24],
].map(([B, C, H, W, N], i) => ({
  op: 'linear',
  name: `channels-in/out B${B} C${C} ${H}x${W} N${N}`,
  ...F32,
  async run(rt) {
    const T = H! * W!;
    const x = randn(B! * C! * T, 50 + i);
    const w = randn(N! * C!, 60 + i, 0.3);
    const got = await runGraph(rt, (g) => linear(g, 'proj', input(rt, x, [B!, C!, H!, W!]), weight(rt, w, [N!, C!]), { input: 'channels', output: 'channels', outShape: [B!, N!, H!, W!] }));
    const ref = new Float64Array(B! * N! * T);
    for (let b = 0; b < B!; b++)
      for (let n = 0; n < N!; n++)
        for (let t = 0; t < T; t++) {
          let s = 0;
          for (let c = 0; c < C!; c++) s += x[(b * C! + c) * T + t]! * w[n * C! + c]!;
          ref[(b * N! + n) * T + t] = s;
        }
    return { got, ref };
  },
}));

interface ConvRow { B: number; Cin: number; H: number; W: number; Cout: number; k: number; stride: number; pad: number | [number, number, number, number]; upsample?: boolean | [number, number]; temb?: boolean; relu?: boolean; act?: ActName }

const convRows: ConvRow[] = [
  { B: 1, Cin: 4, H: 8, W: 8, Cout: 32, k: 3, stride: 1, pad: 1 },
  { B: 2, Cin: 3, H: 7, W: 5, Cout: 5, k: 3, stride: 1, pad: 1, temb: true },
  { B: 2, Cin: 6, H: 9, W: 9, Cout: 7, k: 1, stride: 1, pad: 0 },
  { B: 1, Cin: 8, H: 8, W: 8, Cout: 8, k: 3, stride: 2, pad: 1 },
  { B: 2, Cin: 5, H: 9, W: 7, Cout: 6, k: 3, stride: 2, pad: 1 },
  // diffusers' Downsample2D with padding=0 pads (0, 1, 0, 1) before a stride-2 conv
  { B: 1, Cin: 8, H: 8, W: 8, Cout: 8, k: 3, stride: 2, pad: [0, 0, 1, 1] },
  { B: 2, Cin: 4, H: 7, W: 7, Cout: 3, k: 3, stride: 2, pad: [0, 0, 1, 1] },
  { B: 1, Cin: 6, H: 4, W: 5, Cout: 5, k: 3, stride: 1, pad: 1, upsample: true },
  // A U-Net upsampling to an odd skip's size (diffusers' upsample_size): 2H - 1 and 2W - 1
  { B: 2, Cin: 6, H: 3, W: 4, Cout: 5, k: 3, stride: 1, pad: 1, upsample: [5, 7] },
  { B: 1, Cin: 4, H: 4, W: 3, Cout: 6, k: 3, stride: 1, pad: 1, upsample: [7, 6] },
  { B: 1, Cin: 64, H: 16, W: 16, Cout: 64, k: 3, stride: 1, pad: 1 },
  // more than one 128-row and 128-column tile, K = 19·9
  { B: 2, Cin: 19, H: 12, W: 11, Cout: 133, k: 3, stride: 1, pad: 1 },
  // TAESD: conv + ReLU, and the block's final conv + skip then ReLU
  { B: 2, Cin: 5, H: 7, W: 6, Cout: 9, k: 3, stride: 1, pad: 1, relu: true },
  { B: 1, Cin: 64, H: 8, W: 8, Cout: 64, k: 3, stride: 1, pad: 1, relu: true },
  // act_fn other than SiLU in the epilogue (TAESD blocks, any activation by name)
  { B: 2, Cin: 5, H: 7, W: 6, Cout: 9, k: 3, stride: 1, pad: 1, temb: true, act: 'mish' },
  { B: 1, Cin: 6, H: 4, W: 5, Cout: 5, k: 3, stride: 1, pad: 1, upsample: true, act: 'gelu' },
  { B: 1, Cin: 8, H: 8, W: 8, Cout: 8, k: 3, stride: 2, pad: 1, act: 'silu' },
  // K splits (tiled feed) under the whole epilogue, the time embedding included, and with upsampling
  { B: 2, Cin: 32, H: 6, W: 5, Cout: 12, k: 3, stride: 1, pad: 1, temb: true, act: 'silu' },
  { B: 1, Cin: 16, H: 4, W: 4, Cout: 8, k: 3, stride: 1, pad: 1, upsample: true },
];

const convCases: OpCase[] = convRows.map((r, i) => ({
  op: 'conv2d',
  name: `B${r.B} ${r.Cin}->${r.Cout} ${r.H}x${r.W} k${r.k} s${r.stride} pad ${JSON.stringify(r.pad)}${r.upsample === true ? ' up2x' : r.upsample ? ` up to ${r.upsample.join('x')}` : ''}${r.temb ? ' +temb' : ''} +bias +residual${r.relu ? ' +relu' : ''}${r.act ? ` +${r.act}` : ''}`,
  ...F32,
  async run(rt) {
    const pad: [number, number, number, number] = typeof r.pad === 'number' ? [r.pad, r.pad, r.pad, r.pad] : r.pad;
    const x = randn(r.B * r.Cin * r.H * r.W, 70 + i);
    const w = randn(r.Cout * r.Cin * r.k * r.k, 80 + i, 0.2);
    const bias = randn(r.Cout, 90 + i);
    const tembData = randn(r.B * r.Cout, 95 + i);
    const { out, Hout, Wout } = conv2dRef(x, w, bias, { B: r.B, Cin: r.Cin, H: r.H, W: r.W, Cout: r.Cout, kh: r.k, kw: r.k, stride: r.stride, pad, upsample: r.upsample });
    const res = randn(out.length, 99 + i);
    const plane = Hout * Wout;
    const ref = out.map((v, j) => {
      const bc = Math.floor(j / plane);
      const y = v + (r.temb ? tembData[bc]! : 0) + res[j]!;
      return maybeActRef(r.relu ? 'relu' : r.act, y);
    });
    const got = await runGraph(rt, (g) =>
      conv2d(g, 'conv', input(rt, x, [r.B, r.Cin, r.H, r.W]), weight(rt, w, [r.Cout, r.Cin, r.k, r.k]), {
        bias: weight(rt, bias, [r.Cout]),
        temb: r.temb ? input(rt, tembData, [r.B, r.Cout]) : undefined,
        residual: input(rt, res, [r.B, r.Cout, Hout, Wout]),
        stride: r.stride,
        padding: pad,
        upsample: r.upsample,
        relu: r.relu,
        act: r.act,
      }),
    );
    return { got, ref };
  },
}));

/**
 * An unfused LoRA attached to `w` for the duration of `fn` (down uploaded as a weight, so the
 * f16-weight rows store it in f16 too; up always f32); `fn` must apply it exactly once.
 */
async function withLora<T>(rt: Runtime, w: Tensor, down: Float32Array, downShape: number[], up: Float32Array, fn: () => Promise<T>): Promise<T> {
  const a: LoraAttachment = { down: weight(rt, down, downShape, 'lora down'), up: input(rt, up, [w.shape[0]!, downShape[0]!], 'lora up', 'f32'), what: 'test LoRA', uses: 0, own: () => {}, disown: () => {} };
  setLoraAttachment(w, a);
  try {
    const out = await fn();
    if (a.uses !== 1) throw new Error(`the attached LoRA was applied ${a.uses} times, not once`);
    return out;
  } finally {
    setLoraAttachment(w, null);
  }
}

// Unfused LoRA (the LORA epilogue): t = x·downᵀ by the GEMM, then sum_r t·up in the main GEMM's
// epilogue before bias, residual, scale and activation. Row-major, the tiled feed's K splits (the
// term added once, in the reduce), and input or output channel-major (Transformer2D's proj_in and
// proj_out).
const loraLinearRows: { B: number; M: number; K: number; N: number; R: number; input?: 'rows' | 'channels'; output?: 'rows' | 'channels'; silu?: boolean; note?: string }[] = [
  { B: 2, M: 5, K: 7, N: 3, R: 1 },
  { B: 3, M: 67, K: 33, N: 70, R: 4, silu: true },
  { B: 2, M: 37, K: 300, N: 50, R: 3, note: 'K split when tiled' },
  { B: 2, M: 12, K: 24, N: 20, R: 5, input: 'channels', output: 'rows' },
  { B: 1, M: 16, K: 160, N: 24, R: 6, input: 'channels', output: 'channels' },
  { B: 2, M: 9, K: 40, N: 33, R: 2, output: 'channels' },
];

const loraLinearCases: OpCase[] = loraLinearRows.map((r, i) => ({
  op: 'linear',
  name: `LoRA rank ${r.R} B${r.B} M${r.M} K${r.K} N${r.N} in ${r.input ?? 'rows'} out ${r.output ?? 'rows'}${r.silu ? ' +silu' : ''} +bias +residual${r.note ? ` (${r.note})` : ''}`,
  ...F32,
  async run(rt) {
    const { B, M, K, N, R } = r;
    const inCh = r.input === 'channels';
    const outCh = r.output === 'channels';
    // x as the GEMM reads it ([B, M, K]) and as uploaded ([B, K, M] for channel-major input).
    const xRows = randn(B * M * K, 1600 + i);
    const xUp = inCh ? transposeRows(xRows, B, M, K) : xRows;
    const w = randn(N * K, 1610 + i, 0.3);
    const bias = randn(N, 1620 + i);
    const down = randn(R * K, 1630 + i, 0.3);
    const up = randn(N * R, 1640 + i, 0.5);
    const resRows = randn(B * M * N, 1650 + i);
    const main = linearRef(xRows, w, bias, B, M, K, N);
    const term = loraTermRef(linearRef(xRows, down, null, B, M, K, R), up, B, M, R, N, 'rows');
    const refRows = main.map((v, j) => maybeActRef(r.silu ?? false, (v + term[j]! + resRows[j]!) * 0.5));
    const ref = outCh ? transposeRows(refRows, B, M, N) : refRows;
    const res = outCh ? transposeRows(resRows, B, M, N) : resRows;
    const outShape = outCh ? [B, N, M] : [B, M, N];
    const wt = weight(rt, w, [N, K]);
    const got = await withLora(rt, wt, down, [R, K], up, () =>
      runGraph(rt, (g) =>
        linear(g, 'lin', input(rt, xUp, inCh ? [B, K, M] : [B, M, K]), wt, {
          bias: weight(rt, bias, [N]),
          residual: input(rt, res, outShape),
          scale: 0.5,
          silu: r.silu,
          input: r.input,
          output: r.output,
          outShape,
        }),
      ),
    );
    return { got, ref };
  },
}));

/** [B, M, N] -> [B, N, M] */
function transposeRows<T extends Float32Array | Float64Array>(a: T, B: number, M: number, N: number): T {
  const out = new (a.constructor as { new (n: number): T })(a.length);
  for (let b = 0; b < B; b++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) out[(b * N + n) * M + m] = a[(b * M + m) * N + n]!;
  return out;
}

// conv2d with an unfused LoRA: down [R, Cin, kh, kw] is a conv of its own with the same stride,
// padding and upsampling (t channel-major, [B, R, Hout, Wout]), up a 1x1 conv folded into the epilogue.
const loraConvRows: (ConvRow & { R: number; note?: string })[] = [
  { B: 2, Cin: 3, H: 7, W: 5, Cout: 5, k: 3, stride: 1, pad: 1, temb: true, R: 2 },
  { B: 2, Cin: 5, H: 9, W: 7, Cout: 6, k: 3, stride: 2, pad: 1, R: 3 },
  { B: 1, Cin: 8, H: 8, W: 8, Cout: 8, k: 3, stride: 2, pad: [0, 0, 1, 1], R: 1 },
  { B: 2, Cin: 6, H: 3, W: 4, Cout: 5, k: 3, stride: 1, pad: 1, upsample: [5, 7], R: 4 },
  { B: 1, Cin: 6, H: 4, W: 5, Cout: 5, k: 3, stride: 1, pad: 1, upsample: true, act: 'silu', R: 2 },
  { B: 2, Cin: 6, H: 9, W: 9, Cout: 7, k: 1, stride: 1, pad: 0, R: 3 },
  // K split (tiled feed) under the whole epilogue: the term joins the slices' sum in the reduce
  { B: 2, Cin: 32, H: 6, W: 5, Cout: 12, k: 3, stride: 1, pad: 1, temb: true, act: 'silu', R: 8, note: 'K split when tiled' },
];

const loraConvCases: OpCase[] = loraConvRows.map((r, i) => ({
  op: 'conv2d',
  name: `LoRA rank ${r.R} B${r.B} ${r.Cin}->${r.Cout} ${r.H}x${r.W} k${r.k} s${r.stride} pad ${JSON.stringify(r.pad)}${r.upsample === true ? ' up2x' : r.upsample ? ` up to ${r.upsample.join('x')}` : ''}${r.temb ? ' +temb' : ''} +bias +residual${r.act ? ` +${r.act}` : ''}${r.note ? ` (${r.note})` : ''}`,
  ...F32,
  async run(rt) {
    const pad: [number, number, number, number] = typeof r.pad === 'number' ? [r.pad, r.pad, r.pad, r.pad] : r.pad;
    const x = randn(r.B * r.Cin * r.H * r.W, 1700 + i);
    const w = randn(r.Cout * r.Cin * r.k * r.k, 1710 + i, 0.2);
    const bias = randn(r.Cout, 1720 + i);
    const tembData = randn(r.B * r.Cout, 1730 + i);
    const down = randn(r.R * r.Cin * r.k * r.k, 1740 + i, 0.3);
    const up = randn(r.Cout * r.R, 1750 + i, 0.5);
    const geom = { B: r.B, Cin: r.Cin, H: r.H, W: r.W, Cout: r.Cout, kh: r.k, kw: r.k, stride: r.stride, pad, upsample: r.upsample };
    const { out, Hout, Wout } = conv2dRef(x, w, bias, geom);
    const t = conv2dRef(x, down, null, { ...geom, Cout: r.R }).out;
    const plane = Hout * Wout;
    const term = loraTermRef(t, up, r.B, plane, r.R, r.Cout, 'channels');
    const res = randn(out.length, 1760 + i);
    const ref = out.map((v, j) => maybeActRef(r.act, v + term[j]! + (r.temb ? tembData[Math.floor(j / plane)]! : 0) + res[j]!));
    const wt = weight(rt, w, [r.Cout, r.Cin, r.k, r.k]);
    const got = await withLora(rt, wt, down, [r.R, r.Cin, r.k, r.k], up, () =>
      runGraph(rt, (g) =>
        conv2d(g, 'conv', input(rt, x, [r.B, r.Cin, r.H, r.W]), wt, {
          bias: weight(rt, bias, [r.Cout]),
          temb: r.temb ? input(rt, tembData, [r.B, r.Cout]) : undefined,
          residual: input(rt, res, [r.B, r.Cout, Hout, Wout]),
          stride: r.stride,
          padding: pad,
          upsample: r.upsample,
          act: r.act,
        }),
      ),
    );
    return { got, ref };
  },
}));

/**
 * Every case under both feeds of the GEMM core (Runtime.gemmFeed), whichever one the adapter would
 * get; the tiled feed both with its tiles and K splits sized to the shape (what GPUs run) and with
 * 128 x 128 tiles over all of K (Runtime.gemmAdapt off).
 */
function bothFeeds(cases: OpCase[]): OpCase[] {
  const variants = [
    { name: 'direct', feed: 'direct', adapt: true },
    { name: 'tiled', feed: 'tiled', adapt: true },
    { name: 'tiled, whole K', feed: 'tiled', adapt: false },
  ] as const;
  return variants.flatMap((v) =>
    cases.map((c) => ({ ...c, name: `${c.name} [${v.name}]`, run: (rt: Runtime) => withGemmFeed(rt, v.feed, () => c.run(rt), v.adapt) })),
  );
}

export const gemmCases: OpCase[] = bothFeeds([...linearCases, ...channelCases, ...convCases, ...loraLinearCases, ...loraConvCases]);

/** The unfused-LoRA conv cases by name (the Winograd rows rerun the stride-1 3x3 ones). */
export const loraConvCasesByName: ReadonlyMap<string, OpCase> = new Map(loraConvCases.map((c) => [`${c.op}: ${c.name}`, c]));

/** The f32 cases by name (the interleaved-weight rows rerun a few of them). */
export const plainGemmCases: ReadonlyMap<string, OpCase> = new Map([...linearCases, ...channelCases, ...convCases].map((c) => [`${c.op}: ${c.name}`, c]));
