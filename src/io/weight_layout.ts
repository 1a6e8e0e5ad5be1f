// Host-side reordering of GEMM weights into the storage orders of Tensor.layout
// (src/graph/tensor.ts), on raw element bytes so f32 and f16 weights need no conversion.
import { ShapeError } from '../errors.ts';

/**
 * A row-major [N, K] weight of `elem`-byte elements reordered to 'n4': element (n, k) at
 * ((n / 4)·K + k)·4 + n % 4, with N padded up to a multiple of 4 by zero rows.
 */
export function interleaveN4(bytes: Uint8Array, N: number, K: number, elem: 2 | 4): Uint8Array {
  if (bytes.byteLength < N * K * elem) throw new ShapeError(`interleaveN4: ${bytes.byteLength} bytes do not hold a ${N} x ${K} weight of ${elem}-byte elements`);
  const groups = Math.ceil(N / 4);
  const out = new Uint8Array(groups * 4 * K * elem);
  if (elem === 4) {
    const src = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + N * K * 4));
    const dst = new Uint32Array(out.buffer);
    for (let n = 0; n < N; n++) {
      const base = (n >> 2) * K * 4 + (n & 3);
      for (let k = 0; k < K; k++) dst[base + 4 * k] = src[n * K + k]!;
    }
  } else {
    const src = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + N * K * 2));
    const dst = new Uint16Array(out.buffer);
    for (let n = 0; n < N; n++) {
      const base = (n >> 2) * K * 4 + (n & 3);
      for (let k = 0; k < K; k++) dst[base + 4 * k] = src[n * K + k]!;
    }
  }
  return out;
}

/** The row-major [N, K] values of an 'n4' weight read back as `stored` (its padded elements). */
export function deinterleaveN4(stored: Float32Array, N: number, K: number): Float32Array {
  if (stored.length < Math.ceil(N / 4) * 4 * K) throw new ShapeError(`deinterleaveN4: ${stored.length} values do not hold an interleaved ${N} x ${K} weight`);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const base = (n >> 2) * K * 4 + (n & 3);
    for (let k = 0; k < K; k++) out[n * K + k] = stored[base + 4 * k]!;
  }
  return out;
}
