// Uploads a model's weights as named GPU tensors. Modules ask for their own keys (diffusers'
// key paths), so a missing or misshapen weight is reported by the store with its full key.
import type { Runtime } from '../gpu/runtime.ts';
import type { DType, Tensor } from '../graph/tensor.ts';
import type { WeightStore } from '../io/weights.ts';
import { uploadTensor } from '../kernels/cast.ts';
import { WeightSlices } from './channel_split.ts';
export { ConfigError } from '../errors.ts';

export class WeightLoader {
  private readonly uploaded: GPUBuffer[] = [];

  /** Channel slices of weights for activations split to fit the binding limit (shared by sub-loaders). */
  readonly slices: WeightSlices;

  /**
   * dtype: the model's activations (what its kernels compute in and store between ops).
   * weightDtype: how every weight is stored on the GPU (f16 rounds the file's values to nearest
   * even); f16 weights beside f32 activations is the path of adapters without shader-f16.
   */
  constructor(readonly rt: Runtime, readonly store: WeightStore, readonly prefix = '', readonly dtype: DType = 'f32', readonly weightDtype: DType = dtype) {
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

  tensor(name: string, shape: readonly number[]): Tensor {
    const key = this.key(name);
    return this.upload(this.store.take(key, shape), shape, key);
  }

  /** Host values derived from weights (a slice, a shifted bias), stored like the weights. */
  upload(data: Float32Array, shape: readonly number[], label: string): Tensor {
    const t = uploadTensor(this.rt, data, shape, label, this.weightDtype);
    this.uploaded.push(t.buffer);
    return t;
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
