// Activations (SiLU, Mish, GELU, ReLU), GEGLU, scaling, the tanh soft clamp, scaled residual add, channel concat, nearest 2x
// upsample, 2x2 average pooling, FIR (1, 3, 3, 1) 2x resampling and per-batch division: one thread per output element through shaders/elementwise.wgsl, one template variant
// per op; maskBlend (inpainting) and addScaledInto (ControlNet residuals) update their target in place.
import { fold1d, type Graph } from '../graph/graph.ts';
import { dtypeOf, numel, shapeStr, type Tensor, trafficBytes } from '../graph/tensor.ts';
import { type Activation } from './gemm.ts';
import { commonDType, storageParams } from './dtype.ts';
import { ShapeError } from '../errors.ts';
import { activationParams } from './activation.ts';
import { checkF32Values } from './tensor_checks.ts';

const WG = 256;

type Op = 'SCALE' | 'ADD' | 'CONCAT' | 'UPSAMPLE' | 'AVG_POOL' | 'TANH_CLAMP' | 'AFFINE' | 'GEGLU';

function run(g: Graph, label: string, op: Op | Activation, shape: readonly number[], bind: Record<string, Tensor>, uniforms: Record<string, number>): Tensor {
  const dtype = commonDType(label, bind);
  const out = g.alloc(shape, label, dtype);
  const n = numel(shape);
  // An activation is the ACT variant with its ACT_<NAME>; every other op is its own variant.
  const opParams = op === op.toUpperCase() ? { [op]: true } : activationParams(op as Activation);
  g.dispatch(label, { shader: 'elementwise', params: { ...opParams, ...storageParams(dtype) } }, { ...bind, out }, { n, ...uniforms }, fold1d(Math.ceil(n / WG)), {
    bytes: trafficBytes(...Object.values(bind), out),
  });
  return out;
}

export function silu(g: Graph, label: string, x: Tensor): Tensor {
  return activation(g, label, x, 'silu');
}

/** act(x) elementwise: SiLU, Mish, exact GELU, ReLU or quick GELU (act in shaders/common.wgsl). */
export function activation(g: Graph, label: string, x: Tensor, act: Activation): Tensor {
  return run(g, label, act, x.shape, { a: x }, {});
}

/** x * s */
export function scale(g: Graph, label: string, x: Tensor, s: number): Tensor {
  return run(g, label, 'SCALE', x.shape, { a: x }, { scale: s });
}

/** tanh(x / magnitude) * magnitude: squashes x smoothly into (-magnitude, magnitude). */
export function tanhClamp(g: Graph, label: string, x: Tensor, magnitude: number): Tensor {
  if (!(magnitude > 0)) throw new ShapeError(`${label}: clamp magnitude ${magnitude} must be positive`);
  return run(g, label, 'TANH_CLAMP', x.shape, { a: x }, { magnitude });
}

/** x * scale + shift */
export function affine(g: Graph, label: string, x: Tensor, scale: number, shift: number): Tensor {
  return run(g, label, 'AFFINE', x.shape, { a: x }, { scale, shift });
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

/** F.avg_pool2d(x, kernel_size=2, stride=2) for [B, C, H, W]: [B, C, H / 2, W / 2] (floored, as torch). */
export function avgPool2x(g: Graph, label: string, x: Tensor): Tensor {
  if (x.shape.length !== 4) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} is not [B, C, H, W]`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  if (H < 2 || W < 2) throw new ShapeError(`${label}: a 2x2 average pool of ${shapeStr(x.shape)} is empty`);
  return run(g, label, 'AVG_POOL', [B, C, Math.floor(H / 2), Math.floor(W / 2)], { a: x }, { H, W });
}

/**
 * diffusers' FIR resampling with its fixed kernel (1, 3, 3, 1), for [B, C, H, W] (zeros outside the
 * image): 'down' is FirDownsample2D without conv / downsample_2d (upfirdn2d, down 2, pad (1, 1)):
 * [B, C, H / 2, W / 2] (floored, as upfirdn2d's output size); 'up' is FirUpsample2D without conv /
 * upsample_2d (up 2, pad (2, 1), gain 4): [B, C, 2H, 2W]. NCSN++'s skip blocks and their
 * ResnetBlock2D kernel='fir' resamplers.
 */
export function firResample2x(g: Graph, label: string, x: Tensor, direction: 'up' | 'down'): Tensor {
  if (x.shape.length !== 4) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} is not [B, C, H, W]`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  if (direction === 'down' && (H < 2 || W < 2)) throw new ShapeError(`${label}: a 2x FIR downsample of ${shapeStr(x.shape)} is empty`);
  const shape = direction === 'up' ? [B, C, 2 * H, 2 * W] : [B, C, Math.floor(H / 2), Math.floor(W / 2)];
  const dtype = dtypeOf(x);
  const out = g.alloc(shape, label, dtype);
  const n = numel(shape);
  g.dispatch(label, { shader: 'elementwise', params: { FIR: true, FIR_UP: direction === 'up', ...storageParams(dtype) } }, { a: x, out }, { n, H, W }, fold1d(Math.ceil(n / WG)), {
    bytes: trafficBytes(x, out),
  });
  return out;
}

