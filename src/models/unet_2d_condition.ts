// diffusers.models.unet_2d_condition.UNet2DConditionModel (Stable Diffusion's text-conditioned
// U-Net), assembled from its config.json: the UNet2DModel layout with cross-attention blocks that
// attend to encoder_hidden_states.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type Tensor } from '../graph/tensor.ts';
import type { WeightStore } from '../io/weights.ts';
import { TimeEmbedding, type ClassEmbedType, type TimestepInput } from './embeddings.ts';
import { runUNetBody } from './unet_body.ts';
import type { Activation } from '../kernels/gemm.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { castTo } from '../kernels/cast.ts';
import { resolvePrecision, type ModelOptions, type ResolvedPrecision } from './precision.ts';
import { loadConv, loadNorm, type TimeEmbeddingNorm } from './resnet.ts';
import { COND_DOWN_TYPES, COND_UP_TYPES, makeCondDownBlock, makeCondUpBlock, MidBlock2DCrossAttn, type CondDownBlock, type CondUpBlock, type CrossAttnOptions } from './unet_2d_condition_blocks.ts';
import { MidBlock2D } from './unet_2d_blocks.ts';

/** UNet2DConditionModel's constructor arguments in diffusers 0.25. */
const KEYS = [
  'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'flip_sin_to_cos', 'freq_shift',
  'down_block_types', 'mid_block_type', 'up_block_types', 'only_cross_attention', 'block_out_channels',
  'layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'dropout', 'act_fn', 'norm_num_groups',
  'norm_eps', 'cross_attention_dim', 'transformer_layers_per_block', 'reverse_transformer_layers_per_block',
  'encoder_hid_dim', 'encoder_hid_dim_type', 'attention_head_dim', 'num_attention_heads', 'dual_cross_attention',
  'use_linear_projection', 'class_embed_type', 'addition_embed_type', 'addition_time_embed_dim',
  'num_class_embeds', 'upcast_attention', 'resnet_time_scale_shift', 'resnet_skip_time_act',
  'resnet_out_scale_factor', 'time_embedding_type', 'time_embedding_dim', 'time_embedding_act_fn',
  'timestep_post_act', 'time_cond_proj_dim', 'conv_in_kernel', 'conv_out_kernel',
  'projection_class_embeddings_input_dim', 'attention_type', 'class_embeddings_concat',
  'mid_block_only_cross_attention', 'cross_attention_norm', 'addition_embed_type_num_heads',
];

/** An int or a per-block list of ints (diffusers accepts both for several options). */
function perBlock(c: ConfigReader, key: string, fallback: number, n: number, where: string): number[] {
  const v = c.raw(key);
  if (v === undefined || v === null) return new Array<number>(n).fill(fallback);
  if (!Array.isArray(v)) return new Array<number>(n).fill(c.int(key, fallback, 1));
  const list = c.intList(key, []);
  if (list.length !== n) throw new ConfigError(`${where}: config option ${key} has ${list.length} entries for ${n} down blocks`);
  return list;
}

