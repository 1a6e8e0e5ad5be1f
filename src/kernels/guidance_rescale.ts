// diffusers' guidance_rescale on the U-Net's guidance batch, in place (shaders/guidance_rescale.wgsl).
import type { Graph } from '../graph/graph.ts';
import { dtypeOf, numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { ShapeError } from '../errors.ts';
import { reduceParams } from './reduce.ts';

/**
 * eps [2B, ...] = [cond; uncond] (f32): the cond half becomes the rescaled guided prediction, so a
 * scheduler step with guidance 1 uses it. rescale φ in (0, 1].
 */
export function guidanceRescale(g: Graph, label: string, eps: Tensor, guidance: number, rescale: number): Tensor {
  const [twoB] = eps.shape as [number];
  if (eps.shape.length < 2 || twoB % 2 !== 0) throw new ShapeError(`${label}: ${shapeStr(eps.shape)} is not a guidance batch [2B, ...]`);
  if (dtypeOf(eps) !== 'f32') throw new ShapeError(`${label}: the noise prediction must be f32`);
  if (!(rescale > 0 && rescale <= 1)) throw new RangeError(`${label}: guidance_rescale must be in (0, 1], got ${rescale}`);
  const batch = twoB / 2;
  g.dispatch(label, { shader: 'guidance_rescale', params: reduceParams(g.rt) }, { x: eps }, { n: numel(eps.shape) / twoB, batch, guidance, rescale }, [batch]);
  return eps;
}
