// Linear layers and conv2d, both through the GEMM core in shaders/gemm.wgsl.
import { evenChunks, fold1d, type Graph } from '../graph/graph.ts';
import { dtypeOf, numel, shapeStr, trafficBytes, type DType, type Tensor, isN4 } from '../graph/tensor.ts';
import { activationParams, type Activation } from './activation.ts';
import { commonDType, storageParams, weightParams, type WeightParams } from './dtype.ts';
import { loraAttachment, type LoraAttachment } from './lora_attach.ts';
import { expectShape } from './tensor_checks.ts';
import { winogradInput, winogradPlan, type WinogradPlan } from './winograd.ts';
import { GpuError, ShapeError } from '../errors.ts';

export type { Activation } from './activation.ts';

/** Threads per workgroup side; each thread holds TM rows x 4·TN4 columns (shaders/gemm.wgsl). */
const WG = 16;
/** k-depth of the workgroup-memory slices of the tiled feed: 16·(128 + 128)·4 bytes = 16 KiB, WebGPU's default limit. */
const BK = 16;
/**
 * Workgroups a tiled dispatch should have before it stops splitting K: two per multiprocessor of
 * a large GPU (an H200 has 132). A 1280-channel SD conv at 8 x 8 has 20 tiles of 128 x 128, a
 * fashion-ldm conv 2: without splits, most of such a GPU waits on a few workgroups' K loops.
 */
const TARGET_WORKGROUPS = 256;
/** The fewest k a K slice gets (four BK steps): shorter ones cost more in scratch traffic than they save. */
const MIN_SLICE_K = 4 * BK;

/**
 * How one GEMM is cut into workgroups: TM x 4·TN4 outputs per thread, and K in `splits` slices
 * of kChunk. The direct feed (CPU adapters) keeps 8 x 8 (fewer rows for M under 8) and one slice,
 * Runtime.gemmAdapt = false 8 x 8 and one slice;
 * the tiled feed takes 4-wide tiles along a dimension of 64 or less (a 128-wide tile would be
 * mostly padding) and splits K until the dispatch has TARGET_WORKGROUPS, within the binding limit
 * for the f32 scratch of partial sums.
 */
export interface GemmTiling {
  TM: number;
  TN4: number;
  splits: number;
  kChunk: number;
}

export function gemmTiling(g: Graph, M: number, N: number, K: number, batch: number): GemmTiling {
  // The direct feed computes all TM rows of a thread whatever M (rows past it repeat row M - 1):
  // fewer rows where M is smaller (a 1-4 row GEMM: a time embedding's, a Winograd conv's at 2x2 or
  // 4x4 outputs) stop it doing up to 8x the work (bench/README.md, "Winograd convs").
  if (g.rt.gemmFeed !== 'tiled') return { TM: M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8, TN4: 2, splits: 1, kChunk: K };
  const whole = { TM: 8, TN4: 2, splits: 1, kChunk: K };
  if (!g.rt.gemmAdapt) return whole;
  const TM = M <= 64 ? 4 : 8;
  const TN4 = N <= 64 ? 1 : 2;
  const tiles = Math.ceil(M / (WG * TM)) * Math.ceil(N / (WG * 4 * TN4)) * batch;
  // Half the target or more already fills most of a wave: on the H200 the GEGLU projection's 160
  // tiles ran 0.107 ms whole and 0.138 ms split in two (the extra partial wave and scratch traffic).
  if (tiles >= TARGET_WORKGROUPS / 2) return { TM, TN4, splits: 1, kChunk: K };
  const scratchMax = Math.floor(g.limits.binding / (4 * batch * M * N));
  const want = Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / tiles), Math.floor(K / MIN_SLICE_K), scratchMax));
  const { parts: splits, chunk } = evenChunks(K, want, BK);
  return { TM, TN4, splits, kChunk: splits > 1 ? chunk : K };
}

/**
 * Template parameters choosing how the GEMM core is fed (Runtime.gemmFeed) and tiled, and whether
 * the tiled feed multiplies f16 activations in f16 (Runtime.gemmMath). Attention's scores
 * (OUT_F32: Q·Kᵀ) keep f32 sums, a logit's error being multiplied through exp (f16 slices moved the
 * large-logits row's probabilities by 2.6e-2); its P·V, of probabilities up to 1, takes f16 math.
 */
