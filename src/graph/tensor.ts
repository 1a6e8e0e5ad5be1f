import type { QuantLayout } from '../io/quant.ts';

/** Element type in GPU memory. f16 is storage only: kernels load to f32, compute, and round on store. */
export type DType = 'f32' | 'f16';

export interface Tensor {
  buffer: GPUBuffer;
  shape: readonly number[];
  label: string;
  /** Absent means f32. */
  dtype?: DType;
  /**
   * A quantized GEMM weight (src/io/quant.ts): the buffer holds its int8 or 4-bit values and
   * then its f16 scales, and `dtype` is meaningless. Only the GEMM core reads one.
   */
  quant?: QuantLayout;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function dtypeOf(t: Tensor): DType {
  return t.dtype ?? 'f32';
}

export function elementBytes(dtype: DType = 'f32'): number {
  return dtype === 'f16' ? 2 : 4;
}

/** Bytes of `numel` elements, rounded up to 4 because storage bindings are sized in whole words. */
export function bytesFor(n: number, dtype: DType = 'f32'): number {
  return Math.ceil((n * elementBytes(dtype)) / 4) * 4;
}

export function bytesOf(t: Tensor): number {
  return t.quant ? t.quant.bytes : bytesFor(numel(t.shape), t.dtype);
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Global-memory traffic of a dispatch for its cost estimate: each tensor read or written once. */
export function trafficBytes(...ts: (Tensor | undefined)[]): number {
  return ts.reduce((sum, t) => sum + (t ? bytesOf(t) : 0), 0);
}
