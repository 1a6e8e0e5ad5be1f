// A sample of the VAE posterior (diffusers' DiagonalGaussianDistribution) from its moments and
// given standard normal noise, in one pass: shaders/posterior_sample.wgsl.
import { fold1d, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { ShapeError } from '../errors.ts';

const WG = 256;

/** moments [B, 2C, ...spatial] (mean, logvar), noise [B, C, ...spatial] → mean + exp(0.5·clamp(logvar, −30, 20))·noise. */
export function posteriorSample(g: Graph, label: string, moments: Tensor, noise: Tensor): Tensor {
  const m = moments.shape;
  if (m.length < 2 || m[1]! % 2 !== 0) throw new ShapeError(`${label}: moments ${shapeStr(m)} are not [B, 2C, ...spatial]`);
  const shape = [m[0]!, m[1]! / 2, ...m.slice(2)];
  if (shapeStr(noise.shape) !== shapeStr(shape)) throw new ShapeError(`${label}: noise ${shapeStr(noise.shape)} should be ${shapeStr(shape)} for moments ${shapeStr(m)}`);
  const out = g.alloc(shape, label);
  const n = numel(shape);
  g.dispatch(label, { shader: 'posterior_sample' }, { moments, noise, out }, { n, chw: n / shape[0]! }, fold1d(Math.ceil(n / WG)));
  return out;
}