function feedParams(g: Graph, t: GemmTiling, d: GemmDispatch) {
  // Only the tiled main walks K slices (gemmTiling never splits for the direct feed).
  if (t.splits > 1 && g.rt.gemmFeed !== 'tiled') throw new ShapeError(`GEMM K split in ${t.splits} needs the tiled feed`);
  const tiled = g.rt.gemmFeed === 'tiled';
  // q8 weights reach the FMAs as the raw integers (their row scale comes in store()): a slice of
  // 16 f16 products could overflow where activations are in the tens; q4's values arrive scaled.
  const f16Math = tiled && g.rt.gemmMath === 'f16' && d.dtype === 'f16' && !d.layout.OUT_F32 && d.w.quant?.format !== 'q8';
  return { TM: t.TM, TN4: t.TN4, ...(tiled ? { TILED: true, BK } : {}), ...(f16Math ? { F16_MATH: true } : {}), ...(t.splits > 1 || d.winograd ? { SPLITK: true } : {}) };
}

/**
 * An unfused LoRA's low-rank term in a GEMM's epilogue: out[m, n] += sum_r t[m, r]·up[n, r], right
 * after the GEMM's own sum (before bias, time embedding, residual, scale and activation).
 */
export interface LoraTerm {
  /** x·downᵀ for this GEMM's rows, laid out like the output: [batch, M, R], or [batch, R, M] when the output is channel-major (a conv's). Stored like the activations. */
  t: Tensor;
  /** [N, R], f32, each adapter's scale·alpha/rank folded in. */
  up: Tensor;
}

export interface Epilogue {
  /**
   * Given explicitly (a split conv's chunks, src/models/channel_split.ts); linear() and conv2d()
   * otherwise fill it themselves from the weight's attachment (lora_attach.ts).
   */
  lora?: LoraTerm;
  bias?: Tensor;
  /** [B, N]: added per batch and output channel (a ResNet's time embedding). */
  temb?: Tensor;
  /** temb is [B, W] with this output's N columns from tembOffset on (a channel chunk's share); default 0. */
  tembOffset?: number;
  /** Same shape as the output, added before `scale`. */
  residual?: Tensor;
  /** Multiplies the result after the residual add (diffusers' 1/output_scale_factor). */
  scale?: number;
  silu?: boolean;
  /** max(x, 0) last (TAESD's convs); not together with silu. */
  relu?: boolean;
  /** x·sigmoid(1.702·x) last (CLIP's quick_gelu MLP); one activation at most. */
  quickGelu?: boolean;
  /** The exact erf GELU last (CLIP configs with hidden_act gelu); one activation at most. */
  gelu?: boolean;
  /** Any activation last, by name (the booleans above are shorthands); one activation at most. */
  act?: Activation;
}

/** The one activation an epilogue asks for (act, or one of the boolean shorthands). */
function epilogueAct(e: Epilogue): Activation | undefined {
  return e.act ?? (e.silu ? 'silu' : e.relu ? 'relu' : e.quickGelu ? 'quick_gelu' : e.gelu ? 'gelu' : undefined);
}

const MAX_WG = 65535;

/** How many z slices each batch element's M tiles take: more than one past 65535 tiles (a 2048² conv). */
function gemmFold(M: number, batch: number, t: GemmTiling): number {
  const fold = Math.ceil(Math.ceil(M / (WG * t.TM)) / MAX_WG);
  expectShape(batch * fold * t.splits <= MAX_WG, `GEMM over ${batch} x ${M} rows needs more than ${MAX_WG} workgroups in z`);
  return fold;
}

/** Workgroups: N tiles in x, M tiles in y, continuing in z ((batch·fold + fold slice)·splits + K slice). */
function gemmGrid(N: number, M: number, batch: number, t: GemmTiling): [number, number, number] {
  const fold = gemmFold(M, batch, t);
  return [Math.ceil(N / (WG * 4 * t.TN4)), Math.ceil(Math.ceil(M / (WG * t.TM)) / fold), batch * fold * t.splits];
}

