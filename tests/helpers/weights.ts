// Model weights in kernel tests. A case uploads its weight tensors (a GEMM's w and bias, a norm's
// gamma and beta, an embedding table, a codebook) with weight() instead of input(), so the op
// table can rerun it with the weights stored apart from the activations: in f16 beside f32
// activations (the path of adapters without shader-f16), or as the f16-rounded values in f32 (what
// that path must equal bit for bit). runtimeWithoutF16() is a device without shader-f16 even on an
// adapter that has it, where the f16 weights are read as packed u32 words.
import { createGpu } from '../../src/gpu/device.ts';
import { Runtime } from '../../src/gpu/runtime.ts';
import type { DType, Tensor, WeightLayout } from '../../src/graph/tensor.ts';
import { f16Bits, f16Value } from '../../src/io/f16.ts';
import { dequantize, quantize, type QuantFormat } from '../../src/io/quant.ts';
import { uploadQuantized, uploadTensor } from '../../src/kernels/cast.ts';
import { isConv3x3, registerDerived, transformOnce } from '../../src/kernels/winograd.ts';
import { input, storageType, withRuntime } from './gpu.ts';

/**
 * 'activations': weights stored like the activations (input()'s storage type, the f32 and f16 rows);
 * 'f16': in f16, beside f32 activations; 'f16-values': the f16-rounded values stored in f32.
 */
export type WeightMode = 'activations' | 'f16' | 'f16-values' | QuantFormat | `${QuantFormat}-values`;

let mode: WeightMode = 'activations';
let uploads = 0;

/** Runs fn with weight() uploading in `m`; returns its result and how many weights it uploaded. */
export async function withWeights<T>(m: WeightMode, fn: () => Promise<T>): Promise<{ result: T; weights: number }> {
  const prev = [mode, uploads] as const;
  mode = m;
  uploads = 0;
  try {
    const result = await fn();
    return { result, weights: uploads };
  } finally {
    [mode, uploads] = prev;
  }
}

/** data rounded to the nearest f16 values (ties to even, as uploads round), kept in f32. */
export function roundF16(data: Float32Array): Float32Array {
  return data.map((v) => f16Value(f16Bits(v)));
}

let layout: 'rows' | WeightLayout = 'rows';
let n4Uploads = 0;

/**
 * Runs fn with weight() storing GEMM weights (2-D or more, float) in `l` (Tensor.layout), as
 * WeightLoader.gemmWeight does for the direct feed. Only for GEMM cases: an embedding's table is
 * 2-D too. Also says how many weights fn stored 'n4', so a row cannot pass on row-major ones.
 */
export async function withGemmLayout<T>(l: 'rows' | WeightLayout, fn: () => Promise<T>): Promise<{ result: T; n4: number }> {
  const prev = [layout, n4Uploads] as const;
  layout = l;
  n4Uploads = 0;
  try {
    const result = await fn();
    return { result, n4: n4Uploads };
  } finally {
    [layout, n4Uploads] = [prev[0], prev[1] + n4Uploads];
  }
}

/** input() of a GEMM weight stored 'n4': four output channels interleaved per k. */
function inputN4(rt: Runtime, arr: Float32Array, shape: number[], label: string, dtype: DType): Tensor {
  n4Uploads++;
  return uploadTensor(rt, arr, shape, label, dtype, 'n4');
}

let winograd = false;
let transforms = 0;

/**
 * Runs fn on `rt` with Runtime.winograd on for convs of any size and weight() registering each float 3x3 conv weight for
 * Winograd convs, as WeightLoader.gemmWeight does (its transform made on first use, once, by
 * src/kernels/winograd.ts as a model's WeightSlices makes it). Says how many weights fn's convs
 * transformed, so a row cannot pass on the implicit-GEMM conv.
 */
export async function withWinogradWeights<T>(rt: Runtime, fn: () => Promise<T>): Promise<{ result: T; transforms: number }> {
  const prev = [winograd, transforms] as const;
  [winograd, transforms] = [true, 0];
  try {
    // Every eligible conv, however small (Runtime.winogradMinWork keeps small ones off it in models).
    const result = await withRuntime(rt, { winograd: true, winogradMinWork: 0 }, fn);
    return { result, transforms };
  } finally {
    winograd = prev[0];
    transforms = prev[1] + transforms;
  }
}

/** Registers t for Winograd convs when withWinogradWeights is on; its transform is made on the weight's own runtime. */
function registered(rt: Runtime, t: Tensor): Tensor {
  if (winograd && isConv3x3(t)) registerDerived(t, transformOnce(rt, () => transforms++));
  return t;
}

/** A model weight uploaded as the current mode says. */
export function weight(rt: Runtime, data: Float32Array | number[], shape: number[], label = 'weight'): Tensor {
  return registered(rt, uploadWeight(rt, data, shape, label));
}

function uploadWeight(rt: Runtime, data: Float32Array | number[], shape: number[], label: string): Tensor {
  const arr = data instanceof Float32Array ? data : new Float32Array(data);
  uploads++;
  const gemm = layout === 'n4' && shape.length >= 2;
  if (gemm && (mode === 'f16' || mode === 'f16-values' || mode === 'activations')) {
    return inputN4(rt, mode === 'f16-values' ? roundF16(arr) : arr, shape, label, mode === 'f16' ? 'f16' : mode === 'f16-values' ? 'f32' : storageType());
  }
  if (mode === 'f16') return input(rt, arr, shape, label, 'f16');
  if (mode === 'f16-values') return input(rt, roundF16(arr), shape, label, 'f32');
  // Quantized modes: GEMM weights ([N, ...], 2-D or more) quantized, everything else (a bias) in f32.
  if (mode !== 'activations' && shape.length >= 2) {
    const [format, values] = mode.split('-') as [QuantFormat, string | undefined];
    const q = quantize(format, arr, shape[0]!, arr.length / shape[0]!);
    if (values) return input(rt, dequantize(q), shape, label, 'f32');
    return uploadQuantized(rt, q, shape, label);
  }
  if (mode !== 'activations') return input(rt, arr, shape, label, 'f32');
  return input(rt, arr, shape, label);
}

/**
 * The activations' storage type for a kernel whose output type cannot follow its inputs (an
 * embedding's output beside its table): f32 while weights are stored apart, else undefined (the
 * kernel's default: the table's own type).
 */
export function activationsBesideWeights(): DType | undefined {
  return mode === 'activations' ? undefined : 'f32';
}

let noF16: Promise<Runtime> | null = null;

/** One runtime per test worker on a device created without shader-f16 (beside runtime()'s device). */
export function runtimeWithoutF16(): Promise<Runtime> {
  noF16 ??= createGpu({ wantF16: false }).then((gpu) => {
    if (gpu.features.has('shader-f16')) throw new Error('a device requested without shader-f16 has it');
    return new Runtime(gpu);
  });
  return noF16;
}
