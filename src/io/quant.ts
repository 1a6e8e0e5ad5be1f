// Quantized GEMM weights on the host: what they are, how a [N, K] weight (a Linear's, or a conv's
// [Cout, Cin·kh·kw]) becomes one, and the layout shared by the GPU buffer (shaders/gemm.wgsl WQ8 /
// WQ4) and the pre-quantized safetensors files (src/cli/quantize.ts writes them).
//
//  q8: symmetric int8 per output row, scale = max|row| / 127 rounded up to an f16. The GEMM sums
//      a·q over k in integers-as-f32 and multiplies by the row's scale in its epilogue (one
//      multiply per output).
//  q4: symmetric 4-bit in blocks of 32 along k (GGML's Q4_0 rounding: the block's largest-magnitude
//      value maps to -8, so all 16 levels are used), one f16 scale per block (largest / -8, rounded
//      away from zero). Rows are padded to a whole block (ldw = K rounded up to 32) so a block
//      never spans two rows and element (n, k) is nibble n·ldw + k, scale (n·ldw + k) / 32.
// Scales are f16 and the quantized values are computed against the f16-rounded scale, so
// dequantizing (q·scale in f32) gives exactly what the GPU multiplies with.
import { f16Bits, f16Value } from './f16.ts';

export type QuantFormat = 'q8' | 'q4';
export const QUANT_FORMATS: readonly QuantFormat[] = ['q8', 'q4'];
export const Q4_BLOCK = 32;

/** Where a quantized [N, K] weight's parts lie in its one buffer (bytes and 4-byte words). */
export interface QuantLayout {
  format: QuantFormat;
  N: number;
  K: number;
  /** Row stride in elements (K for q8, K rounded up to Q4_BLOCK for q4). */
  ldw: number;
  /** Bytes of the quantized values (q8: N·K, q4: N·ldw / 2), before padding to a word. */
  dataBytes: number;
  /** The f16 scales: N (q8) or N·ldw / 32 (q4). */
  scaleCount: number;
  /** The first word of the scales (the values padded to whole words come first). */
  scaleWord: number;
  /** The whole buffer: values, then scales, in whole words. */
  bytes: number;
}

export function quantLayout(format: QuantFormat, N: number, K: number): QuantLayout {
  const ldw = format === 'q4' ? Math.ceil(K / Q4_BLOCK) * Q4_BLOCK : K;
  const dataBytes = format === 'q4' ? (N * ldw) / 2 : N * K;
  const scaleCount = format === 'q4' ? (N * ldw) / Q4_BLOCK : N;
  const scaleWord = Math.ceil(dataBytes / 4);
  return { format, N, K, ldw, dataBytes, scaleCount, scaleWord, bytes: 4 * (scaleWord + Math.ceil(scaleCount / 2)) };
}

/** A quantized weight on the host: its values (int8, or two nibbles per byte, low nibble first) and f16 scale bits. */
export interface QuantizedHost {
  layout: QuantLayout;
  data: Uint8Array;
  scales: Uint16Array;
}

/**
 * f16 scale bits for `v`: the f16 of its sign nearest to it that is not smaller in magnitude, and +0
 * for 0 (an all-zero q4 block gives -0 / 8). Rounding to nearest could land below max/127 (or
 * |largest|/8), and then the largest values fall past the last level and are clamped: by a hair for
 * a normal f16, but a subnormal scale (max|row| below 2^-14·127 ≈ 7.8e-3 for q8, a block's largest
 * below 2^-14·8 ≈ 4.9e-4 for q4) is off by up to half a step of 6e-8, which clamps the row's largest
 * value by many levels (max|row| 1e-5: by 40 steps, a quarter of its value) or, for a tiny max,
 * rounds the scale to 0. Rounded up, such a scale is up to one step large: a small relative error
 * on rows that small. (A GPU that flushed f16 subnormals in unpack2x16float would zero those rows;
 * the op table's small-weight rows would show it.)
 */
