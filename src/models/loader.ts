// Uploads a model's weights as named GPU tensors. Modules ask for their own keys (diffusers'
// key paths), so a missing or misshapen weight is reported by the store with its full key.
import type { Runtime } from '../gpu/runtime.ts';
import type { Tensor } from '../graph/tensor.ts';
import type { WeightStore } from '../io/weights.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export class WeightLoader {
  private readonly uploaded: GPUBuffer[] = [];

  constructor(readonly rt: Runtime, readonly store: WeightStore, readonly prefix = '') {}

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
    const data = this.store.take(key, shape);
    const buffer = this.rt.upload(data, key);
    this.uploaded.push(buffer);
    return { buffer, shape: [...shape], label: key };
  }

  has(name: string): boolean {
    return this.store.has(this.key(name));
  }

  destroy(): void {
    for (const b of this.uploaded) this.rt.destroyBuffer(b);
    this.uploaded.length = 0;
  }
}

/** Reads config fields with their diffusers defaults and rejects values we do not implement. */
export class ConfigReader {
  constructor(readonly config: Record<string, unknown>, readonly where: string) {}

  get<T>(key: string, fallback: T): T {
    const v = this.config[key];
    return v === undefined || v === null ? fallback : (v as T);
  }

  /** The raw value, where null is meaningful (e.g. attention_head_dim = None). */
  raw(key: string): unknown {
    return this.config[key];
  }

  /** Throws unless the option is absent, null, or one of `allowed`. */
  only(key: string, allowed: unknown[], why = 'is not supported'): void {
    const v = this.config[key];
    if (v === undefined || v === null) return;
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(v))) {
      throw new ConfigError(`${this.where}: config option ${key} = ${JSON.stringify(v)} ${why} (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`);
    }
  }
}
