// Which storage type a model is built in. f16 keeps weights and activations in half precision
// (kernels still accumulate, normalize and softmax in f32) and needs the device's shader-f16
// feature; 'auto' takes it where the device has it. Latents, the scheduler and images stay f32.
import type { DType } from '../graph/tensor.ts';

export type Precision = 'auto' | 'f16' | 'f32';
export const PRECISIONS: readonly Precision[] = ['auto', 'f16', 'f32'];

export class PrecisionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrecisionError';
  }
}

export interface ModelOptions {
  /** Storage type of weights and activations; f32 when absent. */
  precision?: Precision;
}

export interface ResolvedPrecision {
  dtype: DType;
  /** Why this path runs, for the user: "f16 (shader-f16)", "f32 (adapter has no shader-f16)". */
  description: string;
}

/** `features`: the device's enabled features (GpuContext.features). */
export function resolvePrecision(features: ReadonlySet<string>, precision: Precision = 'f32'): ResolvedPrecision {
  const has = features.has('shader-f16');
  if (precision === 'f16' && !has) {
    throw new PrecisionError("precision f16 needs the WebGPU feature shader-f16, which this device does not have (use --precision auto or f32)");
  }
  if (precision === 'f32') return { dtype: 'f32', description: 'f32 (asked for)' };
  if (has) return { dtype: 'f16', description: 'f16 (shader-f16)' };
  return { dtype: 'f32', description: 'f32 (adapter has no shader-f16)' };
}
