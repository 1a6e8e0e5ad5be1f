// Which storage types a model is built in. f16 keeps weights and activations in half precision
// (kernels still accumulate, normalize and softmax in f32) and needs the device's shader-f16
// feature; 'auto' takes it where the device has it, and elsewhere keeps f32 activations beside f16
// weights (read without shader-f16, see weightParams in src/kernels/dtype.ts), so a model's weights
// take about its fp16 file size in GPU memory on every adapter. Latents, the scheduler and images
// stay f32.
import type { DType } from '../graph/tensor.ts';
import type { QuantFormat } from '../io/quant.ts';
import { PrecisionError } from '../errors.ts';

export type Precision = 'auto' | 'f16' | 'f32';
export const PRECISIONS: readonly Precision[] = ['auto', 'f16', 'f32'];

export interface ModelOptions {
  /**
   * Storage type of weights and activations: 'f16' both in f16 (needs shader-f16), 'f32' both in
   * f32, 'auto' f16 where the device has shader-f16 and else f32 activations beside f16 weights.
   * The model classes and folder loaders (the building blocks) take f32 when absent; the
   * library's loadModel and the CLI default to 'auto'.
   */
  precision?: Precision;
  /**
   * How the denoiser's (U-Net's, ControlNets') Linear and conv weights are stored (src/io/quant.ts):
   * 'q8' per-channel int8 (about half the f16 bytes), 'q4' 4-bit in blocks of 32 (about 0.28 of
   * them), quantized at load, or 'float' (in the precision's weight type, a pre-quantized file's
   * weights dequantized). Absent: as the files have them (a pre-quantized folder stays quantized).
   * Text encoders and VAEs keep float weights.
   */
  weights?: WeightFormat;
}

export type WeightFormat = QuantFormat | 'float';

/** The model classes (config.json _class_name) whose GEMM weights `weights` quantizes in pipelines: the denoisers. */
export const QUANTIZED_CLASSES: ReadonlySet<string> = new Set(['UNet2DModel', 'UNet2DConditionModel', 'ControlNetModel']);
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['q8', 'q4', 'float'];

export interface ResolvedPrecision {
  /** The activations' storage type (what kernels compute in and store between ops). */
  dtype: DType;
  /** The weights' storage type on the GPU, when it differs from `dtype`. */
  weights?: DType;
  /**
   * Why this path runs, for the user: "f16 (shader-f16)", "f32 compute, f16 weights (adapter has
   * no shader-f16)", "f32 (asked for)" (precision 'f32' given), "f32 (the default)" (none given
   * to a building block).
   */
  description: string;
}

/**
 * `features`: the device's enabled features (GpuContext.features). `precision` absent: f32, the
 * building blocks' default (loadModel and the CLI pass 'auto' themselves).
 */
export function resolvePrecision(features: ReadonlySet<string>, precision?: Precision): ResolvedPrecision {
  const has = features.has('shader-f16');
  if (precision === 'f16' && !has) {
    // Neutral wording: library users pass { precision: 'auto' }, the CLI says --precision (src/cli/main.ts).
    throw new PrecisionError("precision 'f16' needs the WebGPU feature shader-f16, which this device does not have (use precision 'auto' or 'f32')");
  }
  if (precision === undefined) return { dtype: 'f32', description: 'f32 (the default)' };
  if (precision === 'f32') return { dtype: 'f32', description: 'f32 (asked for)' };
  if (has) return { dtype: 'f16', description: 'f16 (shader-f16)' };
  // 'auto' without shader-f16: f32 arithmetic and activations as before, but the weights (most of
  // a model's memory) still in f16, unpacked to f32 as the kernels read them.
  return { dtype: 'f32', weights: 'f16', description: 'f32 compute, f16 weights (adapter has no shader-f16)' };
}
