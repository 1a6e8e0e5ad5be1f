// Hands out a model's weights by diffusers key with the shape checked, and tracks which keys were
// taken: a key the builder never asked for means a layer was wired wrong or skipped.
import type { ByteSource } from './byte_source.ts';
import { streamTensors, toFloat32, type DType, type HostTensor, type SafetensorsHeader } from './safetensors.ts';
import { quantLayout, storedShapes, SCALE_SUFFIX, type QuantFormat, type QuantizedHost } from './quant.ts';
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

/** What the store knows of a tensor before its bytes arrive. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/** Receives a tensor's bytes; they are valid only during the call (copy or upload them). */
export type TensorSink = (t: HostTensor) => void;

/** A weight file read as a stream: its checked header, and where to stream the bytes from. */
export interface StreamedFile {
  /** The file's name in its folder (progress reports use it). */
  name: string;
  source: ByteSource;
  header: SafetensorsHeader;
}

/** Progress of fill(), per file: bytes of its claimed tensors delivered so far, of all it holds. */
export type FillProgress = (loadedBytes: number, totalBytes: number, file: string) => void;

/**
 * Two kinds of store: one over tensors in memory (a whole small file, random weights), which
 * hands bytes out at once; and a streamed one over files known by their headers alone, where a
 * model claims each tensor while it is built (shapes checked, GPU buffers made) and fill() then
 * streams each file once, giving every tensor to its claims as its bytes pass.
 */
export class WeightStore {
  private readonly used = new Set<string>();
  private readonly infos: Map<string, TensorInfo>;
  private readonly files: StreamedFile[] = [];
  private readonly fileOf = new Map<string, number>();
  private readonly claims = new Map<string, TensorSink[]>();
  /** GPU bytes of the buffers made for this store's tensors (WeightLoader counts them). */
  gpuBytes = 0;

  /** `source` (the model folder) only goes into error messages. */
  constructor(
    private readonly tensors: Map<string, HostTensor>,
    readonly source: string,
  ) {
    this.infos = new Map(tensors);
  }

  /**
   * A store over streamed files (a sharded checkpoint has several). A key in two files is an
   * error: which one a model would get would depend on the order they were listed.
   */
  static streamed(files: StreamedFile[], source: string): WeightStore {
    const store = new WeightStore(new Map(), source);
    files.forEach((f, i) => {
      store.files.push(f);
      for (const [key, e] of f.header.entries) {
        const prev = store.fileOf.get(key);
        if (prev !== undefined) throw new WeightError('duplicate', `${source}: weight '${key}' is in both ${files[prev]!.source.where} and ${f.source.where}`);
        store.fileOf.set(key, i);
        store.infos.set(key, e);
      }
    });
    return store;
  }

  /** True when tensors arrive through fill() rather than at once. */
  get isStreamed(): boolean {
    return this.files.length > 0;
  }

  has(key: string): boolean {
    return this.infos.has(key);
  }

  keys(): string[] {
    return [...this.infos.keys()];
  }

  info(key: string): TensorInfo | undefined {
    return this.infos.get(key);
  }

