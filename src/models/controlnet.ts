// diffusers.models.controlnet.ControlNetModel (v0.25.1): the U-Net's encoder half (conv_in, time
// embedding, down blocks, mid block: the same blocks as UNet2DConditionModel) with the control
// image's embedding (ControlNetConditioningEmbedding: conv_in, pairs of 3x3 convs of which the
// second halves the size, each followed by SiLU, and the zero-initialized conv_out) added to
// conv_in's output, and a 1x1 "zero conv" on every skip (controlnet_down_blocks.i) and on the mid
// block's output (controlnet_mid_block). Its outputs are the U-Net's
// down_block_additional_residuals and mid_block_additional_residual.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type Tensor } from '../graph/tensor.ts';
import { castTo } from '../kernels/cast.ts';
import { conv2d } from '../kernels/gemm.ts';
import type { ClassEmbedType } from './config_types.ts';
import { residualLayout, type ControlNetConfig } from './controlnet_config.ts';
import { TimeEmbedding, type TimestepInput } from './embeddings.ts';
import type { ModelLoader } from './model_loader.ts';
import type { ResolvedPrecision } from './precision.ts';
import { loadConv } from './resnet.ts';
import { MidBlock2D } from './unet_2d_blocks.ts';
import { makeCondDownBlock, MidBlock2DCrossAttn, type CondDownBlock, type CrossAttnOptions } from './unet_2d_condition_blocks.ts';
import { ConfigError } from '../errors.ts';

type Conv = ReturnType<typeof loadConv>;

export interface ControlNetOutput {
  /** diffusers' down_block_res_samples: one per U-Net skip (conv_in's output first), in the model's storage type. */
  down: Tensor[];
  /** mid_block_res_sample, in the model's storage type. */
  mid: Tensor;
}

export class ControlNetModel {
  readonly inChannels: number;
  readonly conditioningChannels: number;
  readonly crossAttentionDim: number;
  /** How much the conditioning embedding shrinks the control image (2^(blocks − 1)). */
  readonly downscale: number;
  readonly precision: ResolvedPrecision;
  private readonly w: ModelLoader;
  private readonly time: TimeEmbedding;
  private readonly convIn: Conv;
  /** controlnet_cond_embedding: conv_in, then blocks (3x3 stride 1, 3x3 stride 2 per step), conv_out. */
  private readonly condIn: Conv;
  private readonly condBlocks: { conv: Conv; stride: number }[] = [];
  private readonly condOut: Conv;
  private readonly down: CondDownBlock[] = [];
  private readonly mid: (g: Graph, h: Tensor, emb: Tensor, context: Tensor) => Tensor;
  private readonly zeroDown: Conv[];
  private readonly zeroMid: Conv;

