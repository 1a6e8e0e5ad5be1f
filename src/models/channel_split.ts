// Activations too large for one storage binding, held as channel chunks. WebGPU's default
// maxStorageBufferBindingSize is 128 MiB, and a Stable Diffusion VAE decode at 512×512 holds
// 256 channels × 512² f32 = 256 MiB at its last upsampler. In NCHW every op of the VAE's
// high-resolution levels is local to a channel range except the conv's sum over input channels,
// which becomes a sum over input chunks carried through the GEMM's residual epilogue. Chunks
// start at multiples of the group-norm group size, so every group lies in one chunk and group
// norm runs on each chunk unchanged. A tensor that fits one binding is one chunk, and then every
// op here is exactly the plain kernel call.
import type { PlanLimits, Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { bytesFor, bytesOf, dtypeOf, elementBytes, shapeStr, type DType, type Tensor, isN4 } from '../graph/tensor.ts';
import { conv2d, conv2dGeometry, type Conv2dOptions, type LoraTerm } from '../kernels/gemm.ts';
import { groupNorm, type GroupNormOptions } from '../kernels/group_norm.ts';
import { loraAttachment, type LoraAttachment } from '../kernels/lora_attach.ts';
import { isConv3x3, makeWinogradWeight, registerDerived } from '../kernels/winograd.ts';
import { GpuError, LoraError, PlanLimitError } from '../errors.ts';

/** A [B, C, H, W] activation as parts [B, c_i, H, W] covering channels [starts[i], starts[i] + c_i). */
export interface Split {
  parts: Tensor[];
  starts: number[];
  shape: readonly [number, number, number, number];
}

export function single(t: Tensor): Split {
  if (t.shape.length !== 4) throw new GpuError(`${t.label}: ${shapeStr(t.shape)} is not NCHW`);
  return { parts: [t], starts: [0], shape: t.shape as [number, number, number, number] };
}

/** The one tensor of a one-part split (for ops that need the whole tensor, such as attention). */
export function whole(s: Split, what: string): Tensor {
  if (s.parts.length !== 1) throw new PlanLimitError(`${what}: [${s.shape.join(', ')}] is split in ${s.parts.length} parts to fit the binding limit, and this op needs it whole`);
  return s.parts[0]!;
}

/**
 * Refuses a part that passes the plan's binding limit (a whole tensor from single(), such as the
 * U-Net's, at a size too large for it) as finalize() would, before a chunked op meets it: its
 * output would be chunked while it is not, which no chunking can mend.
 */
function checkBindable(g: Graph, label: string, s: Split): void {
  for (const t of s.parts) {
    const bytes = bytesOf(t);
    if (bytes > g.limits.binding) throw new PlanLimitError(`${label}: tensor ${t.label} ${shapeStr(t.shape)} needs ${bytes} bytes in one binding, over the planned maxStorageBufferBindingSize ${g.limits.binding}`);
  }
}

export function releaseSplit(g: Graph, ...ss: Split[]): void {
  for (const s of ss) g.release(...s.parts);
}

/**
 * Channel starts for a [B, C, H, W] tensor stored in `dtype`, whose convs and norms read weights
 * stored in `weightDtype` (and `weightLayout`): as few chunks as fit `limits.binding`, as even as
 * the group size allows. A function of the shape and the model's weight storage alone (every float
 * GEMM weight of a model is loaded in one layout), so a residual and the output it is added to are
 * always chunked alike. A conv with 'n4' weights and at most 4 output channels cannot be cut at all
 * (its one group of four is whole or nothing): it fails with PlanLimitError, only past ~40 MiB per channel.
 */
export function chunkStarts(shape: readonly number[], dtype: DType, limits: PlanLimits, groups: number, weightDtype: DType = dtype, weightLayout?: 'n4'): number[] {
  const [B, C, H, W] = shape as [number, number, number, number];
  const perChannel = bytesFor(B * H * W, dtype);
  if (C * perChannel <= limits.binding) return [0];
  let align = C / groups;
  // Weight slices (WeightSlices) are copied in whole 4-byte words, so with f16 weights (f16
  // models, and f16 weights beside f32 activations) chunks start at even channels; weights stored
  // four output channels to a group ('n4', CPU adapters' layout) are cut between groups.
  if ((dtype === 'f16' || weightDtype === 'f16') && align % 2 === 1) align *= 2;
  if (weightLayout === 'n4') align *= 4 / gcd(align, 4);
  const maxChannels = Math.floor(limits.binding / perChannel / align) * align;
  if (maxChannels < align) {
    throw new PlanLimitError(`${shapeStr(shape)}: one group of ${align} channels needs ${align * perChannel} bytes, over the binding limit ${limits.binding}; use fewer images or a smaller size per call`);
  }
  const n = Math.ceil(C / maxChannels);
  const size = Math.ceil(C / align / n) * align;
  const starts: number[] = [];
  for (let c = 0; c < C; c += size) starts.push(c);
  return starts;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function ends(starts: number[], C: number): number[] {
  return starts.map((s, i) => starts[i + 1] ?? C).map((e, i) => e - starts[i]!);
}

/** The cache key of a weight's Winograd transform beside its slices' ranges. */
const WINOGRAD = 'winograd';

/**
 * Sub-tensors of weights for chunked convs and norms, copied once on the GPU and kept with the
 * model (a slice of input channels is not contiguous in [Cout, Cin, kh, kw]), and the Winograd
 * transforms of its 3x3 conv weights.
 */
export class WeightSlices {
  /** Each weight's slices by range, with the copy that fills one (run again when the weight changes). */
  private readonly cache = new WeakMap<Tensor, Map<string, { t: Tensor; copy: () => void }>>();

  /** own: keeps a new slice's buffer with the model's weights; disown: gives one back (before destroying it). */
  constructor(private readonly rt: Runtime, private readonly own: (b: GPUBuffer) => void, private readonly disown: (b: GPUBuffer) => void = () => {}) {}

  /**
   * weight[o0:o1, i0:i1] of a [Cout, Cin, ...] tensor (bias: [Cout] with i0 = 0, i1 = 1).
   * `loraHandled`: the caller applies the weight's unfused LoRA itself (splitConv); anyone else is
   * refused a part of an adapted weight, since a slice is another tensor and would lose the adapter.
   */
  slice(w: Tensor, o0: number, o1: number, i0 = 0, i1 = w.shape[1] ?? 1, loraHandled = false): Tensor {
    const [Cout, Cin = 1, ...rest] = w.shape as number[];
    if (o0 === 0 && o1 === Cout && i0 === 0 && i1 === Cin) return w;
    if (w.quant) throw new PlanLimitError(`${w.label}: a quantized (${w.quant.format}) weight cannot be cut into channel chunks [${o0}:${o1}, ${i0}:${i1}] for an activation split to fit the binding limit; load this model with float weights, or use a smaller size`);
    const lora = loraHandled ? undefined : loraAttachment(w);
    if (lora) throw new LoraError('unfused', `${w.label}: ${lora.what} cannot be applied unfused to a channel chunk [${o0}:${o1}, ${i0}:${i1}] of this weight (the activation is split to fit the binding limit); load the LoRA fused instead`);
    const key = `${o0}:${o1},${i0}:${i1}`;
    let m = this.cache.get(w);
    if (!m) this.cache.set(w, (m = new Map()));
    const hit = m.get(key);
    if (hit) return hit.t;
    const n4 = isN4(w, 'WeightSlices');
    // An interleaved weight's groups of four output channels are copied whole: a chunk must start
    // at one (its last may end inside one, whose columns past o1 the GEMM computes but never stores).
    if (n4 && o0 % 4 !== 0) throw new PlanLimitError(`${w.label}: output channels [${o0}:${o1}] of a weight stored with four output channels interleaved ('n4', the direct GEMM feed's layout) do not start at a multiple of 4; load the model with the tiled GEMM feed (Runtime.gemmFeed) or use a smaller size`);
    const inner = rest.reduce((a, b) => a * b, 1);
    const elem = elementBytes(w.dtype);
    const rowBytes = (i1 - i0) * inner * elem;
    const label = `${w.label}[${o0}:${o1}, ${i0}:${i1}]`;
    const wholeRows = i0 === 0 && i1 === Cin;
    // Whole rows (a bias, a norm's weights) are one copy, in whole 4-byte words: an f16 slice of an
    // odd count reads the 2 bytes after it, which buffers (in 16-byte units) hold. Part rows are a
    // copy each, so each must be whole words.
    const copyBytes = Math.ceil(((o1 - o0) * rowBytes) / 4) * 4;
    if (!n4 && wholeRows && ((o0 * rowBytes) % 4 !== 0 || o0 * rowBytes + copyBytes > w.buffer.size)) throw new GpuError(`${label}: rows from byte ${o0 * rowBytes} are not whole 4-byte words of its buffer`);
    if (!n4 && !wholeRows && (rowBytes % 4 !== 0 || (i0 * inner * elem) % 4 !== 0)) throw new GpuError(`${label}: slice rows of ${rowBytes} bytes are not whole 4-byte words`);
    const buffer = this.rt.createBuffer(n4 ? Math.ceil((o1 - o0) / 4) * 4 * rowBytes : copyBytes, label);
    this.own(buffer);
    // A plan that is abandoned for a larger one (planGraph) takes its slices back with it.
    this.rt.onPlanAbandoned(() => {
      m!.delete(key);
      this.disown(buffer);
      this.rt.destroyBuffer(buffer);
    });
    const copy = () => {
      const enc = this.rt.device.createCommandEncoder({ label });
      if (n4) {
        // Group q holds k = 0 .. K - 1 for its four channels, four elements per k, so an
        // input-channel range is one run of each group.
        const K = Cin * inner;
        const run = (i1 - i0) * inner * 4 * elem;
        for (let q = o0 / 4; q < Math.ceil(o1 / 4); q++) enc.copyBufferToBuffer(w.buffer, (q * K + i0 * inner) * 4 * elem, buffer, (q - o0 / 4) * run, run);
      } else if (wholeRows) {
        enc.copyBufferToBuffer(w.buffer, o0 * rowBytes, buffer, 0, copyBytes);
      } else {
        const stride = Cin * inner * elem;
        for (let o = o0; o < o1; o++) enc.copyBufferToBuffer(w.buffer, o * stride + i0 * inner * elem, buffer, (o - o0) * rowBytes, rowBytes);
      }
      this.rt.watch(`slicing ${label}`, () => this.rt.device.queue.submit([enc.finish()]));
    };
    copy();
    const t: Tensor = { buffer, shape: [o1 - o0, i1 - i0, ...rest].slice(0, w.shape.length), label, ...(w.dtype ? { dtype: w.dtype } : {}), ...(w.layout ? { layout: w.layout } : {}) };
    m.set(key, { t, copy });
    if (isConv3x3(t)) registerDerived(t, this);
    return t;
  }

  /**
   * w's Winograd transform (src/kernels/winograd.ts), made at the first conv that takes it and kept
   * with the model's weights (a larger plan wants the same one, so an abandoned plan leaves it).
   */
  winograd(w: Tensor): Tensor {
    let m = this.cache.get(w);
    if (!m) this.cache.set(w, (m = new Map()));
    const hit = m.get(WINOGRAD);
    if (hit) return hit.t;
    const { t, fill } = makeWinogradWeight(this.rt, w);
    this.own(t.buffer);
    m.set(WINOGRAD, { t, copy: fill });
    return t;
  }

  /**
   * Makes every slice and transform of `w` again (its values changed on the GPU: a LoRA merged
   * into it), and those of the slices after them.
   */
  refresh(w: Tensor): void {
    for (const { t, copy } of this.cache.get(w)?.values() ?? []) {
      copy();
      this.refresh(t);
    }
  }
}

/** Channel slices of an attachment's down and up for split convs, owned by the attachment (freed with it). */
const loraSlices = new WeakMap<LoraAttachment, WeightSlices>();

function loraSlicesOf(rt: Runtime, a: LoraAttachment): WeightSlices {
  let s = loraSlices.get(a);
  if (!s) loraSlices.set(a, (s = new WeightSlices(rt, (b) => a.own(b), (b) => a.disown(b))));
  return s;
}

export interface SplitConvOptions extends Omit<Conv2dOptions, 'residual' | 'lora'> {
  /** Chunked like the output (the same shape and groups give the same chunks). */
  residual?: Split;
  /** Group count of the norm that will read the output: chunks start at its group boundaries. */
  groups: number;
}

/**
 * conv2d over chunks: each output chunk sums its input chunks in order, the first with the bias
 * and residual, the last with the scale and activation, so the epilogue is applied exactly once.
 * An unfused LoRA on the weight (lora_attach.ts) is split the same way: t = conv(x, down) summed
 * over the input chunks (down's input-channel slices), and each output chunk's first dispatch adds
 * t times its rows of up. Unsplit, conv2d applies it itself.
 */
export function splitConv(g: Graph, slices: WeightSlices, label: string, x: Split, conv: { weight: Tensor; bias: Tensor }, o: SplitConvOptions): Split {
  const { groups, residual, temb, ...rest } = o;
  const { scale, silu, relu, act, ...geometry } = rest;
  const [Cout] = conv.weight.shape as [number];
  const { Hout, Wout } = conv2dGeometry(x.shape, conv.weight.shape, geometry);
  const outShape = [x.shape[0], Cout, Hout, Wout] as const;
  checkBindable(g, label, x);
  if (residual) checkBindable(g, label, residual);
  const starts = chunkStarts(outShape, dtypeOf(x.parts[0]!), g.limits, groups, dtypeOf(conv.weight), conv.weight.layout);
  if (residual && residual.starts.join() !== starts.join()) throw new GpuError(`${label}: residual chunks [${residual.starts}] differ from the output's [${starts}]`);
  const inSizes = ends(x.starts, x.shape[1]);
  const chunked = x.parts.length > 1 || starts.length > 1;
  const adapter = chunked ? loraAttachment(conv.weight) : undefined;
  let loraT: Tensor | null = null;
  let loraUp: WeightSlices | null = null;
  if (adapter) {
    loraUp = loraSlicesOf(g.rt, adapter);
    const R = adapter.down.shape[0]!;
    const down = adapter.down;
    if (down.shape.length !== 4) throw new GpuError(`${label}: ${adapter.what}: down ${shapeStr(down.shape)} is not a conv's [R, Cin, kh, kw]`);
    x.parts.forEach((part, j) => {
      const i0 = x.starts[j]!;
      const t = conv2d(g, `${label}/lora down[${j}]`, part, loraUp!.slice(down, 0, R, i0, i0 + inSizes[j]!), { stride: o.stride, padding: o.padding, upsample: o.upsample, ...(loraT ? { residual: loraT } : {}) });
      if (loraT) g.release(loraT);
      loraT = t;
    });
    adapter.uses++;
  }
  const parts = ends(starts, Cout).map((oc, k) => {
    const o0 = starts[k]!;
    let acc: Tensor | null = null;
    x.parts.forEach((part, j) => {
      const i0 = x.starts[j]!;
      const last = j === x.parts.length - 1;
      const lora: LoraTerm | undefined = j === 0 && loraT ? { t: loraT, up: loraUp!.slice(adapter!.up, o0, o0 + oc) } : undefined;
      const y: Tensor = conv2d(g, chunked ? `${label}[${k},${j}]` : label, part, slices.slice(conv.weight, o0, o0 + oc, i0, i0 + inSizes[j]!, !!adapter), {
        ...geometry,
        ...(lora ? { lora } : {}),
        // Each output chunk adds its own columns of the [B, Cout] time embedding.
        ...(j === 0 ? { bias: slices.slice(conv.bias, o0, o0 + oc), ...(temb ? { temb, tembOffset: o0 } : {}) } : {}),
        ...(acc ? { residual: acc } : residual ? { residual: residual.parts[k]! } : {}),
        ...(last ? { scale, silu, relu, act } : {}),
      });
      if (acc) g.release(acc);
      acc = y;
    });
    return acc!;
  });
  if (loraT) g.release(loraT);
  return { parts, starts, shape: outShape };
}

/** GroupNorm per chunk: each chunk holds whole groups (see chunkStarts). */
export function splitGroupNorm(g: Graph, slices: WeightSlices, label: string, x: Split, norm: { weight: Tensor; bias: Tensor }, o: GroupNormOptions): Split {
  const C = x.shape[1];
  if (o.scaleShift && x.parts.length > 1) throw new PlanLimitError(`${label}: scale/shift cannot be applied to an input split in ${x.parts.length} chunks`);
  const groupSize = C / o.groups;
  const parts = x.parts.map((part, k) => {
    const c0 = x.starts[k]!;
    const c = part.shape[1]!;
    if (c0 % groupSize !== 0 || c % groupSize !== 0) throw new GpuError(`${label}: chunk [${c0}, ${c0 + c}) splits a group of ${groupSize} channels`);
    return groupNorm(g, x.parts.length > 1 ? `${label}[${k}]` : label, part, slices.slice(norm.weight, c0, c0 + c), slices.slice(norm.bias, c0, c0 + c), { ...o, groups: c / groupSize });
  });
  return { parts, starts: x.starts, shape: x.shape };
}
