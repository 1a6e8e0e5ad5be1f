// f32 <-> f16 conversion at model boundaries (shaders/cast.wgsl), and host uploads and readbacks
// of tensors in either storage type.
import type { Runtime } from '../gpu/runtime.ts';
import { fold1d, type Graph } from '../graph/graph.ts';
import { bytesFor, dtypeOf, n4Elements, numel, type DType, type Tensor, type WeightLayout, isN4 } from '../graph/tensor.ts';
import { deinterleaveN4, interleaveN4 } from '../io/weight_layout.ts';
import { DTypeError } from '../errors.ts';
import { fromF16Array, toF16Array } from '../io/f16.ts';
import { packForGpu, type QuantizedHost } from '../io/quant.ts';

const WG = 256;

/**
 * x converted to `dtype`, or x itself when it already is (the caller then must not release the
 * result separately from x).
 */
export function castTo(g: Graph, label: string, x: Tensor, dtype: DType): Tensor {
  if (dtypeOf(x) === dtype) return x;
  const out = g.alloc(x.shape, label, dtype);
  const n = numel(x.shape);
  g.dispatch(label, { shader: 'cast', params: { F16: true, TO_F16: dtype === 'f16' } }, { a: x, out }, { n }, n === 0 ? [0] : fold1d(Math.ceil(n / WG)));
  return out;
}

/**
 * A model's boundary: `f` runs on `input` converted to the model's storage type, and its result
 * comes back as f32. The converted input and f's own result are released once converted; `input`
 * stays the caller's.
 */
export function inStorage(g: Graph, dtype: DType, input: Tensor, f: (x: Tensor) => Tensor, labels: [string, string] = ['input', 'output']): Tensor {
  const x = castTo(g, labels[0], input, dtype);
  const out = f(x);
  if (x !== input && x !== out) g.release(x);
  const out32 = castTo(g, labels[1], out, 'f32');
  if (out32 !== out) g.release(out);
  return out32;
}

/**
 * Host f32 values uploaded as a tensor stored in `dtype` (f16 rounds to nearest even), row-major
 * or, for a GEMM weight ([N, ...]), in `layout` (Tensor.layout; readTensor undoes it).
 */
export function uploadTensor(rt: Runtime, data: Float32Array, shape: readonly number[], label: string, dtype: DType = 'f32', layout?: WeightLayout): Tensor {
  const host = dtype === 'f16' ? new Uint32Array(toF16Array(data).buffer) : data;
  if (!layout) return { buffer: rt.upload(host, label), shape: [...shape], label, dtype };
  const N = shape[0] ?? 1;
  const bytes = interleaveN4(new Uint8Array(host.buffer, host.byteOffset, host.byteLength), N, data.length / N, dtype);
  return { buffer: rt.upload(new Uint32Array(bytes.buffer), label), shape: [...shape], label, dtype, layout };
}

/** A quantized weight (src/io/quant.ts) as the GEMM core binds it: one buffer of values and scales. */
export function uploadQuantized(rt: Runtime, q: QuantizedHost, shape: readonly number[], label: string): Tensor {
  return { buffer: rt.upload(new Uint32Array(packForGpu(q).buffer), label), shape: [...shape], label, quant: q.layout };
}

/** Reads a tensor back as f32 values, whatever its storage type; a weight's in row-major order whatever its layout. */
export async function readTensor(rt: Runtime, t: Tensor): Promise<Float32Array> {
  if (t.quant) throw new DTypeError(`readTensor: ${t.label} is quantized (${t.quant.format}); dequantize its words on the host (src/io/quant.ts)`);
  const n4 = isN4(t, 'readTensor');
  const n = n4 ? n4Elements(t.shape) : numel(t.shape);
  let v: Float32Array;
  if (dtypeOf(t) === 'f32') v = await rt.read(t.buffer, n * 4);
  else {
    const words = await rt.read(t.buffer, bytesFor(n, 'f16'));
    v = fromF16Array(new Uint16Array(words.buffer, words.byteOffset, words.byteLength / 2), n);
  }
  if (!n4) return v;
  const N = t.shape[0] ?? 1;
  return deinterleaveN4(v, N, numel(t.shape) / N);
}