interface GemmDispatch {
  label: string;
  M: number;
  N: number;
  K: number;
  batch: number;
  /** How A is read and the output written: A_COLMAJOR, A_IM2COL, UPSAMPLE, OUT_COLMAJOR, or HEADS' views. */
  layout: Record<string, boolean>;
  /** The activations' storage type (a, out, temb, residual). */
  dtype: DType;
  /** How w (unless quantized: w.quant) and bias are stored beside them (weightParams). */
  weights: WeightParams;
  a: Tensor;
  w: Tensor;
  out: Tensor;
  epilogue: Epilogue;
  /** Conv geometry uniforms (zeros for a linear layer), and HEADS' view uniforms. */
  geometry: Record<string, number>;
  /** W's row stride in either order, when not K (HEADS' views; a quantized W has its own). */
  ldw?: number;
  /**
   * A Winograd conv's 16 GEMMs (z = ξ, W_PLANES: plane z of the transformed weight, wPlane vec4s
   * apart): raw sums to the scratch whatever the split, then the output transform (WINO_OUT) with
   * the epilogue into the conv's [B, N, Hout, Wout] output.
   */
  winograd?: WinogradPlan & { Hout: number; Wout: number };
}

/**
 * One GEMM: a single dispatch with the epilogue fused, or, split along K (gemmTiling), the slices'
 * raw sums into an f32 scratch and a second dispatch adding them up under the epilogue.
 */
function dispatchGemm(g: Graph, d: GemmDispatch): void {
  const { label, M, N, K, batch, epilogue: e } = d;
  // Views of per-head operands (HEADS) run over all of K: a split's scratch is indexed like a plain
  // [batch, M, N] output.
  const t = d.layout.HEADS ? { ...gemmTiling(g, M, N, K, batch), splits: 1, kChunk: K } : gemmTiling(g, M, N, K, batch);
  const R = e.lora ? e.lora.up.shape[1]! : 0;
  const q = d.w.quant;
  const wq = q ? { WQ: true, ...(q.format === 'q8' ? { WQ8: true } : { WQ4: true }) } : {};
  if (q) expectShape(q.N === N && q.K === K, `${label}: quantized weight ${d.w.label} is ${q.N} x ${q.K}, the GEMM needs ${N} x ${K}`);
  // An interleaved weight (Tensor.layout) is a model weight read as one [N, K] matrix: per-head
  // views and quantized words have their own addressing.
  const n4 = isN4(d.w, label);
  if (n4 && (d.layout.HEADS || q)) throw new GpuError(`${label}: weight ${d.w.label} is stored with four output channels interleaved ('n4'), which ${q ? 'a quantized weight' : "attention's per-head GEMMs"} cannot read`);
  const wl = n4 ? { W_N4: true } : {};
  const uniforms = { M, N, K, ...d.geometry, scale: e.scale ?? 1, yfold: gemmFold(M, batch, t), ...tembUniforms(e, N), splits: t.splits, kChunk: t.kChunk, total: batch * M * N, lora_rank: R, ldw: q ? q.ldw : d.ldw ?? K, scaleWord: q ? q.scaleWord : 0 };
  const flops = 2 * M * N * K * batch + 2 * M * N * R * batch;
  const extras = Object.values(epilogueBindings(e));
  const wino = d.winograd;
  if (t.splits === 1 && !wino) {
    g.dispatch(
      label,
      { shader: 'gemm', params: { ...feedParams(g, t, d), ...d.layout, ...epilogueParams(e), ...storageParams(d.dtype), ...d.weights, ...wq, ...wl } },
      { a: d.a, w: d.w, out: d.out, ...epilogueBindings(e) },
      uniforms,
      gemmGrid(N, M, batch, t),
      { flops, bytes: trafficBytes(d.a, d.w, d.out, ...extras) },
    );
    return;
  }
  const part = g.alloc([t.splits, batch * M * N], `${label}/partial sums`, 'f32');
  g.dispatch(
    label,
    { shader: 'gemm', params: { ...feedParams(g, t, d), ...d.layout, ...storageParams(d.dtype), ...d.weights, ...wq, ...wl, ...(wino ? { W_PLANES: true } : {}) } },
    { a: d.a, w: d.w, part },
    wino ? { ...uniforms, wPlane: wino.wPlane } : uniforms,
    gemmGrid(N, M, batch, t),
    { flops, bytes: trafficBytes(d.a, d.w, part) },
  );
  // The second pass reads no weight values: the weights' storage matters to it through the bias,
  // and a q8 weight's row scales (applied to the slices' sum). A Winograd conv's (WINO_OUT) reads
  // each tile's 16 planes of sums and writes its pixels: its M is the output's Hout·Wout, where
  // store() indexes, and it takes a thread per tile and channel.
  const q8 = q?.format === 'q8';
  const threads = wino ? (batch * M * N) / 16 : batch * M * N;
  g.dispatch(
    wino ? `${label}/winograd output` : `${label}/reduce`,
    { shader: 'gemm', params: { REDUCE: true, ...(wino ? { WINO_OUT: true } : {}), OUT_COLMAJOR: !!wino || !!d.layout.OUT_COLMAJOR, ...epilogueParams(e), ...storageParams(d.dtype), ...(e.bias ? d.weights : {}), ...(q8 ? { WQ: true, WQ8: true } : {}) } },
    { part, out: d.out, ...epilogueBindings(e), ...(q8 ? { w: d.w } : {}) },
    wino ? { ...uniforms, M: wino.Hout * wino.Wout, Hout: wino.Hout, Wout: wino.Wout, tw: wino.tw, tiles: wino.tiles } : uniforms,
    fold1d(Math.ceil(threads / 256)),
    { ...(wino ? { flops: 24 * threads } : {}), bytes: trafficBytes(part, d.out, ...extras) },
  );
  g.release(part);
}

