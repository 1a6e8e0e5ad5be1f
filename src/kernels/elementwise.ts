// SiLU, scaling, scaled residual add, channel concat and nearest 2x upsample: one thread per output
// element through shaders/elementwise.wgsl, one template variant per op.
import { fold1d, type Bindable, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor } from '../graph/tensor.ts';
import { ShapeError } from './gemm.ts';

const WG = 256;

type Op = 'SILU' | 'SCALE' | 'ADD' | 'CONCAT' | 'UPSAMPLE';

function run(g: Graph, label: string, op: Op, shape: readonly number[], bind: Record<string, Bindable>, uniforms: Record<string, number>): Tensor {
  const out = g.alloc(shape, label);
  const n = numel(shape);
  g.dispatch(label, { shader: 'elementwise', params: { [op]: true } }, { ...bind, out }, { n, ...uniforms }, fold1d(Math.ceil(n / WG)));
  return out;
}

export function silu(g: Graph, label: string, x: Tensor): Tensor {
  return run(g, label, 'SILU', x.shape, { a: x }, {});
}

/** x * s */
export function scale(g: Graph, label: string, x: Tensor, s: number): Tensor {
  return run(g, label, 'SCALE', x.shape, { a: x }, { scale: s });
}

/** (a + b) * scale, for equal shapes. */
export function add(g: Graph, label: string, a: Tensor, b: Tensor, scale = 1): Tensor {
  if (shapeStr(a.shape) !== shapeStr(b.shape)) throw new ShapeError(`${label}: cannot add ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  return run(g, label, 'ADD', a.shape, { a, b }, { scale });
}

/** torch.cat([a, b], dim=1) for [B, C1, ...] and [B, C2, ...] with the same spatial dims. */
export function concatChannels(g: Graph, label: string, a: Tensor, b: Tensor): Tensor {
  const same = a.shape.length >= 2 && a.shape.length === b.shape.length && a.shape.every((d, i) => i === 1 || d === b.shape[i]);
  if (!same) throw new ShapeError(`${label}: cannot concatenate ${shapeStr(a.shape)} and ${shapeStr(b.shape)} along channels`);
  const spatial = numel(a.shape.slice(2));
  const shape = [a.shape[0]!, a.shape[1]! + b.shape[1]!, ...a.shape.slice(2)];
  return run(g, label, 'CONCAT', shape, { a, b }, { a_run: a.shape[1]! * spatial, b_run: b.shape[1]! * spatial });
}

/** F.interpolate(x, scale_factor=2, mode='nearest') for [B, C, H, W]. */
export function upsampleNearest2x(g: Graph, label: string, x: Tensor): Tensor {
  if (x.shape.length !== 4) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} is not [B, C, H, W]`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  return run(g, label, 'UPSAMPLE', [B, C, 2 * H, 2 * W], { a: x }, { H, W });
}
