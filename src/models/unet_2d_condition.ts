// diffusers.models.unet_2d_condition.UNet2DConditionModel (Stable Diffusion's text-conditioned
// U-Net), built from the config readUNet2DConditionConfig returns: the UNet2DModel layout with
// cross-attention blocks that attend to encoder_hidden_states.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type Tensor } from '../graph/tensor.ts';
import { castTo } from '../kernels/cast.ts';
import { addScaledInto, scale, type Coefficient } from '../kernels/elementwise.ts';
import type { ClassEmbedType } from './config_types.ts';
import { TimeEmbedding, type TimestepInput } from './embeddings.ts';
import type { ModelLoader } from './model_loader.ts';
import type { ResolvedPrecision } from './precision.ts';
import { loadConv, loadNorm } from './resnet.ts';
import { runUNetBody } from './unet_body.ts';
import { makeCondDownBlock, makeCondUpBlock, MidBlock2DCrossAttn, type CondDownBlock, type CondUpBlock, type CrossAttnOptions } from './unet_2d_condition_blocks.ts';
import type { UNet2DConditionConfig } from './unet_2d_condition_config.ts';
import { MidBlock2D } from './unet_2d_blocks.ts';
import { ConfigError } from '../errors.ts';

/** One ControlNet's output as the U-Net takes it (diffusers' down_block_additional_residuals and mid_block_additional_residual). */
export interface ControlResiduals {
  /** One per skip, conv_in's output first: [B, C, h, w] each, in f32 or the U-Net's storage type. */
  down: readonly Tensor[];
  mid: Tensor;
  /** Multiplies every residual as it is added (the ControlNet's conditioning_scale): a number (default 1) or a step-row entry read each run. */
  scale?: Coefficient;
}

export class UNet2DConditionModel {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly sampleSize: number;
  /** The width encoder_hidden_states must have (cross_attention_dim, or the entry its cross-attention blocks share). */
  readonly crossAttentionDim: number;
  /** addition_embed_type: 'text_time' (SDXL; forward needs t.textEmbeds and t.timeIds) or null. */
  readonly additionEmbedType: 'text_time' | null;
  readonly precision: ResolvedPrecision;
  /** @internal The loader its weights came from (LoRAs merge into them). */
  readonly w: ModelLoader;
  private readonly time: TimeEmbedding;
  private readonly convIn: ReturnType<typeof loadConv>;
  private readonly down: CondDownBlock[] = [];
  /** The mid block (null: mid_block_type null, none). */
  private readonly mid: ((g: Graph, h: Tensor, emb: Tensor, context: Tensor) => Tensor) | null;
  private readonly up: CondUpBlock[] = [];
  private readonly normOut: ReturnType<typeof loadNorm>;
  private readonly convOut: ReturnType<typeof loadConv>;

