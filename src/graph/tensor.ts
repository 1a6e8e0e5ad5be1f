import type { QuantLayout } from '../io/quant.ts';
import { DTypeError } from '../errors.ts';

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
  /**
   * How a GEMM weight ([N, K], or a conv's [Cout, Cin, kh, kw] as [N, Cin·kh·kw]) lies in its
   * buffer, when not row-major: 'n4' interleaves four output channels per k (element (n, k) at
   * ((n / 4)·K + k)·4 + n % 4, N padded to a multiple of 4: zero rows when loaded, the next
   * channels in a channel slice's last group (WeightSlices), never stored; src/io/weight_layout.ts),
   * so the direct GEMM feed reads the four columns of a vec4 in one load. Set when the weight is
   * made (WeightLoader.gemmWeight), never inferred at dispatch: only the GEMM core reads it, and
   * anything else that touches the buffer (a LoRA merge, a channel slice) must handle or refuse it.
   */
  layout?: WeightLayout;
}

/** A GEMM weight's storage order other than row-major (Tensor.layout). */
export type WeightLayout = 'n4';

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
  if (t.quant) return t.quant.bytes;
  if (t.layout === 'n4') return bytesFor(n4Elements(t.shape), t.dtype);
  return bytesFor(numel(t.shape), t.dtype);
}

/**
 * Whether t is stored 'n4' (row-major otherwise); a layout this code does not know is an error
 * naming `what` needed it, never a misread.
 */
export function isN4(t: Tensor, what: string): boolean {
  if (t.layout === undefined) return false;
  if (t.layout === 'n4') return true;
  throw new DTypeError(`${what}: ${t.label} has unknown layout '${String(t.layout)}'`);
}

/** Elements an 'n4' weight of this shape stores: its [N, K] with N padded to a multiple of 4. */
export function n4Elements(shape: readonly number[]): number {
  const N = shape[0] ?? 1;
  return Math.ceil(N / 4) * 4 * (numel(shape) / N);
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Global-memory traffic of a dispatch for its cost estimate: each tensor read or written once. */
export function trafficBytes(...ts: (Tensor | undefined)[]): number {
  return ts.reduce((sum, t) => sum + (t ? bytesOf(t) : 0), 0);
}
