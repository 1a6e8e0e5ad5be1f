// diffusers.models.unet_2d.UNet2DModel, assembled from its config.json.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import type { WeightStore } from '../io/weights.ts';
import type { Activation } from '../kernels/gemm.ts';
import { divideBatch } from '../kernels/elementwise.ts';
import { TimeEmbedding, type ClassEmbedType, type TimeEmbeddingType, type TimestepInput } from './embeddings.ts';
import { runUNetBody } from './unet_body.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { resolvePrecision, type ModelOptions, type ResolvedPrecision } from './precision.ts';
import { loadConv, loadNorm, type TimeEmbeddingNorm } from './resnet.ts';
import { MidBlock2D, makeDownBlock, makeUpBlock, SKIP_SAMPLE_CHANNELS, type DownBlock, type ResampleType, type SkipSample, type UpBlock } from './unet_2d_blocks.ts';

/**
 * The block types of get_down_block / get_up_block built for UNet2DModel, NCSN++'s skip blocks
 * (FIR resampling and the image-space skip_sample path) included.
 */
const UNET_DOWN_TYPES = ['DownBlock2D', 'AttnDownBlock2D', 'ResnetDownsampleBlock2D', 'SkipDownBlock2D', 'AttnSkipDownBlock2D'];
const UNET_UP_TYPES = ['UpBlock2D', 'AttnUpBlock2D', 'ResnetUpsampleBlock2D', 'SkipUpBlock2D', 'AttnSkipUpBlock2D'];
const isSkipBlock = (t: string) => t === 'SkipDownBlock2D' || t === 'AttnSkipDownBlock2D' || t === 'SkipUpBlock2D' || t === 'AttnSkipUpBlock2D';

/** get_down_block / get_up_block strip a leading "UNetRes" from the type name. */
const blockType = (t: string) => (t.startsWith('UNetRes') ? t.slice(7) : t);

/** UNet2DModel's constructor arguments in diffusers 0.25. */
const UNET_2D_KEYS = [
  'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'time_embedding_type', 'freq_shift',
  'flip_sin_to_cos', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'mid_block_scale_factor', 'downsample_padding', 'downsample_type', 'upsample_type', 'dropout', 'act_fn',
  'attention_head_dim', 'norm_num_groups', 'attn_norm_num_groups', 'norm_eps', 'resnet_time_scale_shift',
  'add_attention', 'class_embed_type', 'num_class_embeds', 'num_train_timesteps',
];