  /** Uploads the weights `config` names (every one in the store must be used). */
  constructor(w: ModelLoader, readonly config: UNet2DConditionConfig) {
    const c = config;
    this.w = w;
    this.precision = w.precision;
    this.inChannels = c.inChannels;
    this.outChannels = c.outChannels;
    this.sampleSize = c.sampleSize;
    this.crossAttentionDim = c.crossAttentionDim;
    this.additionEmbedType = c.additionEmbedType;
    const { channels, heads, layers, transformerLayers, crossAttentionDims: crossDims, where, act } = c;
    const temb = c.timeEmbedDim;
    this.time = new TimeEmbedding(w, { projDim: channels[0]!, embedDim: temb, flipSinToCos: c.flipSinToCos, freqShift: c.freqShift, numClassEmbeds: c.numClassEmbeds, classEmbedType: c.classEmbedType, projectionInputDim: c.projectionInputDim, condProjDim: c.timeCondProjDim, mlpAct: act, resnetAct: act, postAct: c.postAct, embedAct: c.embedAct, textTime: c.textTime });
    this.convIn = loadConv(w, 'conv_in', c.inChannels, channels[0]!, c.convInKernel);
    const base = { tembChannels: temb, groups: c.groups, eps: c.eps, outputScaleFactor: 1, timeEmbeddingNorm: c.timeEmbeddingNorm, act };
    const attn = (h: number, transformerLayers: number, crossAttentionDim: number, onlyCrossAttention = false): CrossAttnOptions => ({ heads: h, transformerLayers, crossAttentionDim, linearProjection: c.linearProjection, onlyCrossAttention });
    let out = channels[0]!;
    c.downTypes.forEach((type, i) => {
      const inCh = out;
      out = channels[i]!;
      const o = { ...base, numLayers: layers[i]!, inChannels: inCh, outChannels: out, attentionHeadDim: out / heads[i]! };
      this.down.push(makeCondDownBlock(type, w.sub(`down_blocks.${i}`), o, attn(heads[i]!, transformerLayers[i]!, crossDims[i]!, c.onlyCrossAttention[i]!), i < channels.length - 1, c.downsamplePadding, where));
    });
    const last = channels[channels.length - 1]!;
    const midHeads = heads[heads.length - 1]!;
    const midOptions = { ...base, numLayers: 1, inChannels: last, outChannels: last, attentionHeadDim: last / midHeads, outputScaleFactor: c.midBlockScaleFactor };
    if (c.midBlockType === 'UNetMidBlock2DCrossAttn') {
      const mid = new MidBlock2DCrossAttn(w.sub('mid_block'), midOptions, attn(midHeads, transformerLayers[transformerLayers.length - 1]!, crossDims[crossDims.length - 1]!));
      this.mid = (g, h, emb, context) => mid.forward(g, h, emb, context);
    } else if (c.midBlockType === 'UNetMidBlock2D') {
      const mid = new MidBlock2D(w.sub('mid_block'), { ...midOptions, numLayers: 0, addAttention: false, attnGroups: null });
      this.mid = (g, h, emb) => mid.forward(g, h, emb);
    } else {
      this.mid = null;
    }
    const rev = [...channels].reverse();
    const revHeads = [...heads].reverse();
    const revLayers = [...layers].reverse();
    const revTransformerLayers = [...transformerLayers].reverse();
    const revOnlyCross = [...c.onlyCrossAttention].reverse();
    const revCrossDims = [...crossDims].reverse();
    let outCh = rev[0]!;
    c.upTypes.forEach((type, i) => {
      const prev = outCh;
      outCh = rev[i]!;
      const inCh = rev[Math.min(i + 1, rev.length - 1)]!;
      const o = { ...base, numLayers: revLayers[i]! + 1, inChannels: inCh, outChannels: outCh, prevOutputChannels: prev, attentionHeadDim: outCh / revHeads[i]! };
      this.up.push(makeCondUpBlock(type, w.sub(`up_blocks.${i}`), o, attn(revHeads[i]!, revTransformerLayers[i]!, revCrossDims[i]!, revOnlyCross[i]!), i < channels.length - 1, where));
    });
    this.normOut = loadNorm(w, 'conv_norm_out', channels[0]!);
    this.convOut = loadConv(w, 'conv_out', channels[0]!, c.outChannels, c.convOutKernel);
    w.store.assertAllUsed();
  }

  /** The class embedding kind (diffusers' class_embed_type, 'embedding' for nn.Embedding), or null. */
  get classEmbedType(): ClassEmbedType | null {
    return this.time.classEmbedType;
  }

  /** Rows of the nn.Embedding class table (num_class_embeds with class_embed_type null), else null. */
  get numClasses(): number | null {
    return this.time.numClasses;
  }

  /**
   * Host class labels as the tensor forward() takes in TimestepInput.classLabels: class ids for
   * nn.Embedding, label values for 'timestep', [batch, time_embed_dim] rows for 'identity'.
   */
  uploadClassLabels(rt: Runtime, values: ArrayLike<number>, batch: number, label = 'class_labels'): Tensor {
    return this.time.uploadClassLabels(rt, values, batch, label);
  }

