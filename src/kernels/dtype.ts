// Which template variant a kernel runs: the storage type of its tensors. Activations (a kernel's
// inputs and outputs between ops) share one storage type, so mixed ones are a wiring error (a
// missing cast at a model boundary), reported by name rather than read as garbage bits. Model
// weights may be stored apart from them: f16 weights beside f32 activations (weightParams).
import { dtypeOf, type DType, type Tensor } from '../graph/tensor.ts';
import { DTypeError } from '../errors.ts';

/** The one dtype of the given tensors (undefined entries are skipped); throws on a mix. */
export function commonDType(label: string, tensors: Record<string, Tensor | undefined>): DType {
  let first: [string, DType] | null = null;
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    const dt = dtypeOf(t);
    if (!first) first = [name, dt];
    else if (first[1] !== dt) throw new DTypeError(`${label}: ${first[0]} is ${first[1]} but ${name} (${t.label}) is ${dt}; cast one of them first`);
  }
  return first ? first[1] : 'f32';
}

/** The template parameter selecting f16 storage in shaders/common.wgsl. */
export function storageParams(dtype: DType): { F16: boolean } {
  return { F16: dtype === 'f16' };
}

/** The template parameters for the weights' storage type (wst in shaders/common.wgsl); none when it is the activations'. */
export type WeightParams = { W_F16?: true; W_PACKED?: true };

/**
 * How a kernel reads its model weights (`weights`: the bindings declared as wst, undefined entries
 * skipped) beside activations stored in `dtype`. Weights stored like the activations need no
 * parameter. f16 weights beside f32 activations (adapters without shader-f16, which keep f32
 * activations but not f32 weights) are read as array<f16> where the device has shader-f16
 * (W_F16), else as u32 words of two halves (W_PACKED). Either way each weight reaches the
 * arithmetic as the exact f32 of its f16 value. Any other pair is refused, naming the tensor.
 * `features`: the device's (Runtime.gpu.features); `activation`: how the message names the activations.
 */
export function weightParams(features: ReadonlySet<string>, label: string, dtype: DType, weights: Record<string, Tensor | undefined>, activation = 'the activations'): WeightParams {
  const present = Object.entries(weights).filter((e): e is [string, Tensor] => !!e[1]);
  if (present.length === 0) return {};
  const wd = commonDType(label, weights);
  if (wd === dtype) return {};
  if (dtype === 'f32' && wd === 'f16') return features.has('shader-f16') ? { W_F16: true } : { W_PACKED: true };
  const [name, t] = present[0]!;
  throw new DTypeError(`${label}: ${activation} is ${dtype} but ${name} (${t.label}) is ${wd}; ${wd} weights beside ${dtype} activations are not supported (f16 weights go with f16 or f32 activations, f32 weights with f32 ones)`);
}
