import { embeddingLookup, timestepEmbedding } from '../../src/kernels/embedding.ts';
import { embeddingLookupRef, timestepEmbeddingRef } from '../ref/embedding.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
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
    const got = await runGraph(rt, (g) => embeddingLookup(g, 'emb', input(rt, table, [r.num, r.dim]), ids));
    return { got, ref: embeddingLookupRef(table, r.num, r.dim, r.ids) };
  },
}));

export const embeddingCases: OpCase[] = [...timestepCases, ...lookupCases];
