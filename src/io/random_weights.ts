// Weights made up on request, for benchmarks and tests of model shapes that cannot be downloaded
// here (a Stable Diffusion-sized VAE or U-Net): every key a model asks for exists, with values
// that keep activations O(1) so timings and memory are those of a real run.
import type { HostTensor } from './safetensors.ts';
import { WeightStore } from './weights.ts';

/** Hash of a key, so a weight's values do not depend on the order layers are built in. */
function hash(s: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/**
 * Uniform(±1/sqrt(fan_in)) for matrices and kernels (PyTorch's default init scale), 1 ± 0.1 for
 * norm scales (1-D `.weight`), ±0.1 for biases and other vectors.
 */
export function randomWeight(key: string, shape: readonly number[], seed = 0): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
  const scale = fanIn ? 1 / Math.sqrt(fanIn) : 0.1;
  const center = shape.length === 1 && key.endsWith('.weight') ? 1 : 0;
  let s = hash(key, seed);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = center + ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** A WeightStore holding whatever a model asks for. Optional layers are absent (has() is false). */
export class RandomWeightStore extends WeightStore {
  constructor(private readonly seed = 0) {
    super(new Map<string, HostTensor>(), 'random weights');
  }

  override takeHost(key: string, shape: readonly number[]): HostTensor {
    const data = randomWeight(key, shape, this.seed);
    return { name: key, dtype: 'F32', shape: [...shape], bytes: new Uint8Array(data.buffer) };
  }

  override unused(): string[] {
    return [];
  }
}