function epilogueParams(e: Epilogue) {
  return { LORA: !!e.lora, BIAS: !!e.bias, TEMB: !!e.temb, RESIDUAL: !!e.residual, ...activationParams(epilogueAct(e)) };
}

function tembUniforms(e: Epilogue, N: number) {
  return { tembStride: e.temb ? e.temb.shape[1]! : N, tembOffset: e.tembOffset ?? 0 };
}

/**
 * The storage types of one GEMM: the activations' (input, time embedding, residual and the output
 * share it) and how the model weights (weight, bias) are stored beside them.
 */
function gemmDTypes(g: Graph, label: string, x: Tensor, weight: Tensor, e: Epilogue): { dtype: DType; weights: WeightParams } {
  const dtype = commonDType(label, { input: x, temb: e.temb, residual: e.residual, 'LoRA t': e.lora?.t });
  // A quantized weight has its own read (WQ8 / WQ4); the bias keeps the weights' float storage.
  const q = weight.quant;
  return { dtype, weights: weightParams(g.rt.gpu.features, label, dtype, { weight: q ? undefined : weight, bias: e.bias }, 'input') };
}

function epilogueBindings(e: Epilogue) {
  const b: Record<string, Tensor> = {};
  if (e.lora) {
    b.lora_t = e.lora.t;
    b.lora_up = e.lora.up;
  }
  if (e.bias) b.bias = e.bias;
  if (e.temb) b.temb = e.temb;
  if (e.residual) b.res = e.residual;
  return b;
}

/**
 * One operand of a per-head GEMM read in place: z = b·heads + h's matrix starts at
 * base + b·batch + h·head, its rows `ld` elements apart.
 */
export interface HeadView {
  t: Tensor;
  base: number;
  batch: number;
  head: number;
  ld: number;
}

export interface HeadGemm {
  M: number;
  N: number;
  K: number;
  /** Batch items B; z runs over B·heads. */
  B: number;
  heads: number;
  /** A(m, k): a view, or a plain [B·heads, M, K] row-major tensor. */
  a: HeadView | Tensor;
  /** W(n, k): rows of k along n (a key matrix), or with kMajor rows of n along k (a value matrix); no base. */
  w: Omit<HeadView, 'base'> & { kMajor?: boolean };
  /** out(m, n): a view, or a plain [B·heads, M, N] row-major tensor. */
  out: HeadView | Tensor;
  /** Multiplies every output (the softmax scale). */
  scale?: number;
}

/**
 * out = scale · A·Wᵀ for every (batch item, head), through the GEMM core with its operands read
 * in place (HEADS in shaders/gemm.wgsl): attention's S = scale·Q·Kᵀ and P·V. The storage type is
 * w's (the activations'); a and out may be f32 beside f16 activations (the score scratch).
 */
