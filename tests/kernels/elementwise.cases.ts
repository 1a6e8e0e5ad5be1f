import { activation, add, addScaledInto, affine, avgPool2x, concatChannels, divideBatch, firResample2x, geglu, maskBlend, scale, silu, tanhClamp, upsampleNearest2x, type Coefficient } from '../../src/kernels/elementwise.ts';
import { activationRef, addRef, addScaledRef, avgPool2Ref, concatChannelsRef, divideBatchRef, firResampleRef, gegluRef, maskBlendRef, siluRef, tanhClampRef, type ActName } from '../ref/elementwise.ts';
import { upsampleNearestRef } from '../ref/gemm.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { F32, type OpCase } from './cases.ts';

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

const siluCases: OpCase[] = [[2, 64, 8, 8], [3, 5, 7], [1], [1, 320, 16, 16]].map((shape, i) => ({
  op: 'silu',
  name: `[${shape.join(',')}]`,
  ...F32,
  async run(rt) {
    // Wide range: exp(-x) overflows to inf for x < -88, where silu must still give -0, not NaN.
    const x = randn(numel(shape), 500 + i, 100);
    return { got: await runGraph(rt, (g) => silu(g, 'silu', input(rt, x, shape))), ref: siluRef(x) };
  },
}));

// The other act_fn activations standalone (the same act() the norm and GEMM epilogues fuse): a
// wide range for the tails (Mish's exp cap past 20, GELU's erf tails) and a narrow one near 0.
const activationCases: OpCase[] = (['mish', 'gelu', 'relu'] as ActName[]).flatMap((act, a) =>
  ([[[2, 64, 8, 8], 30], [[3, 5, 7], 3]] as [number[], number][]).map(([shape, spread], i) => ({
    op: 'activation',
    name: `${act} [${shape.join(',')}] spread ${spread}`,
    ...F32,
    async run(rt) {
      const x = randn(numel(shape), 580 + 10 * a + i, spread);
      return { got: await runGraph(rt, (g) => activation(g, act, input(rt, x, shape), act)), ref: activationRef(act, x) };
    },
  })),
);

const scaleCases: OpCase[] = ([[[1, 4, 8, 8], 1 / 0.18215], [[3, 5, 7], -0.5]] as [number[], number][]).map(([shape, s], i) => ({
  op: 'scale',
  name: `[${shape.join(',')}] by ${s.toPrecision(6)}`,
  ...F32,
  async run(rt) {
    const x = randn(numel(shape), 550 + i);
    const got = await runGraph(rt, (g) => scale(g, 'scale', input(rt, x, shape), s));
    return { got, ref: Float64Array.from(x, (v) => v * Math.fround(s)) };
  },
}));

const tanhClampCases: OpCase[] = ([[[1, 4, 4, 4], 3, 1], [[3, 5, 7], 3, 300], [[2, 4, 9, 9], 0.5, 2]] as [number[], number, number][]).map(([shape, m, spread], i) => ({
  op: 'tanh_clamp',
  name: `[${shape.join(',')}] magnitude ${m} spread ${spread}`,
  ...F32,
  async run(rt) {
    // spread 300 drives |x / m| far past where a naive exp-based tanh overflows.
    const x = randn(numel(shape), 560 + i, spread);
    return { got: await runGraph(rt, (g) => tanhClamp(g, 'tanh_clamp', input(rt, x, shape), m)), ref: tanhClampRef(x, m) };
  },
}));

const affineCases: OpCase[] = ([[[1, 3, 8, 8], 0.5, 0.5], [[3, 5, 7], -2, 0.25]] as [number[], number, number][]).map(([shape, s, t], i) => ({
  op: 'affine',
  name: `[${shape.join(',')}] * ${s} + ${t}`,
  ...F32,
  async run(rt) {
    const x = randn(numel(shape), 570 + i);
    const got = await runGraph(rt, (g) => affine(g, 'affine', input(rt, x, shape), s, t));
    return { got, ref: Float64Array.from(x, (v) => v * s + t) };
  },
}));

const addCases: OpCase[] = ([[[2, 64, 8, 8], 1], [[3, 5, 7], Math.SQRT1_2], [[1, 1, 1, 1], 0.5]] as [number[], number][]).map(([shape, scale], i) => ({
  op: 'add',
  name: `[${shape.join(',')}] scale ${scale.toPrecision(4)}`,
  ...F32,
  async run(rt) {
    const a = randn(numel(shape), 600 + i);
    const b = randn(numel(shape), 700 + i);
    const got = await runGraph(rt, (g) => add(g, 'add', input(rt, a, shape), input(rt, b, shape), scale));
    return { got, ref: addRef(a, b, Math.fround(scale)) };
  },
}));

