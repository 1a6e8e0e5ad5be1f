import { groupNorm, groupNormParts } from '../../src/kernels/group_norm.ts';
import type { Runtime } from '../../src/gpu/runtime.ts';
import { groupNormRef, groupNormSpatialRef } from '../ref/group_norm.ts';
import type { ActName } from '../ref/elementwise.ts';
import { input, randn, runGraph, withRuntime } from '../helpers/gpu.ts';
import { weight } from '../helpers/weights.ts';
import { F32, type OpCase } from './cases.ts';

interface Row { shape: number[]; groups: number; eps: number; offset?: number }

/** No activation, the silu flag, and (on the first `n` rows) the other act_fn activations by name. */
type Act = boolean | ActName;
const acts = (i: number, n: number): Act[] => (i < n ? [false, true, 'mish', 'gelu', 'relu'] : [false, true]);
const actName = (a: Act) => (a === true ? ' +silu' : a ? ` +${a}` : '');
const actOpts = (a: Act) => (typeof a === 'string' ? { act: a } : { silu: a });

const rows: Row[] = [
  { shape: [2, 64, 8, 8], groups: 32, eps: 1e-5 },
  { shape: [1, 32, 16, 16], groups: 8, eps: 1e-6 },
  { shape: [2, 128, 4, 4], groups: 32, eps: 1e-5 },
  { shape: [3, 6, 5, 7], groups: 3, eps: 1e-6 },
  { shape: [2, 12, 10], groups: 4, eps: 1e-5 },
  { shape: [1, 128, 32, 32], groups: 32, eps: 1e-6 },
  // Data on a large common offset: the variance must come from a two-pass mean, not
  // E[x^2] - E[x]^2 (which loses every digit in f32 here).
  { shape: [2, 64, 8, 8], groups: 32, eps: 1e-6, offset: 100 },
  { shape: [1, 32, 16, 16], groups: 1, eps: 1e-5, offset: 100 },
  { shape: [3, 6, 5, 7], groups: 3, eps: 1e-5, offset: -1000 },
  // Groups of 3410 values: three statistics parts of 1137, 1137 and 1136 where the split runs
  { shape: [1, 10, 31, 11], groups: 1, eps: 1e-5, offset: 50 },
];

const plainCases: OpCase[] = rows.flatMap((r, i) =>
  acts(i, 4).map((silu) => ({
    op: 'group_norm',
    name: `[${r.shape.join(',')}] groups ${r.groups} eps ${r.eps.toExponential()}${r.offset ? ` offset ${r.offset}` : ''}${actName(silu)}`,
    ...F32,
    async run(rt) {
      const [B, C] = r.shape as [number, number];
      const spatial = r.shape.slice(2).reduce((a, b) => a * b, 1);
      const x = randn(B * C * spatial, 200 + i).map((v) => v + (r.offset ?? 0));
      const gamma = randn(C, 300 + i, 2);
      const beta = randn(C, 400 + i);
      const got = await runGraph(rt, (g) =>
        groupNorm(g, 'gn', input(rt, x, r.shape), weight(rt, gamma, [C]), weight(rt, beta, [C]), { groups: r.groups, eps: r.eps, ...actOpts(silu) }),
      );
      return { got, ref: groupNormRef(x, gamma, beta, B, C, spatial, r.groups, r.eps, silu) };
    },
  })),
);

// ResnetBlock2D's scale_shift fused into the apply pass: a [B, 2C] time projection per row.
const scaleShiftRows: Row[] = [
  { shape: [2, 64, 8, 8], groups: 32, eps: 1e-5 },
  { shape: [3, 6, 5, 7], groups: 3, eps: 1e-6 },
  { shape: [1, 128, 32, 32], groups: 32, eps: 1e-5 },
  { shape: [2, 12, 10], groups: 4, eps: 1e-5, offset: 100 },
];

const scaleShiftCases: OpCase[] = scaleShiftRows.flatMap((r, i) =>
  acts(i, 2).map((silu) => ({
    op: 'group_norm_scale_shift',
    name: `[${r.shape.join(',')}] groups ${r.groups} eps ${r.eps.toExponential()}${r.offset ? ` offset ${r.offset}` : ''}${actName(silu)}`,
    ...F32,
    async run(rt) {
      const [B, C] = r.shape as [number, number];
      const spatial = r.shape.slice(2).reduce((a, b) => a * b, 1);
      const x = randn(B * C * spatial, 250 + i).map((v) => v + (r.offset ?? 0));
      const gamma = randn(C, 350 + i, 2);
      const beta = randn(C, 450 + i);
      const ss = randn(B * 2 * C, 550 + i, 1.5);
      const got = await runGraph(rt, (g) =>
        groupNorm(g, 'gn', input(rt, x, r.shape), weight(rt, gamma, [C]), weight(rt, beta, [C]), { groups: r.groups, eps: r.eps, ...actOpts(silu), scaleShift: input(rt, ss, [B, 2 * C]) }),
      );
      return { got, ref: groupNormRef(x, gamma, beta, B, C, spatial, r.groups, r.eps, silu, ss) };
    },
  })),
);