export function headGemm(g: Graph, label: string, o: HeadGemm): void {
  const st = dtypeOf(o.w.t);
  const view = (x: HeadView | Tensor): x is HeadView => 't' in x;
  const tensorOf = (x: HeadView | Tensor) => (view(x) ? x.t : x);
  const f32Beside = (name: string, x: Tensor): boolean => {
    const dt = dtypeOf(x);
    if (dt === st) return false;
    if (dt === 'f32') return true;
    throw new GpuError(`${label}: ${name} (${x.label}) is ${dt} beside ${st} activations; only f32 may differ`);
  };
  const a = tensorOf(o.a);
  const out = tensorOf(o.out);
  const av = view(o.a) ? o.a : null;
  const ov = view(o.out) ? o.out : null;
  const layout = {
    HEADS: true, A_STRIDED: !!av, W_BATCHED: true, W_KMAJOR: !!o.w.kMajor, OUT_STRIDED: !!ov,
    A_F32: f32Beside('A', a), OUT_F32: f32Beside('the output', out),
  };
  const views = {
    heads: o.heads,
    aBase: av?.base ?? 0, aBatch: av?.batch ?? 0, aHead: av?.head ?? 0, lda: av?.ld ?? 0,
    wBatch: o.w.batch, wHead: o.w.head,
    oBase: ov?.base ?? 0, oBatch: ov?.batch ?? 0, oHead: ov?.head ?? 0, ldo: ov?.ld ?? 0,
  };
  dispatchGemm(g, {
    label, M: o.M, N: o.N, K: o.K, batch: o.B * o.heads, layout, dtype: st, weights: {},
    a, w: o.w.t, out, epilogue: { scale: o.scale }, geometry: { ...noConv, ...views }, ldw: o.w.ld,
  });
}

const noConv = { Cin: 0, H: 0, W: 0, kh: 0, kw: 0, stride: 0, padT: 0, padL: 0, Hout: 0, Wout: 0, upH: 0, upW: 0 };

export interface LinearOptions extends Epilogue {
  /**
   * How x is laid out: 'rows' = [..., M, K] (tokens × features), 'channels' = [B, K, ...spatial]
   * (NCHW, projected over channels with the spatial positions as rows).
   */
  input?: 'rows' | 'channels';
  /** 'rows' = [B, M, N]; 'channels' = [B, N, M] (written back as NCHW). */
  output?: 'rows' | 'channels';
  /** Output shape to report (defaults to x's shape with the feature dim replaced). */
  outShape?: number[];
}

/** y = x · Wᵀ (+ epilogue). weight: [N, K]. x is batched over its first dimension when 3-D+. */
export function linear(g: Graph, label: string, x: Tensor, weight: Tensor, opts: LinearOptions = {}): Tensor {
  const [N, K] = weight.shape as [number, number];
  expectShape(weight.shape.length === 2, `${label}: weight ${shapeStr(weight.shape)} is not 2-D`);
  const input = opts.input ?? 'rows';
  let batch: number, M: number;
  if (input === 'rows') {
    expectShape(x.shape[x.shape.length - 1] === K, `${label}: input ${shapeStr(x.shape)} does not end in ${K}`);
    if (x.shape.length >= 3) {
      batch = x.shape[0]!;
      M = x.shape.slice(1, -1).reduce((a, b) => a * b, 1);
    } else {
      batch = 1;
      M = x.shape.length === 2 ? x.shape[0]! : 1;
    }
  } else {
    expectShape(x.shape[1] === K, `${label}: input ${shapeStr(x.shape)} has ${x.shape[1]} channels, weight expects ${K}`);
    batch = x.shape[0]!;
    M = x.shape.slice(2).reduce((a, b) => a * b, 1);
  }
  const output = opts.output ?? 'rows';
  const outShape = opts.outShape ?? (output === 'rows' ? (x.shape.length >= 3 ? [batch, M, N] : x.shape.length === 2 ? [M, N] : [N]) : [batch, N, M]);
  expectShape(outShape.reduce((a, b) => a * b, 1) === batch * M * N, `${label}: output shape ${shapeStr(outShape)} does not hold ${batch}x${M}x${N} values`);
  // An unfused LoRA on the weight: t = x·downᵀ by the same GEMM, read and laid out like the output.
  const a = attachedLora(label, weight, opts, N, K);
  const t = a ? linear(g, `${label}/lora down`, x, { ...a.down, shape: [a.down.shape[0]!, K] }, { input, output, outShape: output === 'rows' ? [batch, M, a.down.shape[0]!] : [batch, a.down.shape[0]!, M] }) : null;
  const e: Epilogue = a && t ? { ...opts, lora: { t, up: a.up } } : opts;
  checkEpilogue(label, e, batch, N, outShape);
  const { dtype, weights } = gemmDTypes(g, label, x, weight, e);
  const out = g.alloc(outShape, label, dtype);
  dispatchGemm(g, { label, M, N, K, batch, layout: { A_COLMAJOR: input === 'channels', OUT_COLMAJOR: output === 'channels' }, dtype, weights, a: x, w: weight, out, epilogue: e, geometry: noConv });
  if (t) g.release(t);
  return out;
}

