import { embeddingLookup, embeddingLookupAt, gaussianFourierProjection, timestepEmbedding } from '../../src/kernels/embedding.ts';
import { embeddingLookupRef, gaussianFourierRef, timestepEmbeddingRef } from '../ref/embedding.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { activationsBesideWeights, weight } from '../helpers/weights.ts';
import { F32, type OpCase } from './cases.ts';

// sin/cos of arguments up to ~1000 rad, after exact-frequency range reduction.
const TRIG = { atol: 2e-6, rtol: 0, why: 'sin/cos of f32 arguments up to ~1000 rad: range reduction and polynomial, ~1e-7 each' };

const steps = [0, 1, 999, 981, 500.5, 37, 250];

interface Row { dim: number; flip: boolean; shift: number; scale?: number; maxPeriod?: number; broadcast?: boolean }

const rows: Row[] = [32, 64, 128, 33].flatMap((dim) =>
  [false, true].flatMap((flip) => [0, 1].map((shift) => ({ dim, flip, shift }))),
);
rows.push(
  // UNet2DModel-style (320 channels, flip, shift 0) and extras: scale, max_period, broadcast.
  { dim: 320, flip: true, shift: 0 },
  { dim: 64, flip: false, shift: 1, scale: 1000 / 999 },
  { dim: 32, flip: true, shift: 0, maxPeriod: 1000 },
  { dim: 64, flip: true, shift: 1, broadcast: true },
  { dim: 1, flip: false, shift: 0 },
);

const timestepCases: OpCase[] = rows.map((r) => ({
  op: 'timestep_embedding',
  name: `dim ${r.dim} flip ${r.flip} shift ${r.shift}${r.scale ? ` scale ${r.scale.toFixed(4)}` : ''}${r.maxPeriod ? ` max_period ${r.maxPeriod}` : ''}${r.broadcast ? ' broadcast' : ''}`,
  ...TRIG,
  async run(rt) {
    const opts = { flipSinToCos: r.flip, downscaleFreqShift: r.shift, scale: r.scale, maxPeriod: r.maxPeriod, broadcast: r.broadcast };
    const ts = r.broadcast ? [981] : steps;
    const got = await runGraph(rt, (g) => timestepEmbedding(g, 'temb', input(rt, ts, [ts.length]), steps.length, r.dim, opts));
    const ref = timestepEmbeddingRef(r.broadcast ? steps.map(() => ts[0]!) : ts, r.dim, opts);
    return { got, ref };
  },
}));

const lookupCases: OpCase[] = [
  { num: 10, dim: 16, ids: [0, 9, 3, 3] },
  { num: 1000, dim: 33, ids: [999, 0, 512] },
  // ids past the table are clamped rather than read out of bounds
  { num: 5, dim: 8, ids: [7, 4, 0xffffffff] },
].map((r, i) => ({
  op: 'embedding_lookup',
  name: `table [${r.num},${r.dim}] ids ${r.ids.join(',')}`,
  ...F32,
  async run(rt) {
    const table = randn(r.num * r.dim, 1100 + i);
    const ids = { buffer: rt.upload(Uint32Array.from(r.ids), 'ids'), shape: [r.ids.length], label: 'ids' };
    const got = await runGraph(rt, (g) => embeddingLookup(g, 'emb', weight(rt, table, [r.num, r.dim]), ids, activationsBesideWeights()));
    return { got, ref: embeddingLookupRef(table, r.num, r.dim, r.ids) };
  },
}));

// nn.Embedding over f32 timesteps (UNet2DModel's learned time embedding): integral values, one
// broadcast, values truncated as .long() does, and values past the table clamped.
const lookupAtRows: { num: number; dim: number; t: number[]; batch?: number; broadcast?: boolean }[] = [
  { num: 1000, dim: 32, t: [999, 0, 500, 37] },
  { num: 50, dim: 7, t: [12], batch: 3, broadcast: true },
  { num: 10, dim: 4, t: [2.75, 9.5, 12, -1] },
];
const lookupAtCases: OpCase[] = lookupAtRows.map((r, i) => ({
  op: 'embedding_lookup',
  name: `table [${r.num},${r.dim}] at f32 ${r.t.join(',')}${r.broadcast ? ' broadcast' : ''}`,
  ...F32,
  async run(rt) {
    const table = randn(r.num * r.dim, 1120 + i);
    const batch = r.batch ?? r.t.length;
    const got = await runGraph(rt, (g) => embeddingLookupAt(g, 'emb', weight(rt, table, [r.num, r.dim]), input(rt, r.t, [r.t.length], 'timesteps', 'f32'), batch, r.broadcast, activationsBesideWeights()));
    const ids = Array.from({ length: batch }, (_, b) => Math.max(0, Math.trunc(r.t[r.broadcast ? 0 : b]!)));
    return { got, ref: embeddingLookupRef(table, r.num, r.dim, ids) };
  },
}));

// GaussianFourierProjection(scale 16, log) of sigma-like timesteps: ln t · w · 2π reaches ~1500 rad
// here. Measured 6e-8 on lavapipe (precise_math's ln gave the reference's float32 ln); the bound lets
// ln t differ by 1 ulp (its division may be 2.5 ulp on other adapters), ~5e-7 at ln t ~ 6, which
// |2π·w| <= ~300 turns into ~1.5e-4 rad.
const FOURIER = { atol: 5e-4, rtol: 0, why: 'ln t may differ from the reference by 1 ulp, times |2πw| up to ~300 (measured 6e-8 on lavapipe)' };
const fourierRows: { dim: number; t: number[]; flip?: boolean; broadcast?: boolean; batch?: number }[] = [
  { dim: 16, t: [0.01, 0.37, 1, 48.5, 348] },
  // A width whose f32 buffer is padded to 16 bytes: the projection must take its shape, not the buffer's size.
  { dim: 6, t: [3.5, 0.2] },
  { dim: 64, t: [999, 2.5], flip: true },
  { dim: 8, t: [17.25], broadcast: true, batch: 3 },
];
const fourierCases: OpCase[] = fourierRows.map((r, i) => ({
  op: 'gaussian_fourier',
  name: `dim ${r.dim} t ${r.t.join(',')}${r.flip ? ' flip' : ''}${r.broadcast ? ' broadcast' : ''}`,
  ...FOURIER,
  async run(rt) {
    const w = Float32Array.from(randn(r.dim, 1130 + i), (v) => v * 16);
    const batch = r.batch ?? r.t.length;
    const proj = input(rt, w, [r.dim], 'fourier-w', 'f32');
    try {
      const got = await runGraph(rt, (g) => gaussianFourierProjection(g, 'fourier', input(rt, r.t, [r.t.length], 'timesteps', 'f32'), batch, proj, { flipSinToCos: r.flip, broadcast: r.broadcast }));
      const ts = Array.from({ length: batch }, (_, b) => r.t[r.broadcast ? 0 : b]!);
      return { got, ref: gaussianFourierRef(ts, w, r.flip) };
    } finally {
      rt.destroyBuffer(proj.buffer);
    }
  },
}));

export const embeddingCases: OpCase[] = [...timestepCases, ...lookupCases, ...lookupAtCases, ...fourierCases];