/** only_cross_attention: a bool (every block) or one bool per down block. */
function onlyCrossList(v: unknown, n: number, where: string): boolean[] {
  if (v === undefined || v === null) return new Array<boolean>(n).fill(false);
  if (typeof v === 'boolean') return new Array<boolean>(n).fill(v);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'boolean')) throw new ConfigError(`${where}: config option only_cross_attention = ${JSON.stringify(v)} is not true, false or a list of them`);
  if (v.length !== n) throw new ConfigError(`${where}: config option only_cross_attention has ${v.length} entries for ${n} down blocks`);
  return v as boolean[];
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
  private readonly w: WeightLoader;
  private time!: TimeEmbedding;
  private convIn!: ReturnType<typeof loadConv>;
  private readonly down: CondDownBlock[] = [];
  /** The mid block (null: mid_block_type null, none). */
  private mid!: ((g: Graph, h: Tensor, emb: Tensor, context: Tensor) => Tensor) | null;
  private readonly up: CondUpBlock[] = [];
  private normOut!: ReturnType<typeof loadNorm>;
  private convOut!: ReturnType<typeof loadConv>;
  private readonly groups: number;
  private readonly eps: number;
  private readonly convInKernel: number;
  private readonly convOutKernel: number;
  private readonly centerInput: boolean;
  private readonly act: Activation;

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, where = 'UNet2DConditionModel', opts: ModelOptions = {}) {
    this.precision = resolvePrecision(rt.gpu.features, opts.precision);
    const c = new ConfigReader(config, where);
    c.only('_class_name', ['UNet2DConditionModel']);
    c.knownKeys(KEYS);
    // act_fn: every ResNet (norms and time embedding), TimestepEmbedding's own activation and conv_act.
    this.act = c.activation('act_fn');
    c.only('time_embedding_type', ['positional']);
    this.centerInput = c.bool('center_input_sample', false);
    // UNetMidBlock2DCrossAttn (the default), UNetMidBlock2D (diffusers builds it here with num_layers 0
    // and add_attention False: one resnet) or an explicit null (no mid block). UNetMidBlock2DSimpleCrossAttn is not built.
    c.only('mid_block_type', ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D']);
    const midType = !c.has('mid_block_type') ? 'UNetMidBlock2DCrossAttn' : (c.raw('mid_block_type') as 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D' | null);
    // mid_block_only_cross_attention only reaches UNetMidBlock2DSimpleCrossAttn (refused above) in
    // diffusers 0.25: UNetMidBlock2DCrossAttn and UNetMidBlock2D take no such option, so any value is accepted and has no effect.
    const midOnlyCross = c.raw('mid_block_only_cross_attention');
    if (midOnlyCross !== undefined && midOnlyCross !== null && typeof midOnlyCross !== 'boolean') throw new ConfigError(`${where}: config option mid_block_only_cross_attention = ${JSON.stringify(midOnlyCross)} is not true, false or null`);
    c.only('dual_cross_attention', [false]);
    // ada_group and spatial replace the norms with AdaGroupNorm / SpatialNorm, which are not built.
    c.only('resnet_time_scale_shift', ['default', 'scale_shift']);
    const timeEmbeddingNorm = (c.raw('resnet_time_scale_shift') ?? 'default') as TimeEmbeddingNorm;
    // resnet_skip_time_act and resnet_out_scale_factor: in diffusers 0.25 get_down_block / get_up_block pass
    // them only to ResnetDownsampleBlock2D, ResnetUpsampleBlock2D and the SimpleCrossAttn blocks (not
    // built); DownBlock2D, CrossAttnDownBlock2D, UpBlock2D, CrossAttnUpBlock2D and the mid blocks do not
    // take them, so any value is accepted (type-checked) and has no effect, as in diffusers.
    c.bool('resnet_skip_time_act', false);
    c.num('resnet_out_scale_factor', 1);
    c.only('attention_type', ['default']);
    c.only('class_embeddings_concat', [false]);
    // projection and simple_projection: a TimestepEmbedding / Linear over float class vectors of
    // projection_class_embeddings_input_dim.
    c.only('class_embed_type', ['timestep', 'identity', 'projection', 'simple_projection']);
    // Options that add inputs or layers we do not build: only their null defaults are accepted.
    for (const key of ['encoder_hid_dim', 'encoder_hid_dim_type', 'cross_attention_norm', 'reverse_transformer_layers_per_block']) {
      c.only(key, [], 'is not supported');
    }
    // addition_embed_type 'text_time' (Stable Diffusion XL): add_time_proj over forward's time_ids and
    // add_embedding over cat(text_embeds, that). 'text', 'text_image', 'image' and 'image_hint'
    // (Kandinsky, ControlNet-style hints) are not built. addition_embed_type_num_heads only reaches 'text'.
    c.only('addition_embed_type', ['text_time']);
    this.additionEmbedType = (c.raw('addition_embed_type') ?? null) as 'text_time' | null;
    // addition_time_embed_dim: add_time_proj's width; diffusers reads it for 'text_time' only.
    const addTimeDim = c.raw('addition_time_embed_dim') === undefined || c.raw('addition_time_embed_dim') === null ? null : c.int('addition_time_embed_dim', 0, 1);
    // diffusers 0.25 itself refuses num_attention_heads; attention_head_dim is the head count.
    c.only('num_attention_heads', [], 'is rejected by diffusers 0.25 (attention_head_dim gives the number of heads)');
    // Per-layer lists inside the per-block list are diffusers' asymmetric U-Net, which it only accepts
    // with reverse_transformer_layers_per_block (refused above).
    const tl = c.raw('transformer_layers_per_block');
    if (Array.isArray(tl) && tl.some((x) => Array.isArray(x))) {
      throw new ConfigError(`${where}: config option transformer_layers_per_block = ${JSON.stringify(tl)} with per-layer lists is not supported (diffusers needs reverse_transformer_layers_per_block for it)`);
    }
    if (Array.isArray(c.raw('sample_size'))) throw new ConfigError(`${where}: config option sample_size = ${JSON.stringify(c.raw('sample_size'))} (non-square) is not supported`);
    if (c.has('norm_num_groups') && c.raw('norm_num_groups') === null) throw new ConfigError(`${where}: config option norm_num_groups = null is not supported`);

    const channels = c.intList('block_out_channels', [320, 640, 1280, 1280]);
    const downTypes = c.strList('down_block_types', ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
    const upTypes = c.strList('up_block_types', ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']);
    if (downTypes.length !== channels.length || upTypes.length !== channels.length) {
      throw new ConfigError(`${where}: down_block_types, up_block_types and block_out_channels must have the same length`);
    }
    for (const t of downTypes) if (!COND_DOWN_TYPES.includes(t)) throw new ConfigError(`${where}: down block type ${t} is not supported (supported: ${COND_DOWN_TYPES.join(', ')})`);
    for (const t of upTypes) if (!COND_UP_TYPES.includes(t)) throw new ConfigError(`${where}: up block type ${t} is not supported (supported: ${COND_UP_TYPES.join(', ')})`);
    this.inChannels = c.int('in_channels', 4, 1);
    this.outChannels = c.int('out_channels', 4, 1);
    this.sampleSize = c.int('sample_size', 64, 1);
    // cross_attention_dim: an int or one per down block (down block i entry i, the mid block the last
    // entry, up block i the reversed list's entry i). One encoder_hidden_states feeds every
    // cross-attention block, so those that have one must agree (diffusers builds other lists, but
    // their forward fails on a shape mismatch).
    const crossDims = perBlock(c, 'cross_attention_dim', 1280, channels.length, where);
    this.convInKernel = c.int('conv_in_kernel', 3, 1);
    this.convOutKernel = c.int('conv_out_kernel', 3, 1);
    if (this.convInKernel % 2 === 0 || this.convOutKernel % 2 === 0) throw new ConfigError(`${where}: even conv_in_kernel / conv_out_kernel are not supported`);
    // Down block i has layers[i] resnets; up block i has the reversed list's entry i plus one.
    const layers = perBlock(c, 'layers_per_block', 2, channels.length, where);
    this.groups = c.int('norm_num_groups', 32, 1);
    this.eps = c.num('norm_eps', 1e-5);
    const heads = perBlock(c, 'attention_head_dim', 8, channels.length, where);
    // Down block i uses entry i, the mid block the last entry, up block i the reversed list's entry i.
    const transformerLayers = perBlock(c, 'transformer_layers_per_block', 1, channels.length, where);
    const linearProjection = c.bool('use_linear_projection', false);
    // only_cross_attention: one bool for every block or one per down block (up blocks: reversed);
    // where true, attn1 attends to encoder_hidden_states too. The mid block never has it (see above).
    const onlyCross = onlyCrossList(c.raw('only_cross_attention'), channels.length, where);
    // time_cond_proj_dim: TimestepEmbedding's cond_proj over forward's timestep_cond (LCM-distilled U-Nets).
    const condProjDim = c.raw('time_cond_proj_dim') === undefined || c.raw('time_cond_proj_dim') === null ? null : c.int('time_cond_proj_dim', 0, 1);
    const midScale = c.num('mid_block_scale_factor', 1);
    const downsamplePadding = c.int('downsample_padding', 1);
    // time_embedding_dim: the time embedding's width (time_embed_dim), 4·block_out_channels[0] when null.
    const temb = c.raw('time_embedding_dim') === null ? channels[0]! * 4 : c.int('time_embedding_dim', channels[0]! * 4, 1);
    // time_embedding_act_fn: once on emb (+ class_emb) before the blocks; timestep_post_act:
    // TimestepEmbedding's post_act after linear_2 (the time embedding only, not a class embedding's).
    const optionalAct = (key: string): Activation | null => (c.raw(key) === undefined || c.raw(key) === null ? null : c.activation(key));
    const embedAct = optionalAct('time_embedding_act_fn');
    const postAct = optionalAct('timestep_post_act');
    // diffusers: class_embed_type wins; num_class_embeds only matters when it is null (nn.Embedding).
    const classEmbedType = (c.raw('class_embed_type') ?? null) as 'timestep' | 'identity' | 'projection' | 'simple_projection' | null;
    // projection_class_embeddings_input_dim: the class vectors' width, required by (and only used by) the projections.
    const projectionInputDim = c.raw('projection_class_embeddings_input_dim') === undefined || c.raw('projection_class_embeddings_input_dim') === null ? null : c.int('projection_class_embeddings_input_dim', 0, 1);
    if ((classEmbedType === 'projection' || classEmbedType === 'simple_projection') && projectionInputDim === null) {
      throw new ConfigError(`${where}: class_embed_type '${classEmbedType}' requires projection_class_embeddings_input_dim`);
    }
    // 'text_time': add_embedding takes projection_class_embeddings_input_dim = text_embeds' width +
    // (number of time ids)·addition_time_embed_dim features (SDXL base 1280 + 6·256, refiner 1280 + 5·256).
    if (this.additionEmbedType === 'text_time' && (projectionInputDim === null || addTimeDim === null)) {
      throw new ConfigError(`${where}: addition_embed_type 'text_time' requires ${[addTimeDim === null && 'addition_time_embed_dim', projectionInputDim === null && 'projection_class_embeddings_input_dim'].filter(Boolean).join(' and ')}`);
    }
    const textTime = this.additionEmbedType === 'text_time' ? { timeEmbedDim: addTimeDim!, inputDim: projectionInputDim! } : null;
    const numClassEmbeds = classEmbedType === null && c.raw('num_class_embeds') !== undefined && c.raw('num_class_embeds') !== null ? c.int('num_class_embeds', 0, 1) : null;
    // upcast_attention only changes the precision of q·kᵀ, which is f32 here already.
    c.bool('upcast_attention', false);

    const usesCross = [
      ...downTypes.map((t, i) => [t.startsWith('CrossAttn'), crossDims[i]!] as const),
      [midType === 'UNetMidBlock2DCrossAttn', crossDims[crossDims.length - 1]!] as const,
      ...upTypes.map((t, i) => [t.startsWith('CrossAttn'), crossDims[crossDims.length - 1 - i]!] as const),
    ].filter(([cross]) => cross).map(([, dim]) => dim);
    const distinct = [...new Set(usesCross)];
    if (distinct.length > 1) {
      throw new ConfigError(`${where}: config option cross_attention_dim = ${JSON.stringify(c.raw('cross_attention_dim'))} gives the cross-attention blocks different widths (${distinct.join(', ')}); one encoder_hidden_states cannot feed them all`);
    }
    this.crossAttentionDim = distinct[0] ?? crossDims[crossDims.length - 1]!;

    const w = new WeightLoader(rt, store, '', this.precision.dtype);
    this.w = w;
    try {
      this.time = new TimeEmbedding(w, { projDim: channels[0]!, embedDim: temb, flipSinToCos: c.bool('flip_sin_to_cos', true), freqShift: c.num('freq_shift', 0), numClassEmbeds, classEmbedType, projectionInputDim, condProjDim, mlpAct: this.act, resnetAct: this.act, postAct, embedAct, textTime });
      this.convIn = loadConv(w, 'conv_in', this.inChannels, channels[0]!, this.convInKernel);
      const base = { tembChannels: temb, groups: this.groups, eps: this.eps, outputScaleFactor: 1, timeEmbeddingNorm, act: this.act };
      const attn = (h: number, transformerLayers: number, crossAttentionDim: number, onlyCrossAttention = false): CrossAttnOptions => ({ heads: h, transformerLayers, crossAttentionDim, linearProjection, onlyCrossAttention });
      let out = channels[0]!;
      downTypes.forEach((type, i) => {
        const inCh = out;
        out = channels[i]!;
        const o = { ...base, numLayers: layers[i]!, inChannels: inCh, outChannels: out, attentionHeadDim: out / heads[i]! };
        this.down.push(makeCondDownBlock(type, w.sub(`down_blocks.${i}`), o, attn(heads[i]!, transformerLayers[i]!, crossDims[i]!, onlyCross[i]!), i < channels.length - 1, downsamplePadding, where));
      });
      const last = channels[channels.length - 1]!;
      const midHeads = heads[heads.length - 1]!;
      const midOptions = { ...base, numLayers: 1, inChannels: last, outChannels: last, attentionHeadDim: last / midHeads, outputScaleFactor: midScale };
      if (midType === 'UNetMidBlock2DCrossAttn') {
        const mid = new MidBlock2DCrossAttn(w.sub('mid_block'), midOptions, attn(midHeads, transformerLayers[transformerLayers.length - 1]!, crossDims[crossDims.length - 1]!));
        this.mid = (g, h, emb, context) => mid.forward(g, h, emb, context);
      } else if (midType === 'UNetMidBlock2D') {
        const mid = new MidBlock2D(w.sub('mid_block'), { ...midOptions, numLayers: 0, addAttention: false, attnGroups: null });
        this.mid = (g, h, emb) => mid.forward(g, h, emb);
      } else {
        this.mid = null;
      }
      const rev = [...channels].reverse();
      const revHeads = [...heads].reverse();
      const revLayers = [...layers].reverse();
      const revTransformerLayers = [...transformerLayers].reverse();
      const revOnlyCross = [...onlyCross].reverse();
      const revCrossDims = [...crossDims].reverse();
      let outCh = rev[0]!;
      upTypes.forEach((type, i) => {
        const prev = outCh;
        outCh = rev[i]!;
        const inCh = rev[Math.min(i + 1, rev.length - 1)]!;
        const o = { ...base, numLayers: revLayers[i]! + 1, inChannels: inCh, outChannels: outCh, prevOutputChannels: prev, attentionHeadDim: outCh / revHeads[i]! };
        this.up.push(makeCondUpBlock(type, w.sub(`up_blocks.${i}`), o, attn(revHeads[i]!, revTransformerLayers[i]!, revCrossDims[i]!, revOnlyCross[i]!), i < channels.length - 1, where));
      });
      this.normOut = loadNorm(w, 'conv_norm_out', channels[0]!);
      this.convOut = loadConv(w, 'conv_out', channels[0]!, this.outChannels, this.convOutKernel);
      store.assertAllUsed();
    } catch (e) {
      w.destroy();
      throw e;
    }
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
   * addition_embed_type 'text_time' (SDXL), required as in diffusers. Returns [B, out_channels, H, W] in f32.
   */
  forward(g: Graph, sample: Tensor, t: TimestepInput, encoderHiddenStates: Tensor): Tensor {
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
      centerInput: this.centerInput,
      convIn: this.convIn,
      convInPadding: (this.convInKernel - 1) / 2,
      down: this.down.map((d) => (gr: Graph, h: Tensor) => d.forward(gr, h, emb, context)),
      mid: this.mid && ((gr, h) => this.mid!(gr, h, emb, context)),
      up: this.up.map((u) => (gr: Graph, h: Tensor, skips: Tensor[]) => u.forward(gr, h, emb, context, skips)),
      normOut: this.normOut,
      groups: this.groups,
      eps: this.eps,
      convOut: this.convOut,
      convOutPadding: (this.convOutKernel - 1) / 2,
      outAct: this.act,
    }, sample);
    if (context !== encoderHiddenStates) g.release(context);
    g.release(emb);
    return out;
  }

  destroy(): void {
    this.w.destroy();
  }
}