  /** Uploads the weights `config` names (every one in the store must be used). */
  constructor(w: ModelLoader, readonly config: ControlNetConfig) {
    const c = config;
    this.w = w;
    this.precision = w.precision;
    this.inChannels = c.inChannels;
    this.conditioningChannels = c.conditioningChannels;
    this.crossAttentionDim = c.crossAttentionDim;
    this.downscale = 2 ** (c.conditioningEmbeddingChannels.length - 1);
    const { channels, heads, transformerLayers, act } = c;
    const temb = c.timeEmbedDim;
    this.time = new TimeEmbedding(w, { projDim: channels[0]!, embedDim: temb, flipSinToCos: c.flipSinToCos, freqShift: c.freqShift, numClassEmbeds: c.numClassEmbeds, classEmbedType: c.classEmbedType, projectionInputDim: c.projectionInputDim, mlpAct: act, resnetAct: act, textTime: c.textTime });
    this.convIn = loadConv(w, 'conv_in', c.inChannels, channels[0]!, 3);

    const ce = w.sub('controlnet_cond_embedding');
    const cc = c.conditioningEmbeddingChannels;
    const cin = c.conditioningChannels;
    // 'bgr': diffusers flips the control image's channels first; flipping conv_in's input channels is the same conv.
    this.condIn = c.channelOrder === 'bgr'
      ? { weight: ce.derived('conv_in.weight', [cc[0]!, cin, 3, 3], (v) => flipInputChannels(v, cc[0]!, cin, 9), `${ce.key('conv_in.weight')} (bgr: input channels flipped)`), bias: ce.tensor('conv_in.bias', [cc[0]!]) }
      : loadConv(ce, 'conv_in', cin, cc[0]!, 3);
    for (let i = 0; i < cc.length - 1; i++) {
      this.condBlocks.push({ conv: loadConv(ce, `blocks.${2 * i}`, cc[i]!, cc[i]!, 3), stride: 1 });
      this.condBlocks.push({ conv: loadConv(ce, `blocks.${2 * i + 1}`, cc[i]!, cc[i + 1]!, 3), stride: 2 });
    }
    this.condOut = loadConv(ce, 'conv_out', cc[cc.length - 1]!, channels[0]!, 3);

    const base = { tembChannels: temb, groups: c.groups, eps: c.eps, outputScaleFactor: 1, timeEmbeddingNorm: c.timeEmbeddingNorm, act };
    const attn = (h: number, layers: number, onlyCrossAttention = false): CrossAttnOptions => ({ heads: h, transformerLayers: layers, crossAttentionDim: c.crossAttentionDim, linearProjection: c.linearProjection, onlyCrossAttention });
    let out = channels[0]!;
    c.downTypes.forEach((type, i) => {
      const inCh = out;
      out = channels[i]!;
      const o = { ...base, numLayers: c.layers, inChannels: inCh, outChannels: out, attentionHeadDim: out / heads[i]! };
      this.down.push(makeCondDownBlock(type, w.sub(`down_blocks.${i}`), o, attn(heads[i]!, transformerLayers[i]!, c.onlyCrossAttention[i]!), i < channels.length - 1, c.downsamplePadding, c.where));
    });
    const last = channels[channels.length - 1]!;
    const midHeads = heads[heads.length - 1]!;
    const midOptions = { ...base, numLayers: 1, inChannels: last, outChannels: last, attentionHeadDim: last / midHeads, outputScaleFactor: c.midBlockScaleFactor };
    if (c.midBlockType === 'UNetMidBlock2DCrossAttn') {
      const mid = new MidBlock2DCrossAttn(w.sub('mid_block'), midOptions, attn(midHeads, transformerLayers[transformerLayers.length - 1]!));
      this.mid = (g, h, emb, context) => mid.forward(g, h, emb, context);
    } else {
      const mid = new MidBlock2D(w.sub('mid_block'), { ...midOptions, numLayers: 0, addAttention: false, attnGroups: null });
      this.mid = (g, h, emb) => mid.forward(g, h, emb);
    }
    const layout = residualLayout(channels, new Array<number>(channels.length).fill(c.layers));
    this.zeroDown = layout.map((s, i) => loadConv(w, `controlnet_down_blocks.${i}`, s.channels, s.channels, 1));
    this.zeroMid = loadConv(w, 'controlnet_mid_block', last, last, 1);
    w.store.assertAllUsed();
  }

  /** The class embedding kind (as UNet2DConditionModel's), or null. */
  get classEmbedType(): ClassEmbedType | null {
    return this.time.classEmbedType;
  }

  /** Host class labels as forward() takes them in TimestepInput.classLabels (see UNet2DConditionModel.uploadClassLabels). */
  uploadClassLabels(rt: Runtime, values: ArrayLike<number>, batch: number, label = 'class_labels'): Tensor {
    return this.time.uploadClassLabels(rt, values, batch, label);
  }

  /** Residuals forward() returns: one per U-Net skip. */
  get numDownResiduals(): number {
    return this.zeroDown.length;
  }