function scaleBits(v: number): number {
  if (v === 0) return 0;
  const h = f16Bits(v);
  // f16 is sign-magnitude: the next bit pattern is the next larger magnitude of the same sign.
  return Math.abs(f16Value(h)) < Math.abs(v) ? h + 1 : h;
}

/** Quantizes row-major [N, K] `w`. */
export function quantize(format: QuantFormat, w: Float32Array, N: number, K: number): QuantizedHost {
  if (w.length !== N * K) throw new RangeError(`quantize: ${w.length} values are not ${N} x ${K}`);
  const layout = quantLayout(format, N, K);
  const data = new Uint8Array(layout.dataBytes);
  const scales = new Uint16Array(layout.scaleCount);
  if (format === 'q8') {
    const q = new Int8Array(data.buffer);
    for (let n = 0; n < N; n++) {
      let max = 0;
      for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]!));
      const h = scaleBits(max / 127);
      scales[n] = h;
      const s = f16Value(h);
      for (let k = 0; k < K; k++) q[n * K + k] = s === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(w[n * K + k]! / s)));
    }
    return { layout, data, scales };
  }
  const { ldw } = layout;
  for (let n = 0; n < N; n++) {
    for (let k0 = 0; k0 < ldw; k0 += Q4_BLOCK) {
      const end = Math.min(k0 + Q4_BLOCK, K);
      let big = 0;
      for (let k = k0; k < end; k++) if (Math.abs(w[n * K + k]!) > Math.abs(big)) big = w[n * K + k]!;
      const h = scaleBits(big / -8);
      const s = f16Value(h);
      const b = (n * ldw + k0) / Q4_BLOCK;
      scales[b] = h;
      for (let k = k0; k < k0 + Q4_BLOCK; k++) {
        // Padding past K stores 0 (nibble 8), multiplied by A's zero-free columns never read.
        const q = k < end && s !== 0 ? Math.max(-8, Math.min(7, Math.round(w[n * K + k]! / s))) : 0;
        const i = n * ldw + k;
        data[i >> 1] |= (q + 8) << ((i & 1) * 4);
      }
    }
  }
  return { layout, data, scales };
}

/** The f32 values a quantized weight stands for, row-major [N, K]: what the GPU multiplies with. */
export function dequantize(q: QuantizedHost): Float32Array {
  const { format, N, K, ldw } = q.layout;
  const out = new Float32Array(N * K);
  const scale = Float32Array.from(q.scales, f16Value);
  if (format === 'q8') {
    const v = new Int8Array(q.data.buffer, q.data.byteOffset, q.data.byteLength);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = v[n * K + k]! * scale[n]!;
    return out;
  }
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const i = n * ldw + k;
      const nib = (q.data[i >> 1]! >> ((i & 1) * 4)) & 15;
      out[n * K + k] = (nib - 8) * scale[i >> 5]!;
    }
  }
  return out;
}

/** The one GPU buffer's bytes: the values, padded to a word, then the scales. */
export function packForGpu(q: QuantizedHost): Uint8Array {
  const out = new Uint8Array(q.layout.bytes);
  out.set(q.data, 0);
  out.set(new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength), 4 * q.layout.scaleWord);
  return out;
}

/**
 * How a pre-quantized weight is stored in safetensors (src/cli/quantize.ts): `key` holds the values
 * (q8: I8 in the weight's own shape; q4: U8 [N, ldw / 2]) and `key_scale` the f16 scales (q8: [N];
 * q4: [N, ldw / 32]). The format follows from the values' dtype.
 */
export const SCALE_SUFFIX = '_scale';

export function storedShapes(format: QuantFormat, shape: readonly number[]): { values: number[]; scales: number[] } {
  const N = shape[0]!;
  const K = shape.slice(1).reduce((a, b) => a * b, 1);
  const { ldw } = quantLayout(format, N, K);
  return format === 'q8' ? { values: [...shape], scales: [N] } : { values: [N, ldw / 2], scales: [N, ldw / Q4_BLOCK] };
}
