// Uploads a model's weights as named GPU tensors. Modules ask for their own keys (diffusers'
// key paths), so a missing or misshapen weight is reported by the store with its full key.
import type { Runtime } from '../gpu/runtime.ts';
import type { DType, Tensor } from '../graph/tensor.ts';
import type { WeightStore } from '../io/weights.ts';
import { uploadTensor } from '../kernels/cast.ts';
import { WeightSlices } from './channel_split.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export class WeightLoader {
  private readonly uploaded: GPUBuffer[] = [];

  /** Channel slices of weights for activations split to fit the binding limit (shared by sub-loaders). */
  readonly slices: WeightSlices;

  /** dtype: how every weight is stored on the GPU (f16 rounds the file's values to nearest even). */
  constructor(readonly rt: Runtime, readonly store: WeightStore, readonly prefix = '', readonly dtype: DType = 'f32') {
    this.slices = new WeightSlices(rt, (b) => this.own(b));
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
    const t = uploadTensor(this.rt, data, shape, label, this.dtype);
    this.uploaded.push(t.buffer);
    return t;
  }

  /** Makes `buffer` (a weight derived on the GPU, such as a slice) freed with this loader's weights. */
  own(buffer: GPUBuffer): void {
    this.uploaded.push(buffer);
  }

  has(name: string): boolean {
    return this.store.has(this.key(name));
  }

  destroy(): void {
    for (const b of this.uploaded) this.rt.destroyBuffer(b);
    this.uploaded.length = 0;
  }
}

/**
 * Reads config fields with their diffusers defaults, checking each value's type, and rejects
 * values we do not implement and keys the model class does not know, so nothing is silently
 * ignored.
 */
export class ConfigReader {
  constructor(readonly config: Record<string, unknown>, readonly where: string) {}

  private fail(key: string, want: string): never {
    throw new ConfigError(`${this.where}: config option ${key} = ${JSON.stringify(this.config[key])} is not ${want}`);
  }

  private present(key: string): boolean {
    return this.config[key] !== undefined && this.config[key] !== null;
  }

  int(key: string, fallback: number, min = 0): number {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }

  num(key: string, fallback: number): number {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a finite number');
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  intList(key: string, fallback: number[]): number[] {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) this.fail(key, 'a non-empty list of positive integers');
    return v as number[];
  }

  strList(key: string, fallback: string[]): string[] {
    if (!this.present(key)) return fallback;
    const v = this.config[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) this.fail(key, 'a non-empty list of strings');
    return v as string[];
  }

  /** The raw value, where null is meaningful (e.g. attention_head_dim = None). */
  raw(key: string): unknown {
    return this.config[key];
  }

  has(key: string): boolean {
    return key in this.config;
  }

  /** Throws unless the option is absent, null, or one of `allowed`. */
  only(key: string, allowed: unknown[], why = 'is not supported'): void {
    const v = this.config[key];
    if (v === undefined || v === null) return;
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(v))) {
      throw new ConfigError(`${this.where}: config option ${key} = ${JSON.stringify(v)} ${why} (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ') || 'none'})`);
    }
  }

  /** Rejects keys outside the class's constructor signature (beyond diffusers' bookkeeping keys). */
  knownKeys(keys: readonly string[]): void {
    const known = new Set([...keys, '_class_name', '_diffusers_version', '_name_or_path', '_use_default_values']);
    const unknown = Object.keys(this.config).filter((k) => !known.has(k) && this.config[k] !== null && this.config[k] !== false);
    if (unknown.length) throw new ConfigError(`${this.where}: config option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not supported (not part of this model class in diffusers 0.25)`);
  }
}