  /** Checks that `key` exists with `shape` and marks it used. */
  protected check(key: string, shape: readonly number[]): TensorInfo {
    const t = this.infos.get(key);
    if (!t) throw new WeightError('missing', `${this.source}: missing weight '${key}'${this.hint(key)}`);
    const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
    if (!same) {
      throw new WeightError('shape', `${this.source}: weight '${key}' has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
    }
    this.used.add(key);
    return t;
  }

  /** The tensor's bytes now (an in-memory store only: a streamed one has none until fill()). */
  takeHost(key: string, shape: readonly number[]): HostTensor {
    if (this.isStreamed) throw new WeightError('not-filled', `${this.source}: weight '${key}' is streamed and has no bytes yet (claim it, then fill())`);
    this.check(key, shape);
    return this.tensors.get(key)!;
  }

  /** The weights as f32 (possibly a view of the file's memory: do not write to it). */
  take(key: string, shape: readonly number[]): Float32Array {
    return toFloat32(this.takeHost(key, shape));
  }

  /** For layers a config may or may not have (a bias, a conv_shortcut): null when absent. */
  optional(key: string, shape: readonly number[]): Float32Array | null {
    return this.has(key) ? this.take(key, shape) : null;
  }

  /**
   * Asks for the tensor's bytes: `sink` gets them now from an in-memory store, or during fill()
   * from a streamed one. The key and shape are checked here either way.
   */
  claim(key: string, shape: readonly number[], sink: TensorSink): void {
    if (!this.isStreamed) {
      sink(this.takeHost(key, shape));
      return;
    }
    this.check(key, shape);
    const list = this.claims.get(key);
    if (list) list.push(sink);
    else this.claims.set(key, [sink]);
  }

  /**
   * The format of a weight a pre-quantized file holds (src/io/quant.ts: int8 or packed 4-bit values
   * beside `key_scale`), or null for a float one.
   */
  quantFormat(key: string): QuantFormat | null {
    const t = this.infos.get(key);
    if (!t || !this.infos.has(key + SCALE_SUFFIX)) return null;
    return t.dtype === 'I8' ? 'q8' : t.dtype === 'U8' ? 'q4' : null;
  }

  /**
   * Claims a pre-quantized weight of the model's `shape` (values and scales checked against it);
   * `sink` gets both once both have arrived, in either order.
   */
  claimQuantized(key: string, shape: readonly number[], sink: (q: QuantizedHost) => void): void {
    const format = this.quantFormat(key);
    if (!format) throw new WeightError('missing', `${this.source}: weight '${key}' is not stored quantized`);
    const want = storedShapes(format, shape);
    const scaleKey = key + SCALE_SUFFIX;
    const scaleDtype = this.infos.get(scaleKey)!.dtype;
    if (scaleDtype !== 'F16') throw new WeightError('shape', `${this.source}: ${format} weight '${key}' has ${scaleDtype} scales '${scaleKey}'; they must be F16`);
    const quantShape = (k: string, s: readonly number[]) => {
      try {
        this.check(k, s);
      } catch (e) {
        if (e instanceof WeightError && e.code === 'shape') throw new WeightError('shape', `${e.message} (${format}-quantized ${shapeStr(shape)} weight)`);
        throw e;
      }
    };
    quantShape(key, want.values);
    quantShape(scaleKey, want.scales);
    const N = shape[0]!;
    const layout = quantLayout(format, N, shape.slice(1).reduce((a, b) => a * b, 1));
    let data: Uint8Array | null = null;
    let scales: Uint16Array | null = null;
    const done = () => {
      if (data && scales) sink({ layout, data, scales });
    };
    // Bytes are valid only during a sink's call: the part that arrives first is kept as a copy.
    const first = () => data === null && scales === null;
    this.claim(key, want.values, (t) => {
      data = first() ? t.bytes.slice() : t.bytes;
      done();
    });
    this.claim(scaleKey, want.scales, (t) => {
      const b = first() ? t.bytes.slice() : t.bytes;
      scales = b.byteOffset % 2 === 0 ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : new Uint16Array(b.slice().buffer);
      done();
    });
  }

  /** Marks a tensor used without reading it (a buffer the model implies, such as position_ids). */
  skip(key: string, shape: readonly number[]): void {
    this.check(key, shape);
  }

  /** Bytes fill() will stream for the claims made so far. */
  get claimedBytes(): number {
    let n = 0;
    for (const key of this.claims.keys()) n += this.infoBytes(key);
    return n;
  }

  /**
   * Streams every file that holds a claimed tensor, once, in file order, and gives each tensor to
   * its claims. Claims are dropped as they are served, so a second fill() streams nothing. `pace`
   * is awaited after each tensor (the caller's backpressure: let the GPU take what was written).
   */
  async fill(onProgress?: FillProgress, pace?: (bytes: number) => Promise<void> | void): Promise<void> {
    for (const [i, f] of this.files.entries()) {
      const wanted = new Set([...this.claims.keys()].filter((k) => this.fileOf.get(k) === i));
      if (wanted.size === 0) continue;
      let total = 0;
      for (const k of wanted) total += this.infoBytes(k);
      let loaded = 0;
      onProgress?.(0, total, f.name);
      await streamTensors(f.source, f.header, wanted, async (t) => {
        const sinks = this.claims.get(t.name)!;
        this.claims.delete(t.name);
        for (const sink of sinks) sink(t);
        loaded += t.bytes.byteLength;
        onProgress?.(loaded, total, f.name);
        await pace?.(t.bytes.byteLength);
      });
    }
  }

  private infoBytes(key: string): number {
    const e = this.files[this.fileOf.get(key)!]!.header.entries.get(key)!;
    return e.end - e.begin;
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
    if (best === 0) return ` (the file has ${this.infos.size} weights, none sharing a prefix with it)`;
    const near = scored
      .filter((x) => x.p === best)
      .sort((a, b) => b.s - a.s || (a.k < b.k ? -1 : 1))
      .slice(0, 3)
      .map((x) => `'${x.k}'`);
    return `; nearest keys: ${near.join(', ')}`;
  }
}
