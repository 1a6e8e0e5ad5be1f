// The f16 rows of every GEMM the tiled feed runs (linear, conv2d, attention's GEMM path) again
// with Runtime.gemmMath 'f16' (F16_MATH in shaders/gemm.wgsl): tiles staged and multiplied in f16,
// each K slice summed in f16 before the f32 accumulators. Same references and tolerance as the f16
// rows: the slice sums add about 1e-3 relative to the inputs' rounding.
import type { Runtime } from '../../src/gpu/runtime.ts';
import { withRuntime } from '../helpers/gpu.ts';
import { withoutActivationTwins, type OpCase } from './cases.ts';

export function f16MathRows(f16Table: OpCase[]): OpCase[] {
  // The LoRA rows' own term is an f32 epilogue; their down projection is a plain GEMM, as below.
  return withoutActivationTwins(f16Table)
    .filter((c) => (c.op === 'linear' || c.op === 'conv2d' || c.op === 'attention') && /\[tiled\] \[f16\]$/.test(c.name) && !c.name.startsWith('LoRA'))
    .map((c) => ({ ...c, name: `${c.name} [f16 math]`, run: (rt: Runtime) => withRuntime(rt, { gemmMath: 'f16' }, () => c.run(rt)) }));
}