  /**
   * Records one forward pass. sample [B, in_channels, h, w] and encoderHiddenStates
   * [B, S, cross_attention_dim] (f32 or the storage type) as the U-Net takes them; controlnetCond
   * [B, conditioning_channels, h·downscale, w·downscale] (the control image in [0, 1], RGB);
   * t as UNet2DConditionModel.forward's. Each residual is multiplied by conditioningScale
   * (diffusers' conditioning_scale, guess_mode off), in the zero convs' write. Returns tensors in
   * the storage type, which the caller releases.
   */
  forward(g: Graph, sample: Tensor, t: TimestepInput, encoderHiddenStates: Tensor, controlnetCond: Tensor, opts: { conditioningScale?: number } = {}): ControlNetOutput {
    const where = this.config.where;
    const B = sample.shape[0]!;
    const s = sample.shape;
    if (s.length !== 4 || s[1] !== this.inChannels) throw new ConfigError(`${where}: sample ${shapeStr(s)} is not [B, ${this.inChannels}, h, w]`);
    const e = encoderHiddenStates.shape;
    if (e.length !== 3 || e[0] !== B || e[2] !== this.crossAttentionDim) throw new ConfigError(`${where}: encoder_hidden_states ${shapeStr(e)} should be [${B}, S, ${this.crossAttentionDim}]`);
    const want = [B, this.conditioningChannels, s[2]! * this.downscale, s[3]! * this.downscale];
    if (shapeStr(controlnetCond.shape) !== shapeStr(want)) {
      throw new ConfigError(`${where}: controlnet_cond ${shapeStr(controlnetCond.shape)} should be ${shapeStr(want)}: the control image at ${this.downscale}x the latents' ${s[2]}x${s[3]}`);
    }
    const dtype = this.w.dtype;
    const scale = opts.conditioningScale ?? 1;
    const emb = this.time.forward(g, B, t);
    const context = castTo(g, 'encoder_hidden_states', encoderHiddenStates, dtype);
    const x = castTo(g, 'sample', sample, dtype);
    const cond = castTo(g, 'controlnet_cond', controlnetCond, dtype);

    // The conditioning embedding: conv, SiLU each step; conv_out lands on conv_in(sample) as its residual.
    let c = conv2d(g, 'controlnet_cond_embedding.conv_in', cond, this.condIn.weight, { bias: this.condIn.bias, padding: 1, act: 'silu' });
    if (cond !== controlnetCond) g.release(cond);
    this.condBlocks.forEach((b, i) => {
      const next = conv2d(g, `controlnet_cond_embedding.blocks.${i}`, c, b.conv.weight, { bias: b.conv.bias, padding: 1, stride: b.stride, act: 'silu' });
      g.release(c);
      c = next;
    });
    const h0 = conv2d(g, 'conv_in', x, this.convIn.weight, { bias: this.convIn.bias, padding: 1 });
    if (x !== sample) g.release(x);
    let h = conv2d(g, 'controlnet_cond_embedding.conv_out', c, this.condOut.weight, { bias: this.condOut.bias, padding: 1, residual: h0 });
    g.release(c, h0);

    // Each skip goes through its zero conv as soon as it exists; a block's input is released once
    // the block is recorded (it is the previous block's last skip, already zero-conved).
    const down: Tensor[] = [];
    const zero = (t: Tensor): void => {
      const z = this.zeroDown[down.length]!;
      down.push(conv2d(g, `controlnet_down_blocks.${down.length}`, t, z.weight, { bias: z.bias, ...(scale !== 1 ? { scale } : {}) }));
    };
    zero(h);
    for (const block of this.down) {
      const r = block.forward(g, h, emb, context);
      g.release(h);
      for (const skip of r.skips) zero(skip);
      for (const skip of r.skips) if (skip !== r.out) g.release(skip);
      h = r.out;
    }
    const m = this.mid(g, h, emb, context);
    g.release(h);
    const mid = conv2d(g, 'controlnet_mid_block', m, this.zeroMid.weight, { bias: this.zeroMid.bias, ...(scale !== 1 ? { scale } : {}) });
    g.release(m, emb);
    if (context !== encoderHiddenStates) g.release(context);
    if (down.length !== this.zeroDown.length) throw new ConfigError(`${where}: the down blocks gave ${down.length} skips for ${this.zeroDown.length} controlnet_down_blocks`);
    return { down, mid };
  }

  destroy(): void {
    this.w.destroy();
  }
}

/** [cout, cin, k] weights with the input channels in reverse order (torch.flip(x, dims=[1]) moved into the conv). */
function flipInputChannels(v: Float32Array, cout: number, cin: number, k: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) out.set(v.subarray((o * cin + i) * k, (o * cin + i + 1) * k), (o * cin + (cin - 1 - i)) * k);
  return out;
}
