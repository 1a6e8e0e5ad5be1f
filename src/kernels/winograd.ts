// Winograd F(2x2, 3x3) for stride-1 3x3 convs (shaders/winograd.wgsl): the input and weight
// transforms, and which convs take it. conv2d() (src/kernels/gemm.ts) runs the 16 GEMMs and the
// output transform on the GEMM core.
import { fold1d, Graph } from '../graph/graph.ts';
import { bytesFor, dtypeOf, shapeStr, isN4, type Tensor } from '../graph/tensor.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { storageParams, weightParams } from './dtype.ts';
import { GpuError } from '../errors.ts';

const WG = 256;


/**
 * Who makes and keeps a weight's transformed copy: the model's WeightSlices (src/models/channel_split.ts),
 * which owns it with the model's weights and transforms it again when a LoRA merge changes the
 * weight. Only weights registered here run as Winograd convs: a weight without an owner (a
 * kernel test's, an attached LoRA's) would need its transform made per graph.
 */
export interface DerivedWeights {
  winograd(w: Tensor): Tensor;
}

const owners = new WeakMap<Tensor, DerivedWeights>();

/** Makes `w` eligible for Winograd convs, its transform kept by `owner`. */
export function registerDerived(w: Tensor, owner: DerivedWeights): void {
  owners.set(w, owner);
}

/** A float [Cout, Cin, 3, 3] weight: what a Winograd conv can transform. */
export function isConv3x3(w: Tensor): boolean {
  return w.shape.length === 4 && w.shape[2] === 3 && w.shape[3] === 3 && !w.quant;
}

/** Output tiles of a Winograd conv: tw per row, tiles per image, and the GEMMs' rows (batch · tiles). */
export function winogradTiles(B: number, Hout: number, Wout: number): { tw: number; tiles: number; Mw: number } {
  const tw = Math.ceil(Wout / 2);
  const tiles = Math.ceil(Hout / 2) * tw;
  return { tw, tiles, Mw: B * tiles };
}

/** Rows per plane of a transformed weight: Cout padded to a multiple of 4 ('n4'). */
function paddedN(N: number): number {
  return Math.ceil(N / 4) * 4;
}

/** Bytes of the 16-plane transformed weight of a [N, Cin, 3, 3] weight in storage type `w`'s. */
export function winogradWeightBytes(w: Tensor): number {
  const [N = 1, Cin = 1] = w.shape;
  return bytesFor(16 * paddedN(N) * Cin, w.dtype);
}

/**
 * The transformed weight for a conv, or null when the conv does not take the Winograd path:
 * Runtime.winograd off, not a 3x3 stride-1 conv, too few rows times channels (Runtime.winogradMinWork), a quantized weight, a weight no model owns, or a
 * transform (its weight, the input's V or the GEMMs' scratch) over the plan's binding limit, where
 * the implicit-GEMM conv needs no scratch.
 */
export function winogradWeightFor(g: Graph, weight: Tensor, o: { kh: number; kw: number; stride: number; B: number; Cin: number; Hout: number; Wout: number; dtype: 'f32' | 'f16' }): Tensor | null {
  if (!g.rt.winograd || o.kh !== 3 || o.kw !== 3 || o.stride !== 1 || weight.quant) return null;
  const owner = owners.get(weight);
  if (!owner) return null;
  const N = weight.shape[0]!;
  const { Mw } = winogradTiles(o.B, o.Hout, o.Wout);
  if (Mw * o.Cin < g.rt.winogradMinWork) return null;
  const limit = g.limits.binding;
  if (winogradWeightBytes(weight) > limit || bytesFor(16 * o.Cin * Mw, o.dtype) > limit || 4 * 16 * Mw * N > limit) return null;
  return owner.winograd(weight);
}

/** The input's transform V: [16, Cin, B·tiles] (see shaders/winograd.wgsl INPUT), in x's storage type. */
export function winogradInput(g: Graph, label: string, x: Tensor, o: { padT: number; padL: number; upH: number; upW: number; upsample: boolean; Hout: number; Wout: number }): Tensor {
  const [B, Cin, H, W] = x.shape as [number, number, number, number];
  const { tw, tiles, Mw } = winogradTiles(B, o.Hout, o.Wout);
  const v = g.alloc([16, Cin, Mw], `${label}/winograd input`, dtypeOf(x));
  g.dispatch(
    `${label}/winograd input`,
    { shader: 'winograd', params: { INPUT: true, UPSAMPLE: o.upsample, ...storageParams(dtypeOf(x)) } },
    { x, v },
    { Cin, H, W, inH: o.upH, inW: o.upW, padT: o.padT, padL: o.padL, tw, tiles, Mw },
    fold1d(Math.ceil((Cin * Mw) / WG)),
    { flops: 32 * Cin * Mw, bytes: bytesFor(B * Cin * H * W, dtypeOf(x)) + bytesFor(16 * Cin * Mw, dtypeOf(x)) },
  );
  return v;
}

/**
 * A new buffer for `w`'s transform, and what fills it from `w` (call it again when `w` changes):
 * one dispatch in its own submission. The transform keeps w's storage type; its layout is always
 * 'n4' (16 planes of [ceil(N / 4)·4, Cin]), which both GEMM feeds read.
 */
export function makeWinogradWeight(rt: Runtime, w: Tensor): { t: Tensor; fill: () => void } {
  const [N = 0, Cin = 0, kh, kw] = w.shape;
  if (w.shape.length !== 4 || kh !== 3 || kw !== 3) throw new GpuError(`${w.label}: a Winograd weight transform needs a [Cout, Cin, 3, 3] weight, not ${shapeStr(w.shape)}`);
  if (w.quant) throw new GpuError(`${w.label}: a quantized (${w.quant.format}) weight has no Winograd transform`);
  const label = `${w.label} (winograd)`;
  const Np = paddedN(N);
  // Shaped as what it holds (bindings are sized from the shape): 16 planes of Np rows, an [16·Np, Cin] 'n4' matrix.
  const t: Tensor = { buffer: rt.createBuffer(Math.max(16, winogradWeightBytes(w)), label), shape: [16 * Np, Cin], label, ...(w.dtype ? { dtype: w.dtype } : {}), layout: 'n4' };
  // The weights' storage type beside f32 "activations": f16 weights read and written as f16, or as packed words.
  const wp = weightParams(rt.gpu.features, label, 'f32', { weight: w });
  const spec = { shader: 'winograd', params: { WEIGHT: true, SRC_N4: isN4(w, label), ...wp } };
  const fill = () => {
    const g = new Graph(rt, label);
    g.dispatch(label, spec, { w, wt: t }, { N, Np, Cin }, fold1d(Math.ceil(((Np / 4) * Cin) / WG)));
    g.finalize().submit(`transforming ${w.label} for Winograd convs`);
    // Its uniform buffer stays alive until the submission is done (WebGPU defers the free).
    g.destroy();
  };
  fill();
  return { t, fill };
}
