// Host-side reordering of GEMM weights into the storage orders of Tensor.layout
// (src/graph/tensor.ts), on raw element bytes so f32 and f16 weights need no conversion.
import { elementBytes, type DType } from '../graph/tensor.ts';
import { ShapeError } from '../errors.ts';

/** Where element (n, k) of an [N, K] weight with K columns lies in its 'n4' storage. */
function n4Index(n: number, k: number, K: number): number {
  return ((n >> 2) * K + k) * 4 + (n & 3);
}

/**
 * A row-major [N, K] weight stored in `dtype` reordered to 'n4': element (n, k) at
 * ((n / 4)·K + k)·4 + n % 4, with N padded up to a multiple of 4 by zero rows.
 */
export function interleaveN4(bytes: Uint8Array, N: number, K: number, dtype: DType): Uint8Array {
  const elem = elementBytes(dtype);
  if (bytes.byteLength < N * K * elem) throw new ShapeError(`interleaveN4: ${bytes.byteLength} bytes do not hold a ${N} x ${K} weight of ${elem}-byte elements`);
  const out = new Uint8Array(Math.ceil(N / 4) * 4 * K * elem);
  // Whole elements moved as integers (a copy of the source, which may sit at any byte offset).
  const elements = (buffer: ArrayBufferLike) => (elem === 4 ? new Uint32Array(buffer) : new Uint16Array(buffer));
  const src = elements(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + N * K * elem));
  const dst = elements(out.buffer);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) dst[n4Index(n, k, K)] = src[n * K + k]!;
  return out;
}

/** The row-major [N, K] values of an 'n4' weight read back as `stored` (its padded elements). */
export function deinterleaveN4(stored: Float32Array, N: number, K: number): Float32Array {
  if (stored.length < Math.ceil(N / 4) * 4 * K) throw new ShapeError(`deinterleaveN4: ${stored.length} values do not hold an interleaved ${N} x ${K} weight`);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = stored[n4Index(n, k, K)]!;
  return out;
}
