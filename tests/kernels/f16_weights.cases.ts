// The f16-weight rows: the f32 cases of every kernel that reads model weights, rerun with those
// weights stored in f16 beside f32 activations (tests/helpers/weights.ts), on a device without
// shader-f16 (the weights bound as packed u32 words, W_PACKED) and on the shared device where it
// has shader-f16 (bound as array<f16>, W_F16). Each row checks two things:
// - against the same float64 reference as the f32 row, with a tolerance for the weights' rounding;
// - bit for bit against the f32 kernel run on the f16-rounded weights, on the same device: the
//   variant is only a storage change, so any difference is a misread weight.
import type { Runtime } from '../../src/gpu/runtime.ts';
import { withWeights, runtimeWithoutF16 } from '../helpers/weights.ts';
import { fewLoraRows, withoutActivationTwins, type OpCase } from './cases.ts';

/**
 * Weights rounded to f16 (relative error up to 2^-12 each), everything else in f32. A weighted sum
 * moves by up to 2^-12·Σ|x·w| (K up to 600 terms here), a norm's output by 2^-12·(|γ·x̂| + |β|).
 */
const WEIGHTS_F16 = { atol: 2e-3, rtol: 1e-3, why: 'weights rounded to f16 (rel. 2.4e-4 each), activations and arithmetic in f32' };

/** Ops whose cases upload model weights through weight(). */
const WEIGHT_OPS = new Set(['linear', 'conv2d', 'group_norm', 'group_norm_scale_shift', 'group_norm_spatial', 'layer_norm', 'embedding_lookup', 'quantize']);

/** The largest |a − b| (Infinity where exactly one is NaN or they differ in length). */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Object.is(x, y)) continue;
    m = Math.max(m, Number.isNaN(x) || Number.isNaN(y) ? Infinity : Math.abs(x - y));
  }
  return m;
}

async function f16WeightRun(c: OpCase, rt: Runtime, where: string) {
  const f16 = await withWeights('f16', () => c.run(rt));
  if (f16.weights === 0) throw new Error(`${c.op} ${c.name}: the case uploads no weight through weight(), so it checks nothing here`);
  const rounded = await withWeights('f16-values', () => c.run(rt));
  const d = maxDiff(f16.result.got, rounded.result.got);
  if (d !== 0) throw new Error(`${c.op} ${c.name} [${where}]: f16 weights differ from the f32 kernel on the f16-rounded weights by up to ${d} (must be bit for bit equal)`);
  return f16.result;
}

/**
 * Rows that differ from a kept one only in what never touches a weight: the tiled feed's 128 x 128
 * whole-K tiling (the same reads as the adaptive tiled rows, which also split K and reduce), the
 * group norm's split statistics, an epilogue activation other than SiLU. Each row here compiles
 * its own kernels, which a cold shader cache pays for on a CPU adapter.
 */
const SAME_WEIGHT_READS = /\[tiled, whole K\]|\[split stats\]|\+(mish|gelu|relu|quickGelu)\b/;

export function f16WeightRows(cases: OpCase[]): OpCase[] {
  return fewLoraRows(withoutActivationTwins(cases)).flatMap((c) => {
    if (!WEIGHT_OPS.has(c.op) || SAME_WEIGHT_READS.test(c.name)) return [];
    return [
      { ...c, ...WEIGHTS_F16, name: `${c.name} [f16 weights, packed]`, run: async () => f16WeightRun(c, await runtimeWithoutF16(), 'packed') },
      { ...c, ...WEIGHTS_F16, name: `${c.name} [f16 weights, shader-f16]`, needsF16: true, run: (rt: Runtime) => f16WeightRun(c, rt, 'shader-f16') },
    ];
  });
}