/**
 * The unfused LoRA attached to `weight` ([N, K] as the GEMM reads it), checked against it; counted
 * as used. An explicit epilogue term beside one is a wiring error (it would be added twice).
 */
function attachedLora(label: string, weight: Tensor, e: Epilogue, N: number, K: number): LoraAttachment | null {
  const a = loraAttachment(weight);
  if (!a) return null;
  if (e.lora) throw new GpuError(`${label}: ${a.what} is attached to the weight and a LoRA term was also given`);
  const R = a.down.shape[0]!;
  expectShape(numel(a.down.shape) === R * K && a.up.shape.length === 2 && a.up.shape[0] === N && a.up.shape[1] === R, `${label}: ${a.what}: down ${shapeStr(a.down.shape)} and up ${shapeStr(a.up.shape)} do not fit a ${N} x ${K} weight`);
  a.uses++;
  return a;
}

function checkEpilogue(label: string, e: Epilogue, batch: number, N: number, outShape: readonly number[]): void {
  const acts = [...(['silu', 'relu', 'quickGelu', 'gelu'] as const).filter((a) => e[a]), ...(e.act ? [e.act] : [])];
  expectShape(acts.length <= 1, `${label}: ${acts.join(' and ')} cannot all end the epilogue (one activation at most)`);
  if (e.bias) expectShape(e.bias.shape.length === 1 && e.bias.shape[0] === N, `${label}: bias ${shapeStr(e.bias.shape)} should be [${N}]`);
  const off = e.tembOffset ?? 0;
  expectShape(Number.isInteger(off) && off >= 0 && (off === 0 || !!e.temb), `${label}: tembOffset ${off} needs a time embedding and a whole non-negative column`);
  if (e.temb) expectShape(e.temb.shape.length === 2 && e.temb.shape[0] === batch && (e.tembOffset === undefined ? e.temb.shape[1] === N : e.temb.shape[1]! >= off + N), `${label}: time embedding ${shapeStr(e.temb.shape)} should be [${batch}, ${e.tembOffset === undefined ? N : `>= ${off + N}`}]`);
  if (e.residual) expectShape(shapeStr(e.residual.shape) === shapeStr(outShape), `${label}: residual ${shapeStr(e.residual.shape)} should be ${shapeStr(outShape)}`);
  if (e.lora) {
    const { t, up } = e.lora;
    const R = up.shape[1] ?? 0;
    expectShape(up.shape.length === 2 && up.shape[0] === N && R > 0, `${label}: LoRA up ${shapeStr(up.shape)} should be [${N}, R]`);
    expectShape(dtypeOf(up) === 'f32', `${label}: LoRA up ${up.label} is ${dtypeOf(up)}; it is read as f32`);
    expectShape(numel(t.shape) === (numel(outShape) / N) * R, `${label}: LoRA t ${shapeStr(t.shape)} should hold ${numel(outShape) / N} rows of ${R}`);
  }
}

export interface Conv2dOptions extends Epilogue {
  stride?: number;
  /** [top, left, bottom, right]; a number pads all four sides. */
  padding?: number | [number, number, number, number];
  /**
   * Nearest upsample of x before the conv, fused into the read: true = 2×, [h, w] = to that size
   * (2H or 2H - 1: a U-Net matching an odd skip, as diffusers' upsample_size).
   */
  upsample?: boolean | readonly [number, number];
}

