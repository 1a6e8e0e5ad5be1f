// Winograd F(2x2, 3x3) for stride-1 3x3 convs (shaders/winograd.wgsl): the input and weight
// transforms, and which convs take it. conv2d() (src/kernels/gemm.ts) runs the 16 GEMMs and the
// output transform on the GEMM core.
import { fold1d, Graph } from '../graph/graph.ts';
import { bytesFor, dtypeOf, shapeStr, isN4, type DType, type Tensor } from '../graph/tensor.ts';
import type { Runtime } from '../gpu/runtime.ts';
import { storageParams, weightParams } from './dtype.ts';
import { GpuError } from '../errors.ts';

const WG = 256;

/**
 * Who makes and keeps a weight's transformed copy: the model's WeightSlices (src/models/channel_split.ts),
 * which owns it with the model's weights and transforms it again when a LoRA merge changes the
 * weight, or transformOnce() for weights no model holds (kernel tests, benches). Only weights
 * registered here run as Winograd convs: one without an owner (an attached LoRA's down) would need
 * its transform made per graph.
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
 * How a conv runs as a Winograd conv: its transformed weight `w`, whose planes are `wPlane` vec4s
 * apart, and its 2x2 output tiles (tw per row, `tiles` per image, Mw = batch · tiles: the GEMMs' rows).
 */
export interface WinogradPlan {
  w: Tensor;
  wPlane: number;
  tw: number;
  tiles: number;
  Mw: number;
}

/**
 * The plan for a conv of `weight` ([Cout, Cin, kh, kw]) over a batch of B giving Hout x Wout, or
 * null when it does not take the Winograd path: Runtime.winograd off, not a float 3x3 stride-1 conv,
 * too few rows times channels (Runtime.winogradMinWork), a weight no model owns, or a transform (its
 * weight, the input's V or the GEMMs' scratch) over the plan's binding limit, where the
 * implicit-GEMM conv needs no scratch.
 */
export function winogradPlan(g: Graph, weight: Tensor, o: { stride: number; B: number; Hout: number; Wout: number; dtype: DType }): WinogradPlan | null {
  if (!g.rt.winograd || o.stride !== 1 || !isConv3x3(weight)) return null;
  const owner = owners.get(weight);
  if (!owner) return null;
  const [N = 1, Cin = 1] = weight.shape;
  const tw = Math.ceil(o.Wout / 2);
  const tiles = Math.ceil(o.Hout / 2) * tw;
  const Mw = o.B * tiles;
  if (Mw * Cin < g.rt.winogradMinWork) return null;
  const limit = g.limits.binding;
  if (winogradWeightBytes(weight) > limit || bytesFor(16 * Cin * Mw, o.dtype) > limit || 4 * 16 * Mw * N > limit) return null;
  return { w: owner.winograd(weight), wPlane: (paddedN(N) / 4) * Cin, tw, tiles, Mw };
}

/** The input's transform V: [16, Cin, B·tiles] (see shaders/winograd.wgsl INPUT), in x's storage type. */
export function winogradInput(g: Graph, label: string, x: Tensor, p: WinogradPlan, o: { padT: number; padL: number; upH: number; upW: number; upsample: boolean }): Tensor {
  const [B, Cin, H, W] = x.shape as [number, number, number, number];
  const { tw, tiles, Mw } = p;
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
  if (!isConv3x3(w)) throw new GpuError(`${w.label}: a Winograd weight transform needs a float [Cout, Cin, 3, 3] weight, not ${w.quant ? `a ${w.quant.format} one` : shapeStr(w.shape)}`);
  const [N = 0, Cin = 0] = w.shape;
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

/**
 * An owner for weights no model holds (kernel tests, benches): the transform made at first use
 * and kept, never made again (`made` is told each time one is made).
 */
export function transformOnce(rt: Runtime, made: () => void = () => {}): DerivedWeights {
  let t: Tensor | null = null;
  return {
    winograd(w) {
      if (!t) {
        made();
        t = makeWinogradWeight(rt, w).t;
      }
      return t;
    },
  };
}