export class UNet2DModel {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly sampleSize: number;
  readonly precision: ResolvedPrecision;
  private readonly w: WeightLoader;
  private time!: TimeEmbedding;
  private convIn!: ReturnType<typeof loadConv>;
  private readonly down: DownBlock[] = [];
  private mid!: MidBlock2D;
  private readonly up: UpBlock[] = [];
  private normOut!: ReturnType<typeof loadNorm>;
  private convOut!: ReturnType<typeof loadConv>;
  private readonly groupsOut: number;
  private readonly eps: number;
  private readonly centerInput: boolean;
  private readonly act: Activation;
  /** time_embedding_type 'fourier': the output is divided by the timesteps. */
  private readonly divideByTimesteps: boolean;
  /** Some block is one of NCSN++'s skip blocks: forward carries diffusers' skip_sample. */
  private readonly skipPath: boolean;

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, where = 'UNet2DModel', opts: ModelOptions = {}) {
    this.precision = resolvePrecision(rt.gpu.features, opts.precision);
    const c = new ConfigReader(config, where);
    c.only('_class_name', ['UNet2DModel']);
    c.knownKeys(UNET_2D_KEYS);
    // resnet_act_fn of every block (and of the ResNets' time embedding); conv_act and the time MLP stay SiLU, as in diffusers.
    this.act = c.activation('act_fn');
    c.only('time_embedding_type', ['positional', 'fourier', 'learned']);
    const timeEmbeddingType = (c.raw('time_embedding_type') ?? 'positional') as TimeEmbeddingType;
    this.divideByTimesteps = timeEmbeddingType === 'fourier';
    // 'timestep' / 'identity' as UNet2DConditionModel has them (TimeEmbedding); diffusers' UNet2DModel
    // silently builds no class embedding for any other value, which is refused here instead.
    c.only('class_embed_type', ['timestep', 'identity']);
    // ada_group and spatial replace the norms with AdaGroupNorm / SpatialNorm, which are not built.
    c.only('resnet_time_scale_shift', ['default', 'scale_shift']);
    const timeEmbeddingNorm = (c.raw('resnet_time_scale_shift') ?? 'default') as TimeEmbeddingNorm;
    // 'resnet': a ResnetBlock2D with down / up = True resamples in AttnDownBlock2D / AttnUpBlock2D
    // (diffusers' DownBlock2D and UpBlock2D ignore these options).
    c.only('downsample_type', ['conv', 'resnet']);
    c.only('upsample_type', ['conv', 'resnet']);
    const downsampleType = (c.raw('downsample_type') ?? 'conv') as ResampleType;
    const upsampleType = (c.raw('upsample_type') ?? 'conv') as ResampleType;
    this.centerInput = c.bool('center_input_sample', false);
    const channels = c.intList('block_out_channels', [224, 448, 672, 896]);
    const downTypes = c.strList('down_block_types', ['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D']).map(blockType);
    const upTypes = c.strList('up_block_types', ['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D']).map(blockType);
    if (downTypes.length !== channels.length || upTypes.length !== channels.length) {
      throw new ConfigError(`${where}: down_block_types, up_block_types and block_out_channels must have the same length`);
    }
    this.inChannels = c.int('in_channels', 3, 1);
    this.outChannels = c.int('out_channels', 3, 1);
    if (Array.isArray(c.raw('sample_size'))) throw new ConfigError(`${where}: config option sample_size = ${JSON.stringify(c.raw('sample_size'))} (non-square) is not supported`);
    this.sampleSize = c.int('sample_size', 32, 1);
    const layers = c.int('layers_per_block', 2, 1);
    this.skipPath = [...downTypes, ...upTypes].some(isSkipBlock);
    if (this.skipPath) checkSkipPath(where, downTypes, upTypes, this.inChannels, this.outChannels);
    // norm_num_groups null (NCSN++'s configs): the mid block and conv_norm_out take min(C // 4, 32)
    // groups; only the skip blocks, which compute their own, can be built with it in diffusers.
    const groupsNull = c.has('norm_num_groups') && c.raw('norm_num_groups') === null;
    if (groupsNull) {
      const other = [...downTypes, ...upTypes].find((t) => !isSkipBlock(t));
      if (other) throw new ConfigError(`${where}: config option norm_num_groups = null is not supported with ${other} (only NCSN++'s skip blocks build without it, as in diffusers)`);
    }
    const fourth = (ch: number) => {
      const g = Math.min(Math.floor(ch / 4), 32);
      if (g < 1 || ch % g !== 0) throw new ConfigError(`${where}: norm_num_groups = null gives ${ch} channels min(${ch} // 4, 32) = ${g} groups, which do not split them`);
      return g;
    };
    const groups = groupsNull ? fourth(channels[0]!) : c.int('norm_num_groups', 32, 1);
    const midGroups = groupsNull ? fourth(channels[channels.length - 1]!) : groups;
    const eps = c.num('norm_eps', 1e-5);
    // diffusers: a missing attention_head_dim means 8; an explicit null means one head per block.
    const headDimRaw = c.has('attention_head_dim') ? c.raw('attention_head_dim') : 8;
    if (headDimRaw !== null && !(typeof headDimRaw === 'number' && Number.isInteger(headDimRaw) && headDimRaw > 0)) {
      throw new ConfigError(`${where}: config option attention_head_dim = ${JSON.stringify(headDimRaw)} is not a positive integer or null`);
    }
    // diffusers' UNetMidBlock2D: without attn_norm_num_groups the mid attention keeps a group norm
    // only under the default time embedding norm.
    const attnGroups = c.has('attn_norm_num_groups') && c.raw('attn_norm_num_groups') !== null ? c.int('attn_norm_num_groups', groups, 1) : timeEmbeddingNorm === 'default' ? midGroups : null;
    const midScale = c.num('mid_block_scale_factor', 1);
    const downsamplePadding = c.int('downsample_padding', 1);
    const temb = channels[0]! * 4;
    this.eps = eps;
    this.groupsOut = groups;

    const w = new WeightLoader(rt, store, '', this.precision.dtype);
    this.w = w;
    try {
      this.build(w, c, { channels, downTypes, upTypes, layers, groups, midGroups, eps, headDimRaw, attnGroups, midScale, downsamplePadding, temb, timeEmbeddingNorm, timeEmbeddingType, downsampleType, upsampleType, where });
      store.assertAllUsed();
    } catch (e) {
      w.destroy();
      throw e;
    }
  }

  private build(
    w: WeightLoader,
    c: ConfigReader,
    o: {
      channels: number[]; downTypes: string[]; upTypes: string[]; layers: number; groups: number; midGroups: number; eps: number; headDimRaw: unknown; attnGroups: number | null; midScale: number;
      downsamplePadding: number; temb: number; timeEmbeddingNorm: TimeEmbeddingNorm; timeEmbeddingType: TimeEmbeddingType; downsampleType: ResampleType; upsampleType: ResampleType; where: string;
    },
  ): void {
    const { channels, downTypes, upTypes, layers, groups, midGroups, eps, headDimRaw, attnGroups, midScale, downsamplePadding, temb, timeEmbeddingNorm, timeEmbeddingType, downsampleType, upsampleType, where } = o;
    this.time = new TimeEmbedding(w, {
      projDim: channels[0]!,
      timeEmbeddingType,
      numTrainTimesteps: c.has('num_train_timesteps') && c.raw('num_train_timesteps') !== null ? c.int('num_train_timesteps', 1, 1) : null,
      embedDim: temb,
      flipSinToCos: c.bool('flip_sin_to_cos', true),
      freqShift: c.num('freq_shift', 0),
      numClassEmbeds: c.has('num_class_embeds') && c.raw('num_class_embeds') !== null ? c.int('num_class_embeds', 0, 1) : null,
      // class_embed_type wins over num_class_embeds, as in diffusers.
      classEmbedType: (c.raw('class_embed_type') ?? null) as 'timestep' | 'identity' | null,
      resnetAct: this.act,
    });
    this.convIn = loadConv(w, 'conv_in', this.inChannels, channels[0]!, 3);
    const headDim = (ch: number) => (typeof headDimRaw === 'number' ? headDimRaw : ch);

    let out = channels[0]!;
    downTypes.forEach((type, i) => {
      const inCh = out;
      out = channels[i]!;
      const isFinal = i === channels.length - 1;
      this.down.push(
        makeDownBlock(type, UNET_DOWN_TYPES, w.sub(`down_blocks.${i}`), { numLayers: layers, inChannels: inCh, outChannels: out, tembChannels: temb, groups, eps, attentionHeadDim: headDim(out), outputScaleFactor: 1, timeEmbeddingNorm, act: this.act }, !isFinal, downsamplePadding, where, downsampleType),
      );
    });
    const last = channels[channels.length - 1]!;
    this.mid = new MidBlock2D(w.sub('mid_block'), { numLayers: 1, inChannels: last, outChannels: last, tembChannels: temb, groups: midGroups, eps, attentionHeadDim: headDim(last), outputScaleFactor: midScale, addAttention: c.bool('add_attention', true), attnGroups, timeEmbeddingNorm, act: this.act });
    const rev = [...channels].reverse();
    let outCh = rev[0]!;
    upTypes.forEach((type, i) => {
      const prev = outCh;
      outCh = rev[i]!;
      const inCh = rev[Math.min(i + 1, rev.length - 1)]!;
      const isFinal = i === channels.length - 1;
      this.up.push(
        makeUpBlock(type, UNET_UP_TYPES, w.sub(`up_blocks.${i}`), { numLayers: layers + 1, inChannels: inCh, outChannels: outCh, prevOutputChannels: prev, tembChannels: temb, groups, eps, attentionHeadDim: headDim(outCh), outputScaleFactor: 1, timeEmbeddingNorm, act: this.act }, !isFinal, where, upsampleType),
      );
    });
    this.normOut = loadNorm(w, 'conv_norm_out', channels[0]!);
    this.convOut = loadConv(w, 'conv_out', channels[0]!, this.outChannels, 3);
  }

  /** The class embedding kind (diffusers' class_embed_type, 'embedding' for nn.Embedding), or null. */
  get classEmbedType(): ClassEmbedType | null {
    return this.time.classEmbedType;
  }

  get numClasses(): number | null {
    return this.time.numClasses;
  }

  /**
   * Host class labels as the tensor forward() takes in TimestepInput.classLabels: class ids for
   * nn.Embedding, label values for 'timestep', [batch, time_embed_dim] rows for 'identity'.
   */
  uploadClassLabels(rt: Runtime, ids: ArrayLike<number>, batch: number, label = 'class_labels'): Tensor {
    return this.time.uploadClassLabels(rt, ids, batch, label);
  }

  /** Records one forward pass. sample: [B, in_channels, H, W] (f32). Returns [B, out_channels, H, W] (f32). */
  forward(g: Graph, sample: Tensor, t: TimestepInput): Tensor {
    const B = sample.shape[0]!;
    if (sample.shape[1] !== this.inChannels) throw new ConfigError(`UNet2DModel: sample has ${sample.shape[1]} channels, the model takes ${this.inChannels}`);
    const factor = 2 ** (this.down.length - 1);
    if (sample.shape[2]! % factor !== 0 || sample.shape[3]! % factor !== 0) {
      throw new ConfigError(`UNet2DModel: sample size ${sample.shape[2]}x${sample.shape[3]} must be a multiple of ${factor}`);
    }
    const emb = this.time.forward(g, B, t);
    const skip: SkipSample | undefined = this.skipPath ? { t: null, owned: false } : undefined;
    const out = runUNetBody(g, {
      where: 'UNet2DModel',
      dtype: this.w.dtype,
      centerInput: this.centerInput,
      convIn: this.convIn,
      convInPadding: 1,
      down: this.down.map((d) => (gr: Graph, h: Tensor) => d.forward(gr, h, emb, skip)),
      mid: (gr, h) => this.mid.forward(gr, h, emb),
      up: this.up.map((u) => (gr: Graph, h: Tensor, skips: Tensor[]) => u.forward(gr, h, emb, skips, skip)),
      normOut: this.normOut,
      groups: this.groupsOut,
      eps: this.eps,
      convOut: this.convOut,
      convOutPadding: 1,
      ...(skip ? { skipSample: skip } : {}),
    }, sample);
    g.release(emb);
    if (!this.divideByTimesteps) return out;
    // time_embedding_type 'fourier': sample / timesteps, per batch element (in f32, as diffusers'
    // f32 timesteps promote it).
    const scaled = divideBatch(g, 'sample/timesteps', out, t.timesteps, t.broadcast);
    g.release(out);
    return scaled;
  }

  destroy(): void {
    this.w.destroy();
  }
}