/**
 * x / d[b] for x [B, ...] and f32 divisors d (one per batch element, or d[0] for all with
 * broadcast): UNet2DModel's final sample / timesteps under the fourier time embedding.
 */
export function divideBatch(g: Graph, label: string, x: Tensor, divisors: Tensor | GPUBuffer, broadcast: boolean): Tensor {
  const B = x.shape[0];
  if (B === undefined || x.shape.length < 2) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} has no batch dimension`);
  const need = broadcast ? 1 : B;
  checkF32Values(label, 'divisors', divisors, need);
  const dtype = dtypeOf(x);
  const out = g.alloc(x.shape, label, dtype);
  const n = numel(x.shape);
  g.dispatch(label, { shader: 'elementwise', params: { BATCH_DIV: true, ...storageParams(dtype) } }, { a: x, b: divisors, out }, { n, per: n / B, broadcast: broadcast ? 1 : 0 }, fold1d(Math.ceil(n / WG)), {
    bytes: trafficBytes(x, out) + 4 * need,
  });
  return out;
}

/** diffusers' GEGLU after its projection: x [..., 2N] → h * gelu(gate) [..., N], h = x[..., :N], gate = x[..., N:]. */
export function geglu(g: Graph, label: string, x: Tensor): Tensor {
  const last = x.shape[x.shape.length - 1];
  if (last === undefined || last % 2 !== 0) throw new ShapeError(`${label}: input ${shapeStr(x.shape)} does not end in an even feature count`);
  const half = last / 2;
  return run(g, label, 'GEGLU', [...x.shape.slice(0, -1), half], { a: x }, { half });
}

/**
 * Inpainting's blend, in place: x = m·x + (1 − m)·known, m = 1 where x is repainted. x is
 * [R·B, C, h, w] (R copies of the batch, e.g. the two guidance halves), known [B, C, h, w], mask
 * [B, 1, h, w] broadcast over channels.
 */
export function maskBlend(g: Graph, label: string, x: Tensor, known: Tensor, mask: Tensor): void {
  const k = known.shape;
  if (k.length !== 4) throw new ShapeError(`${label}: known ${shapeStr(k)} is not [B, C, h, w]`);
  const [B, C, h, w] = k as [number, number, number, number];
  if (shapeStr(mask.shape) !== shapeStr([B, 1, h, w])) throw new ShapeError(`${label}: mask ${shapeStr(mask.shape)} should be [${B}, 1, ${h}, ${w}] for known ${shapeStr(k)}`);
  const rep = x.shape.length === 4 && x.shape[0]! % B === 0 && shapeStr(x.shape.slice(1)) === shapeStr(k.slice(1));
  if (!rep || x.shape[0] === 0) throw new ShapeError(`${label}: sample ${shapeStr(x.shape)} is not a whole number of batches of known ${shapeStr(k)}`);
  if (x.buffer === known.buffer || x.buffer === mask.buffer) throw new ShapeError(`${label}: the sample shares a buffer with known or mask`);
  const n = numel(x.shape);
  const dtype = commonDType(label, { sample: x, known, mask });
  g.dispatch(label, { shader: 'elementwise', params: { MASK_BLEND: true, ...storageParams(dtype) } }, { a: known, b: mask, out: x }, { n, known_n: numel(k), plane: h * w, chw: C * h * w }, fold1d(Math.ceil(n / WG)), {
    // x is read and written in place.
    bytes: 2 * trafficBytes(x) + trafficBytes(known, mask),
  });
}

/** A coefficient: a fixed number, or element `index` of an f32 storage buffer (a step row), read on the GPU each run. */
export type Coefficient = number | { buffer: GPUBuffer | Tensor; index: number };

/**
 * out += s·x, in place, for equal shapes (diffusers' down_block_res_sample + the ControlNet's
 * residual, with the ControlNet's conditioning_scale folded in). s is a number or a step-row entry:
 * one planned graph then serves steps with different scales (control_guidance_start / end).
 */
export function addScaledInto(g: Graph, label: string, out: Tensor, x: Tensor, s: Coefficient): void {
  if (shapeStr(out.shape) !== shapeStr(x.shape)) throw new ShapeError(`${label}: cannot add ${shapeStr(x.shape)} into ${shapeStr(out.shape)}`);
  if (out.buffer === x.buffer) throw new ShapeError(`${label}: the target and the addend share a buffer`);
  const dtype = commonDType(label, { out, x });
  const n = numel(out.shape);
  const bytes = 2 * trafficBytes(out) + trafficBytes(x);
  if (typeof s === 'number') {
    g.dispatch(label, { shader: 'elementwise', params: { ADD_INTO: true, COEF: false, ...storageParams(dtype) } }, { a: x, out }, { n, scale: s, coef_index: 0 }, fold1d(Math.ceil(n / WG)), { bytes });
    return;
  }
  if (!Number.isInteger(s.index) || s.index < 0) throw new ShapeError(`${label}: coefficient index ${s.index} is not a whole number >= 0`);
  checkF32Values(label, 'coefficients', s.buffer, s.index + 1);
  g.dispatch(label, { shader: 'elementwise', params: { ADD_INTO: true, COEF: true, ...storageParams(dtype) } }, { a: x, b: s.buffer, out }, { n, scale: 0, coef_index: s.index }, fold1d(Math.ceil(n / WG)), { bytes: bytes + 4 });
}
