// Seeded Gaussian noise that is identical on every adapter: Philox4x32-10 + Box-Muller in
// shaders/rng.wgsl. Element i depends only on (seed, stream, step counter, i).
import { fold1d, type Bindable, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { ShapeError } from '../errors.ts';

const WG = 256;

export interface NoiseOptions {
  /** Separates independent draws under one seed (e.g. initial latents vs. per-step noise). */
  stream?: number;
  /** An f32 step index at element `index` of a storage buffer, read on the GPU each run. */
  counter?: { buffer: GPUBuffer | Tensor; index: number };
}

const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** Philox key words for a seed: its low and high 32 bits. */
export function philoxKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new ShapeError(`seed ${seed} is not a non-negative safe integer`);
  return [seed >>> 0, Math.floor(seed / 2 ** 32)];
}

/** Standard normal noise of `shape`. */
export function gaussianNoise(g: Graph, label: string, shape: readonly number[], seed: number, opts: NoiseOptions = {}): Tensor {
  const [key0, key1] = philoxKey(seed);
  const stream = opts.stream ?? 0;
  if (!isU32(stream)) throw new ShapeError(`${label}: stream ${stream} is not a u32`);
  const n = numel(shape);
  const bind: Record<string, Bindable> = {};
  const uniforms: Record<string, number> = { n, key0, key1, stream };
  if (opts.counter) {
    const { buffer, index } = opts.counter;
    const held = 'shape' in buffer ? numel(buffer.shape) : Math.floor(buffer.size / 4);
    if (!Number.isInteger(index) || index < 0 || index >= held) {
      throw new ShapeError(`${label}: counter index ${index} is outside its buffer (${'shape' in buffer ? shapeStr(buffer.shape) : `${held} f32`})`);
    }
    bind.counter = buffer;
    uniforms.counter_index = index;
  }
  const out = g.alloc(shape, label);
  g.dispatch(label, { shader: 'rng', params: { COUNTER: !!opts.counter } }, { ...bind, out }, uniforms, fold1d(Math.ceil(n / 4 / WG)));
  return out;
}
