// The quantized-weight rows: the f32 GEMM cases (linear and conv2d: direct and tiled feeds, split K
// and its reduce, im2col, upsample, channel-major input, unfused LoRA) rerun with their [N, ...]
// weights quantized (src/io/quant.ts; biases stay f32). Each row checks two things:
// - against the run of the f32 kernel on the dequantized weights, on the same device: q4 bit for
//   bit (the kernel multiplies by exactly the dequantized value), q8 within f32 rounding (the row
//   scale is applied once to the sum instead of to every term);
// - against the float64 reference on the original weights, within the quantization's own error.
import type { Runtime } from '../../src/gpu/runtime.ts';
import type { QuantFormat } from '../../src/io/quant.ts';
import { linear } from '../../src/kernels/gemm.ts';
import { linearRef } from '../ref/gemm.ts';
import { input, randn, runGraph, withGemmFeed } from '../helpers/gpu.ts';
import { compare } from '../helpers/compare.ts';
import { weight, withWeights } from '../helpers/weights.ts';
import { fewLoraRows, withoutActivationTwins, type OpCase } from './cases.ts';

/**
 * What quantizing costs against the original weights. q8: each weight within max|row|/254, q4
 * within max|block|/16; a sum of K terms x·w (K up to ~600 here, |x|, |w| ≲ 1) moves by a small
 * multiple of that step times sqrt(K) for random signs.
 */
const QUANT_ERROR: Record<QuantFormat, { atol: number; rtol: number; why: string }> = {
  q8: { atol: 0.05, rtol: 0.02, why: 'weights quantized to int8 per output row (step max|row|/127)' },
  q4: { atol: 0.6, rtol: 0.2, why: 'weights quantized to 4 bits per block of 32 (step max|block|/8)' },
};

/** q8 against the dequantized f32 run: one rounding of the scaled sum instead of K scaled terms. */
const Q8_VS_VALUES = { atol: 1e-5, rtol: 1e-5 };

const GEMM_OPS = new Set(['linear', 'conv2d']);

/** Rows that differ only in what never touches a weight (see f16_weights.cases.ts). */
const SAME_WEIGHT_READS = /\[tiled, whole K\]|\+(mish|gelu|relu|quickGelu)\b/;

async function quantRun(c: OpCase, rt: Runtime, format: QuantFormat) {
  const q = await withWeights(format, () => c.run(rt));
  if (q.weights === 0) throw new Error(`${c.op} ${c.name}: the case uploads no weight through weight(), so it checks nothing here`);
  const values = await withWeights(`${format}-values`, () => c.run(rt));
  const tol = format === 'q4' ? { atol: 0, rtol: 0 } : Q8_VS_VALUES;
  const cmp = compare(q.result.got, values.result.got, tol.atol, tol.rtol);
  if (!cmp.ok) throw new Error(`${c.op} ${c.name} [${format}]: differs from the f32 kernel on the dequantized weights\n${cmp.report}`);
  return q.result;
}

export function quantWeightRows(cases: OpCase[]): OpCase[] {
  return fewLoraRows(withoutActivationTwins(cases)).flatMap((c) => {
    if (!GEMM_OPS.has(c.op) || SAME_WEIGHT_READS.test(c.name)) return [];
    return (['q8', 'q4'] as const).map((f) => ({ ...c, ...QUANT_ERROR[f], name: `${c.name} [${f} weights]`, run: (rt: Runtime) => quantRun(c, rt, f) }));
  });
}

/**
 * Rows of small weights: row n's values are scaled to 10^(-2 - 3n/N), so most q8 row scales and q4
 * block scales are subnormal f16s (below 2^-14). A GPU that flushed subnormal halves in
 * unpack2x16float would zero those rows here, where the f32 run on the dequantized values does not.
 */
function smallWeightCases(): OpCase[] {
  const [B, M, K, N] = [1, 9, 64, 12];
  const feeds = [
    { name: 'direct', feed: 'direct', adapt: true },
    { name: 'tiled', feed: 'tiled', adapt: true },
  ] as const;
  return feeds.map((f) => ({
    op: 'linear',
    name: `small weights (rows 1e-2 .. 1e-5) B${B} M${M} K${K} N${N} +bias [${f.name}]`,
    atol: 0,
    rtol: 0,
    async run(rt: Runtime) {
      const x = randn(B * M * K, 71);
      const w = randn(N * K, 72).map((v, i) => v * 10 ** (-2 - (3 * Math.floor(i / K)) / N));
      const bias = randn(N, 73, 1e-3);
      const got = await withGemmFeed(rt, f.feed, () => runGraph(rt, (g) => linear(g, 'lin', input(rt, x, [B, M, K]), weight(rt, w, [N, K]), { bias: weight(rt, bias, [N]) })), f.adapt);
      return { got, ref: linearRef(x, w, bias, B, M, K, N) };
    },
  }));
}

/** The small-weight rows in q8 and q4 (their error against the float64 reference: the weights' own scale). */
export function quantSmallWeightRows(): OpCase[] {
  const bound: Record<QuantFormat, { atol: number; rtol: number }> = { q8: { atol: 2e-4, rtol: 0.02 }, q4: { atol: 3e-3, rtol: 0.2 } };
  return smallWeightCases().flatMap((c) =>
    (['q8', 'q4'] as const).map((f) => ({ ...c, ...bound[f], why: `${QUANT_ERROR[f].why}; weights of 1e-2 .. 1e-5`, name: `${c.name} [${f} weights]`, run: (rt: Runtime) => quantRun(c, rt, f) })),
  );
}
