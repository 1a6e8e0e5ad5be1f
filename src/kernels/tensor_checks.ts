// Input checks the kernel descriptors share: a ShapeError or DTypeError that names the op, raised
// while planning, before anything is dispatched.
import { DTypeError, ShapeError } from '../errors.ts';
import { dtypeOf, numel, type Tensor } from '../graph/tensor.ts';

/**
 * Per-item f32 values a kernel reads as f32 whatever the storage type (timesteps, divisors): at
 * least `need` of them, as a tensor or a raw buffer of f32 words.
 */
export function checkF32Values(label: string, what: string, x: Tensor | GPUBuffer, need: number): void {
  const have = 'shape' in x ? numel(x.shape) : Math.floor(x.size / 4);
  expectShape(have >= need, `${label}: ${need} ${what} needed, the input holds ${have}`);
  if ('shape' in x && dtypeOf(x) !== 'f32') throw new DTypeError(`${label}: ${what} (${x.label}) must be f32, not ${dtypeOf(x)}`);
}

/** Throws a ShapeError with `msg` unless `cond` holds. */
export function expectShape(cond: boolean, msg: string): void {
  if (!cond) throw new ShapeError(msg);
}
