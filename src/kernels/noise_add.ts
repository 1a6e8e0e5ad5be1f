// Fused forward-diffusion noising (scheduler add_noise) through shaders/noise_add.wgsl.
import { fold1d, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { ShapeError } from '../errors.ts';

const WG = 256;

/** Fixed coefficients, or a row [a, b] at element `index` of a storage buffer, read on the GPU each run. */
export type NoiseAddCoef = { sqrtAlphaBar: number; sqrtOneMinusAlphaBar: number } | { buffer: GPUBuffer | Tensor; index: number };

/** x_t = a * x0 + b * noise (a = sqrt(ᾱ), b = sqrt(1 − ᾱ) for DDPM/DDIM), for equal shapes. */
export function noiseAdd(g: Graph, label: string, x0: Tensor, noise: Tensor, coef: NoiseAddCoef): Tensor {
  if (shapeStr(x0.shape) !== shapeStr(noise.shape)) throw new ShapeError(`${label}: x0 ${shapeStr(x0.shape)} and noise ${shapeStr(noise.shape)} differ`);
  const n = numel(x0.shape);
  const out = g.alloc(x0.shape, label);
  if ('buffer' in coef) {
    const { buffer, index } = coef;
    const held = 'shape' in buffer ? numel(buffer.shape) : Math.floor(buffer.size / 4);
    if (!Number.isInteger(index) || index < 0 || index + 1 >= held) {
      throw new ShapeError(`${label}: coefficient row [${index}, ${index + 1}] is outside its buffer (${'shape' in buffer ? shapeStr(buffer.shape) : `${held} f32`})`);
    }
    g.dispatch(label, { shader: 'noise_add', params: { COEF: true } }, { x0, noise, out, coef: buffer }, { n, coef_index: index }, fold1d(Math.ceil(n / WG)));
  } else {
    g.dispatch(label, { shader: 'noise_add', params: { COEF: false } }, { x0, noise, out }, { n, a: coef.sqrtAlphaBar, b: coef.sqrtOneMinusAlphaBar }, fold1d(Math.ceil(n / WG)));
  }
  return out;
}
