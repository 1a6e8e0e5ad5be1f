// Adds a scaled f32 delta into a weight stored in any of its storage types (shaders/lora_merge.wgsl).
import { fold1d, type Graph } from '../graph/graph.ts';
import { dtypeOf, n4Elements, numel, shapeStr, type Tensor, isN4 } from '../graph/tensor.ts';
import { DTypeError, ShapeError } from '../errors.ts';

const WG = 256;

/**
 * weight += scale · delta, in place. `delta` is f32 with the weight's element count, row-major
 * [N, K] whatever the weight's own layout (Tensor.layout).
 */
export function loraMerge(g: Graph, label: string, weight: Tensor, delta: Tensor, scale: number): void {
  const N = weight.shape[0] ?? 1;
  const K = numel(weight.shape) / N;
  if (numel(delta.shape) !== N * K) throw new ShapeError(`${label}: delta ${shapeStr(delta.shape)} does not match weight ${weight.label} ${shapeStr(weight.shape)}`);
  if (dtypeOf(delta) !== 'f32') throw new DTypeError(`${label}: delta ${delta.label} must be f32`);
  if (weight.quant) throw new DTypeError(`${label}: weight ${weight.label} is quantized (${weight.quant.format}); a delta cannot be merged into it`);
  const n4 = isN4(weight, label);
  // Every stored element, an interleaved weight's padding rows included (they get zeros).
  const n = n4 ? n4Elements(weight.shape) : N * K;
  const f16 = dtypeOf(weight) === 'f16';
  const hasF16 = g.rt.gpu.features.has('shader-f16');
  // Stored f16 is read as f16 where the device has shader-f16, else as packed words.
  const params = { ...(f16 ? (hasF16 ? { F16: true } : { W_PACKED: true }) : {}), ...(n4 ? { N4: true } : {}) };
  const threads = f16 && !hasF16 ? Math.ceil(n / 2) : n;
  g.dispatch(label, { shader: 'lora_merge', params }, { delta, w: weight }, { n, scale, N, K }, fold1d(Math.ceil(threads / WG)));
}