const concatCases: OpCase[] = [
  [[2, 3, 4, 5], [2, 5, 4, 5]],
  [[1, 64, 8, 8], [1, 32, 8, 8]],
  [[2, 3, 7], [2, 1, 7]],
  [[3, 1], [3, 2]],
].map(([sa, sb], i) => ({
  op: 'concat_channels',
  name: `[${sa!.join(',')}] + [${sb!.join(',')}]`,
  ...F32,
  async run(rt) {
    const a = randn(numel(sa!), 800 + i);
    const b = randn(numel(sb!), 900 + i);
    const got = await runGraph(rt, (g) => concatChannels(g, 'cat', input(rt, a, sa!), input(rt, b, sb!)));
    return { got, ref: concatChannelsRef(a, b, sa![0]!, numel(sa!) / sa![0]!, numel(sb!) / sb![0]!) };
  },
}));

const upsampleCases: OpCase[] = [[2, 3, 4, 5], [1, 64, 8, 8], [1, 1, 1, 1], [2, 3, 7, 1]].map((shape, i) => ({
  op: 'upsample_nearest2x',
  name: `[${shape.join(',')}]`,
  ...F32,
  async run(rt) {
    const [B, C, H, W] = shape as [number, number, number, number];
    const x = randn(numel(shape), 1000 + i);
    const got = await runGraph(rt, (g) => upsampleNearest2x(g, 'up', input(rt, x, shape)));
    return { got, ref: upsampleNearestRef(x, B, C, H, W) };
  },
}));

// Odd sizes drop the last row / column, as torch floors; [2,8,16,16] is a UNet2DModel level.
const avgPoolCases: OpCase[] = [[2, 3, 4, 6], [2, 8, 16, 16], [1, 2, 5, 7], [3, 1, 2, 2], [1, 4, 9, 2]].map((shape, i) => ({
  op: 'avg_pool2x',
  name: `[${shape.join(',')}]`,
  ...F32,
  async run(rt) {
    const [B, C, H, W] = shape as [number, number, number, number];
    const x = randn(numel(shape), 1050 + i);
    const got = await runGraph(rt, (g) => avgPool2x(g, 'pool', input(rt, x, shape)));
    return { got, ref: avgPool2Ref(x, B, C, H, W) };
  },
}));

// FIR (1, 3, 3, 1) resampling (NCSN++'s skip blocks): odd sizes (down floors, as upfirdn2d), 1-pixel
// planes (every tap but one outside), a 3-channel skip sample at NCSN++'s 2x levels, and wide planes.
const firRows: [number[], 'up' | 'down'][] = [
  [[2, 3, 8, 8], 'down'], [[2, 3, 8, 8], 'up'], [[1, 5, 7, 9], 'down'], [[1, 5, 7, 9], 'up'], [[3, 2, 2, 6], 'down'],
  [[2, 1, 1, 1], 'up'], [[1, 2, 1, 3], 'up'], [[2, 32, 16, 16], 'down'], [[2, 32, 16, 16], 'up'], [[1, 3, 2, 2], 'down'],
];
const firCases: OpCase[] = firRows.map(([shape, direction], i) => ({
  op: 'fir_resample2x',
  name: `${direction} [${shape.join(',')}]`,
  ...F32,
  async run(rt) {
    const [B, C, H, W] = shape as [number, number, number, number];
    const x = randn(numel(shape), 1070 + i);
    const got = await runGraph(rt, (g) => firResample2x(g, 'fir', input(rt, x, shape), direction));
    return { got, ref: firResampleRef(x, B, C, H, W, direction) };
  },
}));

// Divisors as the fourier U-Net sees them: timesteps (sigmas) from 0.01 to ~350, one per batch element or broadcast.
const divideBatchRows: [number[], number[], boolean][] = [
  [[2, 3, 4, 4], [0.37, 348.5], false],
  [[3, 5, 7], [1, 0.01, 12.25], false],
  [[4, 2, 3, 3], [48.5], true],
];
const divideBatchCases: OpCase[] = divideBatchRows.map(([shape, d, broadcast], i) => ({
  op: 'divide_batch',
  name: `[${shape.join(',')}] by ${d.join(',')}${broadcast ? ' broadcast' : ''}`,
  ...F32,
  async run(rt) {
    const x = randn(numel(shape), 1060 + i);
    const got = await runGraph(rt, (g) => divideBatch(g, 'div', input(rt, x, shape), input(rt, d, [d.length], 'divisors', 'f32'), broadcast));
    return { got, ref: divideBatchRef(x, shape[0]!, d.map(Math.fround), broadcast) };
  },
}));

