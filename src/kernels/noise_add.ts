// Fused forward-diffusion noising (scheduler add_noise) through shaders/noise_add.wgsl.
import { fold1d, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { ShapeError } from './gemm.ts';

const WG = 256;

/** x_t = sqrtAlphaBar * x0 + sqrtOneMinusAlphaBar * noise, for equal shapes. */
export function noiseAdd(g: Graph, label: string, x0: Tensor, noise: Tensor, coef: { sqrtAlphaBar: number; sqrtOneMinusAlphaBar: number }): Tensor {
  if (shapeStr(x0.shape) !== shapeStr(noise.shape)) throw new ShapeError(`${label}: x0 ${shapeStr(x0.shape)} and noise ${shapeStr(noise.shape)} differ`);
  const n = numel(x0.shape);
  const out = g.alloc(x0.shape, label);
  g.dispatch(label, { shader: 'noise_add' }, { x0, noise, out }, { n, a: coef.sqrtAlphaBar, b: coef.sqrtOneMinusAlphaBar }, fold1d(Math.ceil(n / WG)));
  return out;
}
