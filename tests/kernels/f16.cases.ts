// The f16 rows: the f32 cases of every kernel that has an f16 storage variant, rerun with their
// inputs uploaded as f16 (tests/helpers/gpu.ts withStorage) against the same float64
// references, so the error measured includes rounding the inputs.
import { f16Bits, f16Value } from '../../src/io/f16.ts';
import { timestepEmbedding } from '../../src/kernels/embedding.ts';
import { quantize } from '../../src/kernels/quantize.ts';
import { input, randn, runGraph } from '../helpers/gpu.ts';
import { timestepEmbeddingRef } from '../ref/embedding.ts';
import { quantizeRef } from '../ref/quantize.ts';
import type { OpCase } from './cases.ts';

/** One rounding of each input and of the output, about 2^-11 relative each. */
const POINTWISE = { atol: 2e-3, rtol: 2e-3, why: 'f16 storage: input and output each rounded to 11 significant bits (rel. 4.9e-4)' };
/** Sums of up to ~600 rounded products (conv 64x3x3), norms over rounded inputs, softmax-weighted sums. */
const REDUCTION = { atol: 1e-2, rtol: 1e-2, why: 'f16 storage: every input rounded to 11 bits, summed over up to ~600 terms in f32, output rounded once' };

const POINTWISE_OPS = new Set(['silu', 'activation', 'scale', 'add', 'concat_channels', 'upsample_nearest2x', 'avg_pool2x', 'fir_resample2x', 'divide_batch', 'tanh_clamp', 'affine', 'geglu', 'mask_blend', 'add_scaled_into', 'embedding_lookup']);
const REDUCTION_OPS = new Set(['linear', 'conv2d', 'attention', 'group_norm', 'group_norm_scale_shift', 'group_norm_spatial', 'layer_norm']);

/**
 * Norm rows whose data sits on a large common offset test cancellation in the statistics; in f16
 * an input near 100 is already rounded by up to 0.03 (ulp 0.0625), far more than the spread they
 * normalize, so those rows only make sense in f32.
 */
const OFFSET = /offset -?[1-9]/;

export function f16Rows(cases: OpCase[]): OpCase[] {
  return cases.flatMap((c) => {
    if (OFFSET.test(c.name)) return [];
    const tol = POINTWISE_OPS.has(c.op) ? POINTWISE : REDUCTION_OPS.has(c.op) ? REDUCTION : null;
    return tol ? [{ ...c, name: `${c.name} [f16]`, dtype: 'f16' as const, ...tol }] : [];
  });
}

/** data rounded to the nearest f16 values, so a reference can be computed on what the GPU holds. */
function roundF16(data: Float32Array): Float32Array {
  return data.map((v) => f16Value(f16Bits(v)));
}

// The timestep embedding reads f32 timesteps and only stores in f16, so it is not a rerun of the
// f32 rows (which upload the timesteps through input()).
const timestepF16: OpCase[] = [
  { dim: 320, flip: true, shift: 0 },
  { dim: 33, flip: false, shift: 1 },
].map((r) => ({
  op: 'timestep_embedding',
  name: `dim ${r.dim} flip ${r.flip} shift ${r.shift} [f16]`,
  dtype: 'f16' as const,
  ...POINTWISE,
  async run(rt) {
    const steps = [0, 1, 999, 500.5, 37];
    const opts = { flipSinToCos: r.flip, downscaleFreqShift: r.shift };
    const got = await runGraph(rt, (g) => timestepEmbedding(g, 'temb', input(rt, steps, [steps.length], 'timesteps', 'f32'), steps.length, r.dim, { ...opts, dtype: 'f16' }));
    return { got, ref: timestepEmbeddingRef(steps, r.dim, opts) };
  },
}));

// The winning row must be the same as for the rounded data: the reference sees the f16 values,
// and near-ties are refused as in the f32 rows.
const quantizeF16: OpCase[] = [
  { B: 1, D: 3, h: 4, w: 4, K: 64 },
  { B: 2, D: 3, h: 9, w: 11, K: 257 },
].map((r, i) => ({
  op: 'quantize',
  name: `z [${r.B},${r.D},${r.h},${r.w}] codebook [${r.K},${r.D}] [f16]`,
  dtype: 'f16' as const,
  ...POINTWISE,
  async run(rt) {
    const hw = r.h * r.w;
    const z = roundF16(randn(r.B * r.D * hw, 1400 + i));
    const codebook = roundF16(randn(r.K * r.D, 1500 + i));
    const ref = quantizeRef(z, codebook, r.B, r.D, hw, r.K);
    if (Math.min(...ref.gaps) < 1e-5) throw new Error('quantize f16 case data has a near-tie; pick another seed');
    const got = await runGraph(rt, (g) => quantize(g, 'quantize', input(rt, z, [r.B, r.D, r.h, r.w]), input(rt, codebook, [r.K, r.D])));
    return { got, ref: ref.out };
  },
}));

export const f16OnlyCases: OpCase[] = [...timestepF16, ...quantizeF16];
