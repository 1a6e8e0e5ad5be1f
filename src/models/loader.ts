// Uploads a model's weights as named GPU tensors. Modules ask for their own keys (diffusers'
// key paths), so a missing or misshapen weight is reported by the store with its full key.
// Asking makes the GPU buffer at once and claims the bytes: a store in memory fills it now, a
// streamed one later (WeightStore.fill), so a model is built, checked and allocated before any
// weight byte is downloaded.
import type { Runtime } from '../gpu/runtime.ts';
import { bytesFor, n4Elements, numel, type DType, type Tensor, type WeightLayout } from '../graph/tensor.ts';
import { interleaveN4 } from '../io/weight_layout.ts';
import { toF16Array } from '../io/f16.ts';
import { toFloat32, type HostTensor } from '../io/safetensors.ts';
import { dequantize, packForGpu, quantize, quantLayout, SCALE_SUFFIX, type QuantFormat, type QuantizedHost } from '../io/quant.ts';
import type { WeightStore } from '../io/weights.ts';
import { WeightSlices } from './channel_split.ts';
import { isConv3x3, registerDerived } from '../kernels/winograd.ts';
import { PlanLimitError, WeightError } from '../errors.ts';
export { ConfigError } from '../errors.ts';

/** The tensor's bytes in storage type `dtype`: the file's own bytes when they already are. */
function storageBytes(t: HostTensor, dtype: DType): Uint8Array {
  if ((dtype === 'f16' && t.dtype === 'F16') || (dtype === 'f32' && t.dtype === 'F32')) return t.bytes;
  const f = toFloat32(t);
  const v = dtype === 'f16' ? toF16Array(f) : f;
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Writes `bytes` at the start of `buffer` (writeBuffer takes whole 4-byte words: an odd f16 count is padded). */
function writeBytes(rt: Runtime, buffer: GPUBuffer, bytes: Uint8Array): void {
  let b = bytes;
  if (b.byteLength % 4 !== 0) {
    b = new Uint8Array(Math.ceil(b.byteLength / 4) * 4);
    b.set(bytes);
  }
  if (b.byteLength) rt.device.queue.writeBuffer(buffer, 0, b.buffer, b.byteOffset, b.byteLength);
}

export class WeightLoader {
  private readonly uploaded: GPUBuffer[] = [];

  /** Channel slices of weights for activations split to fit the binding limit (shared by sub-loaders). */
  readonly slices: WeightSlices;

  /**
   * How gemmWeight stores a float GEMM weight: 'n4' interleaves four output channels per k (what
   * the direct GEMM feed reads fastest: one vector load per four columns instead of four scattered
   * reads; with packed f16 weights on SwiftShader the U-Net step ran 1.3-1.45x faster,
   * bench/README.md), 'rows' row-major as the file has it, 'auto' 'n4' when the runtime's feed is
   * 'direct' as the weight is made.
   * Either layout runs on either feed: this is fixed per weight at load, whatever the runtime's
   * feed becomes later. Set it on the root loader before building (sub-loaders inherit it).
   */
  gemmLayout: 'auto' | 'rows' | WeightLayout = 'auto';

  /** Every weight tensor() made, by its full key (shared by sub-loaders): what a LoRA merges into. */
  readonly weights = new Map<string, Tensor>();

  /**
   * dtype: the model's activations (what its kernels compute in and store between ops).
   * weightDtype: how every weight is stored on the GPU (f16 rounds the file's values to nearest
   * even); f16 weights beside f32 activations is the path of adapters without shader-f16.
   * quant: how GEMM weights (gemmWeight) are stored: 'q8' / 'q4' quantized (a pre-quantized file's
   * weights in another format are dequantized and quantized again), 'float' in weightDtype (a
   * pre-quantized file's dequantized), undefined as the file has them.
   */
  constructor(readonly rt: Runtime, readonly store: WeightStore, readonly prefix = '', readonly dtype: DType = 'f32', readonly weightDtype: DType = dtype, readonly quant?: QuantFormat | 'float') {
    this.slices = new WeightSlices(rt, (b) => this.own(b), (b) => this.disown(b));
  }

  /** A loader whose keys are relative to `prefix.` */
  sub(name: string): WeightLoader {
    const child = Object.create(this) as WeightLoader;
    (child as { prefix: string }).prefix = this.key(name);
    return child;
  }

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  /** A weight, stored in weightDtype (or `dtype` where a module needs another, such as f32). */
  tensor(name: string, shape: readonly number[], dtype: DType = this.weightDtype): Tensor {
    const key = this.key(name);
    const t = this.alloc(shape, key, dtype);
    this.claimFloat(key, shape, (host) => writeBytes(this.rt, t.buffer, storageBytes(host, dtype)));
    this.weights.set(key, t);
    return t;
  }

  /**
   * The weight of a Linear ([N, K]) or conv ([N, Cin, kh, kw]), which only the GEMM core reads: in
   * weightDtype, or quantized (src/io/quant.ts) as `quant` and the file say.
   */
  gemmWeight(name: string, shape: readonly number[]): Tensor {
    const key = this.key(name);
    const stored = this.store.quantFormat(key);
    const format = this.quant === 'float' ? null : (this.quant ?? stored);
    if (!format) {
      const t = this.gemmLayout === 'n4' || (this.gemmLayout === 'auto' && this.rt.gemmFeed === 'direct') ? this.interleaved(key, shape) : this.tensor(name, shape);
      // A 3x3 conv's weight may run as a Winograd conv, whose transform the slices cache keeps.
      if (isConv3x3(t)) registerDerived(t, this.slices);
      return t;
    }
    const N = shape[0]!;
    const K = numel(shape) / N;
    const layout = quantLayout(format, N, K);
    const t: Tensor = { ...this.alloc([...shape], key, this.weightDtype, layout.bytes), quant: layout };
    const upload = (q: QuantizedHost) => writeBytes(this.rt, t.buffer, packForGpu(q));
    if (stored === format) this.store.claimQuantized(key, shape, upload);
    else this.claimFloat(key, shape, (host) => upload(quantize(format, toFloat32(host), N, K)));
    this.weights.set(key, t);
    return t;
  }

  /** A float GEMM weight stored 'n4' (Tensor.layout): four output channels interleaved per k. */
  private interleaved(key: string, shape: readonly number[]): Tensor {
    const dtype = this.weightDtype;
    const N = shape[0]!;
    const t: Tensor = { ...this.alloc(shape, key, dtype, bytesFor(n4Elements(shape), dtype)), layout: 'n4' };
    this.claimFloat(key, shape, (host) => writeBytes(this.rt, t.buffer, interleaveN4(storageBytes(host, dtype), N, numel(shape) / N, dtype)));
    this.weights.set(key, t);
    return t;
  }

  /** Claims `key` as float values: a pre-quantized weight arrives dequantized (as f32). */
  private claimFloat(key: string, shape: readonly number[], sink: (host: HostTensor) => void): void {
    if (!this.store.quantFormat(key)) {
      // Integer values without their scales would be read as the integers themselves.
      const dtype = this.store.info(key)?.dtype;
      if (dtype === 'I8' || dtype === 'U8') throw new WeightError('missing', `${this.store.source}: weight '${key}' is ${dtype} (a quantized weight's values) but the file has no '${key}${SCALE_SUFFIX}' with its scales`);
      return this.store.claim(key, shape, sink);
    }
    this.store.claimQuantized(key, shape, (q) => {
      const v = dequantize(q);
      sink({ name: key, dtype: 'F32', shape: [...shape], bytes: new Uint8Array(v.buffer) });
    });
  }

  /** A tensor of values `f` derives from the weight's (a shifted bias), stored like the weights. */
  derived(name: string, shape: readonly number[], f: (values: Float32Array) => Float32Array, label: string): Tensor {
    const key = this.key(name);
    const t = this.alloc(shape, label, this.weightDtype);
    this.claimFloat(key, shape, (host) => {
      const v = f(toFloat32(host));
      writeBytes(this.rt, t.buffer, storageBytes({ name: label, dtype: 'F32', shape: [...shape], bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) }, this.weightDtype));
    });
    return t;
  }

  /**
   * Row ranges [start, end) of a [rows, ...] weight as separate tensors (a table too large for
   * one binding): each is a byte range of the weight's rows.
   */
  rows(name: string, shape: readonly number[], ranges: readonly [number, number][], label: (range: [number, number]) => string): Tensor[] {
    const key = this.key(name);
    const inner = numel(shape.slice(1));
    const parts = ranges.map(([s, e]) => this.alloc([e - s, ...shape.slice(1)], label([s, e]), this.weightDtype));
    this.claimFloat(key, shape, (host) => {
      const bytes = storageBytes(host, this.weightDtype);
      const row = inner * (this.weightDtype === 'f16' ? 2 : 4);
      ranges.forEach(([s, e], i) => writeBytes(this.rt, parts[i]!.buffer, bytes.subarray(s * row, e * row)));
    });
    return parts;
  }

  private alloc(shape: readonly number[], label: string, dtype: DType, bytes = bytesFor(numel(shape), dtype)): Tensor {
    // Every weight is bound whole by its kernel: one too large fails here, before any download.
    const limit = this.rt.planLimits.binding;
    if (bytes > limit) throw new PlanLimitError(`weight '${label}' [${shape.join(', ')}] needs ${bytes} bytes in one binding, over this device's maxStorageBufferBindingSize ${limit}`);
    const buffer = this.rt.createBuffer(bytes, label);
    this.uploaded.push(buffer);
    this.store.gpuBytes += buffer.size;
    return { buffer, shape: [...shape], label, dtype };
  }

  /** Makes `buffer` (a weight derived on the GPU, such as a slice) freed with this loader's weights. */
  own(buffer: GPUBuffer): void {
    this.uploaded.push(buffer);
  }

  /** Takes back a buffer given to own() (the caller destroys it). */
  disown(buffer: GPUBuffer): void {
    const i = this.uploaded.indexOf(buffer);
    if (i >= 0) this.uploaded.splice(i, 1);
  }

  has(name: string): boolean {
    return this.store.has(this.key(name));
  }

  destroy(): void {
    for (const b of this.uploaded) this.rt.destroyBuffer(b);
    this.uploaded.length = 0;
  }
}