/** Stride, padding and output size of a conv2d over NCHW input `x` with weight [Cout, Cin, kh, kw]. */
export function conv2dGeometry(x: readonly number[], weight: readonly number[], opts: Conv2dOptions) {
  const [, , H = 0, W = 0] = x;
  const [, , kh = 1, kw = 1] = weight;
  const stride = opts.stride ?? 1;
  const p = opts.padding ?? 0;
  const [padT, padL, padB, padR] = typeof p === 'number' ? [p, p, p, p] : p;
  const [upH, upW] = opts.upsample === true ? [2 * H, 2 * W] : opts.upsample ? opts.upsample : [H, W];
  const Hout = Math.floor((upH + padT + padB - kh) / stride) + 1;
  const Wout = Math.floor((upW + padL + padR - kw) / stride) + 1;
  return { stride, padT, padL, padB, padR, Hout, Wout, upH, upW };
}

/** Implicit-GEMM conv2d on NCHW. weight: [Cout, Cin, kh, kw]. */
export function conv2d(g: Graph, label: string, x: Tensor, weight: Tensor, opts: Conv2dOptions = {}): Tensor {
  expectShape(x.shape.length === 4, `${label}: input ${shapeStr(x.shape)} is not NCHW`);
  expectShape(weight.shape.length === 4, `${label}: weight ${shapeStr(weight.shape)} is not [Cout, Cin, kh, kw]`);
  const [B, Cin, H, W] = x.shape as [number, number, number, number];
  const [Cout, wCin, kh, kw] = weight.shape as [number, number, number, number];
  expectShape(wCin === Cin, `${label}: input has ${Cin} channels, weight ${shapeStr(weight.shape)} expects ${wCin}`);
  const { stride, padT, padL, padB, padR, Hout, Wout, upH, upW } = conv2dGeometry(x.shape, weight.shape, opts);
  expectShape(Hout > 0 && Wout > 0, `${label}: output would be empty (input ${shapeStr(x.shape)}, kernel ${kh}x${kw})`);
  if (Array.isArray(opts.upsample)) expectShape((upH === 2 * H || upH === 2 * H - 1) && (upW === 2 * W || upW === 2 * W - 1), `${label}: cannot upsample ${H}x${W} to ${upH}x${upW} (2x, or 2x - 1 for an odd skip)`);
  const outShape = [B, Cout, Hout, Wout];
  // An unfused LoRA on the weight: t = conv(x, down) with this conv's geometry, [B, R, Hout, Wout].
  const a = attachedLora(label, weight, opts, Cout, Cin * kh * kw);
  const t = a ? conv2d(g, `${label}/lora down`, x, { ...a.down, shape: [a.down.shape[0]!, Cin, kh, kw] }, { stride: opts.stride, padding: opts.padding, upsample: opts.upsample }) : null;
  const e: Epilogue = a && t ? { ...opts, lora: { t, up: a.up } } : opts;
  checkEpilogue(label, e, B, Cout, outShape);
  const { dtype, weights } = gemmDTypes(g, label, x, weight, e);
  const out = g.alloc(outShape, label, dtype);
  const wino = winogradPlan(g, weight, { stride, B, Hout, Wout, dtype });
  if (wino) {
    // The input's transform, the 16 GEMMs over channels, and the output transform with the epilogue.
    const v = winogradInput(g, label, x, wino, { padT, padL, upH, upW, upsample: !!opts.upsample });
    dispatchGemm(g, {
      label, M: wino.Mw, N: Cout, K: Cin, batch: 16, layout: { A_COLMAJOR: true },
      dtype, weights, a: v, w: wino.w, out, epilogue: e, geometry: noConv, winograd: { ...wino, Hout, Wout },
    });
    g.release(v);
  } else {
    const pointwise = kh === 1 && kw === 1 && stride === 1 && padT + padL + padB + padR === 0 && !opts.upsample;
    // Padding taps are multiplied as zeros by the kernel, so they count in the cost: the work done.
    dispatchGemm(g, {
      label, M: Hout * Wout, N: Cout, K: Cin * kh * kw, batch: B,
      layout: { A_COLMAJOR: pointwise, A_IM2COL: !pointwise, UPSAMPLE: !!opts.upsample, OUT_COLMAJOR: true },
      dtype, weights, a: x, w: weight, out, epilogue: e,
      geometry: { Cin, H, W, kh, kw, stride, padT, padL, Hout, Wout, upH, upW },
    });
  }
  if (t) g.release(t);
  return out;
}