const gegluCases: OpCase[] = [[2, 64, 256], [3, 5, 14], [1, 2], [2, 7, 2560]].map((shape, i) => ({
  op: 'geglu',
  name: `[${shape.join(',')}]`,
  ...F32,
  async run(rt) {
    // Gates over about ±12: both erf tails (gelu → 0 and gelu → x) must hold.
    const x = randn(numel(shape), 1100 + i, 4);
    const got = await runGraph(rt, (g) => geglu(g, 'geglu', input(rt, x, shape)));
    return { got, ref: gegluRef(x, shape[shape.length - 1]! / 2) };
  },
}));

// [x shape, known batch, mask kind]: the guidance layout (x holds 2 copies of the batch), odd
// planes, and a soft mask besides the binary ones the pipeline uses.
const maskBlendRows: [number[], number, 'binary' | 'soft'][] = [
  [[4, 4, 8, 8], 2, 'binary'],
  [[1, 4, 8, 8], 1, 'binary'],
  [[3, 5, 7, 3], 1, 'soft'],
  [[6, 3, 5, 5], 3, 'binary'],
];

const maskBlendCases: OpCase[] = maskBlendRows.map(([shape, B, kind], i) => ({
  op: 'mask_blend',
  name: `[${shape.join(',')}] known batch ${B} ${kind}`,
  ...F32,
  async run(rt) {
    const [, C, h, w] = shape as [number, number, number, number];
    const x = randn(numel(shape), 1150 + i);
    const known = randn(B * C * h * w, 1160 + i);
    const r = randn(B * h * w, 1170 + i);
    const mask = Float32Array.from(r, (v) => (kind === 'binary' ? (v > 0 ? 1 : 0) : 1 / (1 + Math.exp(-v))));
    const got = await runGraph(rt, (g) => {
      const xt = input(rt, x, shape, 'x');
      maskBlend(g, 'mask_blend', xt, input(rt, known, [B, C, h, w], 'known'), input(rt, mask, [B, 1, h, w], 'mask'));
      return xt;
    });
    return { got, ref: maskBlendRef(x, known, mask, C, h * w) };
  },
}));

// ControlNet residuals into U-Net skips, in place: a fixed scale, and a scale read from a step row
// at an offset (as the denoising loop reads each step's scale × keep), including 0 (a step outside
// control_guidance_start / end) and the SD 1.5 level-1 skip shape at 64x64 latents.
const addIntoRows: [number[], number, number | null][] = [
  [[2, 32, 8, 8], 1, null],
  [[3, 5, 7], 0.35, null],
  [[1, 1, 1, 1], -2.5, 0],
  [[2, 640, 32, 32], 0.75, 9],
  [[2, 4, 5, 5], 0, 3],
];

const addIntoCases: OpCase[] = addIntoRows.map(([shape, s, index], i) => ({
  op: 'add_scaled_into',
  name: `[${shape.join(',')}] scale ${s}${index === null ? '' : ` from row [${index}]`}`,
  ...F32,
  async run(rt) {
    const target = randn(numel(shape), 1180 + i);
    const x = randn(numel(shape), 1190 + i, 2);
    const got = await runGraph(rt, (g) => {
      const t = input(rt, target, shape, 'skip');
      let coef: Coefficient = s;
      if (index !== null) {
        const row = new Float32Array(index + 3).fill(NaN);
        row[index] = s;
        coef = { buffer: input(rt, row, [row.length], 'row', 'f32'), index };
      }
      addScaledInto(g, 'add_scaled_into', t, input(rt, x, shape, 'residual'), coef);
      return t;
    });
    return { got, ref: addScaledRef(target, x, Math.fround(s)) };
  },
}));

export const elementwiseCases: OpCase[] = [...addIntoCases, ...maskBlendCases, ...siluCases, ...activationCases, ...scaleCases, ...tanhClampCases, ...affineCases, ...addCases, ...concatCases, ...upsampleCases, ...avgPoolCases, ...firCases, ...divideBatchCases, ...gegluCases];
