import type { Runtime } from '../../src/gpu/runtime.ts';
import type { DType } from '../../src/graph/tensor.ts';

/** One row of the kernel check table: run the kernel on the GPU and its CPU reference. */
export interface OpCase {
  op: string;
  /** Shape and options, for the table. */
  name: string;
  run(rt: Runtime): Promise<{ got: ArrayLike<number>; ref: ArrayLike<number> }>;
  atol: number;
  rtol: number;
  /** Why the tolerance is what it is, when looser than the f32 default. */
  why?: string;
  /** Storage type input() uploads in while the case runs (f32 when absent); f16 rows need shader-f16. */
  dtype?: DType;
  /** The row needs shader-f16 on the shared device although its activations are f32 (f16 weights read as array<f16>). */
  needsF16?: boolean;
  /** Why the row is skipped on CPU adapters (a GPU-only form whose kernels take them minutes to compile). */
  gpuOnly?: string;
}

/** f32 accumulation over K terms of size ~1: errors grow like sqrt(K)·eps. */
export const F32 = { atol: 1e-5, rtol: 1e-4 };

/**
 * The cases less those whose name, without its epilogue activation, names another case: the
 * activation is applied after the sum, so rows of a variant that only changes how the sum's
 * operands are read or multiplied (f16 or quantized weights, f16 math) would repeat a kept row,
 * each compiling kernels of its own (what a cold shader cache pays for on a CPU adapter).
 */
export function withoutActivationTwins(cases: OpCase[]): OpCase[] {
  const names = new Set(cases.map((c) => `${c.op}: ${c.name}`));
  return cases.filter((c) => {
    // Only GEMMs: a norm applies its weights (gamma, beta) right before the activation.
    if (c.op !== 'linear' && c.op !== 'conv2d') return true;
    const base = c.name.replace(/ \+(silu|mish|gelu|relu|quickGelu)\b/, '');
    return base === c.name || !names.has(`${c.op}: ${base}`);
  });
}


/**
 * The cases less all LoRA rows but the first of each GEMM kind, output layout and feed, and those
 * whose K is split on the tiled feed. For rows that vary how the layer's own weights are stored
 * (f16, q8, q4): an unfused LoRA's term is an epilogue over its own f32 up weights and the down
 * projection's output (shaders/gemm.wgsl lora_term), the same whatever the layer's weights are, so
 * one row per kind checks how it meets each storage's epilogue (a q8 weight's scale among them),
 * and the K-split rows the reduce pass with every epilogue binding (8 storage buffers with q8's
 * scales, WebGPU's default limit). Each further row compiled kernels of its own, 5-17 s each cold
 * on lavapipe.
 */
export function fewLoraRows(cases: OpCase[]): OpCase[] {
  const seen = new Set<string>();
  return cases.filter((c) => {
    if (!c.name.startsWith('LoRA') || c.name.includes('(K split when tiled)')) return true;
    const key = `${c.op} ${/out (rows|channels)/.exec(c.name)?.[1] ?? ''} ${/\[[^\]]+\]$/.exec(c.name)?.[0] ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