// SpatialNorm (MoVQ's decoder): the modulation maps at a latent size [zh, zw] read at nearest
// positions: the same size, exact 2x, non-integer ratios (7 from 3, 10 from 4), one pixel, and
// 74 from 6 / 141 from 3, where torch's float32 rule differs from floor(dst·in/out) in integers.
interface SpatialRow { shape: [number, number, number, number]; z: [number, number]; groups: number; eps: number; offset?: number }
const spatialRows: SpatialRow[] = [
  { shape: [1, 64, 5, 7], z: [5, 7], groups: 32, eps: 1e-6 },
  { shape: [2, 32, 10, 14], z: [5, 7], groups: 32, eps: 1e-6 },
  { shape: [1, 64, 7, 10], z: [3, 4], groups: 32, eps: 1e-6 },
  { shape: [2, 6, 9, 5], z: [1, 1], groups: 3, eps: 1e-5 },
  { shape: [1, 32, 74, 141], z: [6, 3], groups: 32, eps: 1e-6 },
  { shape: [1, 32, 16, 16], z: [4, 4], groups: 8, eps: 1e-6, offset: 100 },
];

const spatialCases: OpCase[] = spatialRows.flatMap((r, i) =>
  acts(i, 2).map((silu) => ({
    op: 'group_norm_spatial',
    name: `[${r.shape.join(',')}] from [${r.z.join(',')}] groups ${r.groups} eps ${r.eps.toExponential()}${r.offset ? ` offset ${r.offset}` : ''}${actName(silu)}`,
    ...F32,
    async run(rt) {
      const [B, C, H, W] = r.shape;
      const [zh, zw] = r.z;
      const x = randn(B * C * H * W, 260 + i).map((v) => v + (r.offset ?? 0));
      const gamma = randn(C, 360 + i, 2);
      const beta = randn(C, 460 + i);
      const my = randn(B * C * zh * zw, 560 + i, 1.5);
      const mb = randn(B * C * zh * zw, 660 + i);
      const got = await runGraph(rt, (g) =>
        groupNorm(g, 'gn', input(rt, x, r.shape), weight(rt, gamma, [C]), weight(rt, beta, [C]), {
          groups: r.groups, eps: r.eps, ...actOpts(silu), spatial: { scale: input(rt, my, [B, C, zh, zw]), shift: input(rt, mb, [B, C, zh, zw]) },
        }),
      );
      return { got, ref: groupNormSpatialRef(x, gamma, beta, B, C, H, W, r.groups, r.eps, silu, my, mb, zh, zw) };
    },
  })),
);

/**
 * The rows whose groups the statistics pass cuts into parts on GPUs (groupNormParts), rerun with
 * the split forced on (Runtime.splitNormStats), whichever way the adapter runs them by default.
 */
function splitStats(cases: OpCase[], shapeOf: (name: string) => { groupsTotal: number; groupSize: number }): OpCase[] {
  return cases
    .filter((c) => {
      const { groupsTotal, groupSize } = shapeOf(c.name);
      return groupNormParts(true, groupsTotal, groupSize).parts > 1;
    })
    .map((c) => ({ ...c, name: `${c.name} [split stats]`, run: (rt: Runtime) => withRuntime(rt, { splitNormStats: true }, () => c.run(rt)) }));
}

/**
 * The rows without a fused activation again as a statistics pass and a fully parallel apply pass
 * (GPUs' form; Runtime.fuseGroupNorm off): CPU adapters run a group norm as one dispatch, a
 * workgroup per group, and the rest of the table checks that form there. Both share the output
 * code (shaders/group_norm_apply.wgsl), so the activations are checked once.
 */
function twoPasses(cases: OpCase[]): OpCase[] {
  return cases
    .filter((c) => !/ \+\w+/.test(c.name))
    .map((c) => ({ ...c, name: `${c.name} [two passes]`, run: (rt: Runtime) => withRuntime(rt, { fuseGroupNorm: false, splitNormStats: false }, () => c.run(rt)) }));
}

/** Groups and group size from a case name's leading "[B,C,...spatial] ... groups G". */
function shapeFromName(name: string): { groupsTotal: number; groupSize: number } {
  const dims = /^\[([\d,]+)\]/.exec(name)![1]!.split(',').map(Number);
  const groups = Number(/groups (\d+)/.exec(name)![1]);
  const [B, C] = dims as [number, number];
  return { groupsTotal: B * groups, groupSize: (C / groups) * dims.slice(2).reduce((a, b) => a * b, 1) };
}

const oneWay = [...plainCases, ...scaleShiftCases, ...spatialCases];
export const groupNormCases: OpCase[] = [...oneWay, ...splitStats(oneWay, shapeFromName), ...twoPasses(oneWay)];
