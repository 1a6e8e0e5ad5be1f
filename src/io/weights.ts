// Hands out a model's weights by diffusers key with the shape checked, and tracks which keys were
// taken: a key the builder never asked for means a layer was wired wrong or skipped.
import { toFloat32, type HostTensor } from './safetensors.ts';
import { WeightError } from '../errors.ts';

function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function commonSuffix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[a.length - 1 - i] === b[b.length - 1 - i]) i++;
  return i;
}

export class WeightStore {
  private readonly used = new Set<string>();

  /** `source` (the model folder) only goes into error messages. */
  constructor(
    private readonly tensors: Map<string, HostTensor>,
    readonly source: string,
  ) {}

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** The weights as f32 (possibly a view of the file's memory: do not write to it). */
  take(key: string, shape: readonly number[]): Float32Array {
    const t = this.tensors.get(key);
    if (!t) throw new WeightError('missing', `${this.source}: missing weight '${key}'${this.hint(key)}`);
    const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
    if (!same) {
      throw new WeightError('shape', `${this.source}: weight '${key}' has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
    }
    this.used.add(key);
    return toFloat32(t);
  }

  /** For layers a config may or may not have (a bias, a conv_shortcut): null when absent. */
  optional(key: string, shape: readonly number[]): Float32Array | null {
    return this.tensors.has(key) ? this.take(key, shape) : null;
  }

  unused(): string[] {
    return this.keys().filter((k) => !this.used.has(k));
  }

  assertAllUsed(): void {
    const left = this.unused();
    if (left.length === 0) return;
    const more = left.length > 10 ? `, ... (${left.length - 10} more)` : '';
    throw new WeightError('unused', `${this.source}: ${left.length} weights were never used: ${left.slice(0, 10).join(', ')}${more}`);
  }

  // The keys sharing the longest prefix with the one asked for (ties broken by the longest shared
  // suffix) usually show the real naming, e.g. `resnets.0.conv1.weight` for `resnets.1.conv1.weight`.
  private hint(key: string): string {
    const scored = this.keys().map((k) => ({ k, p: commonPrefix(k, key), s: commonSuffix(k, key) }));
    const best = scored.reduce((m, x) => Math.max(m, x.p), 0);
    if (best === 0) return ` (the file has ${this.tensors.size} weights, none sharing a prefix with it)`;
    const near = scored
      .filter((x) => x.p === best)
      .sort((a, b) => b.s - a.s || (a.k < b.k ? -1 : 1))
      .slice(0, 3)
      .map((x) => `'${x.k}'`);
    return `; nearest keys: ${near.join(', ')}`;
  }
}
