// LayerNorm over the last dimension (torch.nn.LayerNorm with affine), one workgroup per row; see
// shaders/layer_norm.wgsl.
import { fold1d, type Graph } from '../graph/graph.ts';
import { numel, shapeStr, type Tensor, trafficBytes } from '../graph/tensor.ts';
import { checkNormParams, runStatsThreads } from './group_norm.ts';
import { reduceParams } from './reduce.ts';
import { commonDType, storageParams, weightParams } from './dtype.ts';
import { ShapeError } from '../errors.ts';

/** Threads per row: about 8 values per thread, a power of two in 1..256. */
/** x: [..., C]; gamma, beta: [C]. */
export function layerNorm(g: Graph, label: string, x: Tensor, gamma: Tensor, beta: Tensor, eps: number): Tensor {
  if (x.shape.length < 1) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} has no last dimension`);
  const C = x.shape[x.shape.length - 1]!;
  if (C <= 0) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} has an empty last dimension`);
  checkNormParams(label, C, gamma, beta, eps);
  const rows = numel(x.shape) / C;
  const dtype = commonDType(label, { input: x });
  // gamma and beta are model weights: stored like x, or in f16 beside an f32 x.
  const weights = weightParams(g.rt.gpu.features, label, dtype, { gamma, beta }, 'input');
  const out = g.alloc(x.shape, label, dtype);
  g.dispatch(label, { shader: 'layer_norm', params: { WG: runStatsThreads(C, 8), ...storageParams(dtype), ...weights, ...reduceParams(g.rt) } }, { x, gamma, beta, out }, { rows, C, eps }, rows === 0 ? [0] : fold1d(rows), { bytes: trafficBytes(x, gamma, beta, out) });
  return out;
}