/**
 * Where diffusers' UNet2DModel.forward can carry skip_sample through the blocks without a shape
 * error: skip_conv is wired to 3 channels (so the input sample, and the output it is added to, must
 * have 3), a skip down block that downsamples needs the skip sample at its level (every block
 * before it a skip block too), and once an up block has made the image-space skip every later up
 * block must be a skip block that upsamples it.
 */
function checkSkipPath(where: string, downTypes: string[], upTypes: string[], inChannels: number, outChannels: number): void {
  const n = downTypes.length;
  const firstOther = downTypes.findIndex((t) => !isSkipBlock(t));
  downTypes.forEach((t, i) => {
    if (!isSkipBlock(t) || i === n - 1) return;
    if (inChannels !== SKIP_SAMPLE_CHANNELS) throw new ConfigError(`${where}: ${t}'s skip_conv takes ${SKIP_SAMPLE_CHANNELS}-channel samples, in_channels is ${inChannels}`);
    if (firstOther >= 0 && firstOther < i) throw new ConfigError(`${where}: down block ${i} (${t}) gets the skip sample at full size after ${downTypes[firstOther]} downsampled the hidden states (diffusers fails on this)`);
  });
  const making = upTypes.findIndex((t, i) => isSkipBlock(t) && i < n - 1);
  if (making >= 0) {
    if (outChannels !== SKIP_SAMPLE_CHANNELS) throw new ConfigError(`${where}: ${upTypes[making]}'s skip_conv makes a ${SKIP_SAMPLE_CHANNELS}-channel skip for the output, out_channels is ${outChannels}`);
    const after = upTypes.slice(making + 1).find((t) => !isSkipBlock(t));
    if (after) throw new ConfigError(`${where}: up block ${upTypes.indexOf(after, making + 1)} (${after}) does not upsample the skip that up block ${making} (${upTypes[making]}) made (diffusers fails on this)`);
  }
}
