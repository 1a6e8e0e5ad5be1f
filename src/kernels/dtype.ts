// Which template variant a kernel runs: the storage type of its tensors. A kernel reads and
// writes one storage type, so mixed inputs are a wiring error (a missing cast at a model
// boundary), reported by name rather than read as garbage bits.
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