  /**
   * Records one forward pass. sample: [B, in_channels, H, W]; encoderHiddenStates:
   * [B, S, cross_attention_dim], both f32; t.classLabels for class-conditional configs
   * (see uploadClassLabels); t.timestepCond [B, time_cond_proj_dim] (f32) for time_cond_proj_dim
   * configs, optional as in diffusers; t.textEmbeds [B, P] and t.timeIds [B, N] (f32) for
   * addition_embed_type 'text_time' (SDXL), required as in diffusers. `control`: ControlNet
   * residuals, one entry per ControlNet, added (each times its scale) to the skips after the down
   * path and to the mid block's output, as diffusers' forward adds down_block_additional_residuals
   * and mid_block_additional_residual (several ControlNets: their sum). Returns [B, out_channels, H, W] in f32.
   */
  forward(g: Graph, sample: Tensor, t: TimestepInput, encoderHiddenStates: Tensor, control: readonly ControlResiduals[] = []): Tensor {
    const where = 'UNet2DConditionModel';
    const B = sample.shape[0]!;
    if (sample.shape.length !== 4 || sample.shape[1] !== this.inChannels) throw new ConfigError(`${where}: sample ${shapeStr(sample.shape)} is not [B, ${this.inChannels}, H, W]`);
    const e = encoderHiddenStates.shape;
    if (e.length !== 3 || e[0] !== B || e[2] !== this.crossAttentionDim) {
      throw new ConfigError(`${where}: encoder_hidden_states ${shapeStr(e)} should be [${B}, S, ${this.crossAttentionDim}]`);
    }
    const emb = this.time.forward(g, B, t);
    const context = castTo(g, 'encoder_hidden_states', encoderHiddenStates, this.w.dtype);
    const out = runUNetBody(g, {
      where,
      dtype: this.w.dtype,
      centerInput: this.config.centerInput,
      convIn: this.convIn,
      convInPadding: (this.config.convInKernel - 1) / 2,
      down: this.down.map((d) => (gr: Graph, h: Tensor) => d.forward(gr, h, emb, context)),
      mid: this.mid && ((gr, h) => this.mid!(gr, h, emb, context)),
      ...(control.length ? { residuals: (gr: Graph, skips: Tensor[], h: Tensor, hIsSkip: boolean) => this.addResiduals(gr, control, skips, h, hIsSkip) } : {}),
      up: this.up.map((u) => (gr: Graph, h: Tensor, skips: Tensor[]) => u.forward(gr, h, emb, context, skips)),
      normOut: this.normOut,
      groups: this.config.groups,
      eps: this.config.eps,
      convOut: this.convOut,
      convOutPadding: (this.config.convOutKernel - 1) / 2,
      outAct: this.config.act,
    }, sample);
    if (context !== encoderHiddenStates) g.release(context);
    g.release(emb);
    return out;
  }

  /** The skips forward() keeps, which a ControlNet must give one residual each (conv_in's output, then each down block's). */
  get numSkips(): number {
    return 1 + this.config.layers.reduce((a, b) => a + b, 0) + this.config.channels.length - 1;
  }

  /** Adds every ControlNet's residuals (see forward); returns the sample the up blocks take. */
  private addResiduals(g: Graph, control: readonly ControlResiduals[], skips: Tensor[], h: Tensor, hIsSkip: boolean): Tensor {
    const where = 'UNet2DConditionModel';
    const dtype = this.w.dtype;
    const add = (target: Tensor, r: Tensor, s: Coefficient, what: string) => {
      if (shapeStr(r.shape) !== shapeStr(target.shape)) throw new ConfigError(`${where}: ${what} ${shapeStr(r.shape)} does not fit ${shapeStr(target.shape)}`);
      const x = castTo(g, what, r, dtype);
      addScaledInto(g, what, target, x, s);
      if (x !== r) g.release(x);
    };
    // Without a mid block h is the last skip, which gets its own residual: the sample is a copy.
    const out = hIsSkip ? scale(g, 'sample+mid_block_additional_residual', h, 1) : h;
    control.forEach((c, k) => {
      if (c.down.length !== skips.length) throw new ConfigError(`${where}: ControlNet ${k} gives ${c.down.length} down residuals for the U-Net's ${skips.length} skips`);
      add(out, c.mid, c.scale ?? 1, `mid_block_additional_residual${control.length > 1 ? `[${k}]` : ''}`);
    });
    control.forEach((c, k) => c.down.forEach((r, i) => add(skips[i]!, r, c.scale ?? 1, `down_block_additional_residuals${control.length > 1 ? `[${k}]` : ''}.${i}`)));
    return out;
  }

  destroy(): void {
    this.w.destroy();
  }
}
