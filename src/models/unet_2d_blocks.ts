// diffusers.models.unet_2d_blocks: the down, mid and up blocks of UNet2DModel and of the
// AutoencoderKL decoder, built from their block type names (get_down_block / get_up_block).
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d, type Activation } from '../kernels/gemm.ts';
import { concatChannels, firResample2x } from '../kernels/elementwise.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import { SpatialAttention } from './attention_processor.ts';
import { releaseSplit, single, whole, type Split } from './channel_split.ts';
import type { ResampleType, TimeEmbeddingNorm } from './config_types.ts';
import type { WeightLoader } from './loader.ts';
import { Downsample2D, loadConv, loadNorm, ResnetBlock2D, Upsample2D } from './resnet.ts';
import { SKIP_SAMPLE_CHANNELS } from './unet_2d_config.ts';
import { ConfigError } from '../errors.ts';


/**
 * An up block resnet's input: h with the newest skip connection (popped) concatenated along the
 * channels; h and the skip are released. h is the skip itself after an absent mid block
 * (mid_block_type null), and is then released once.
 */
export function catSkip(g: Graph, h: Tensor, skips: Tensor[]): Tensor {
  const skip = skips.pop();
  if (!skip) throw new ConfigError('up block ran out of skip connections: down and up block configs do not match');
  const input = concatChannels(g, 'cat', h, skip);
  g.release(...(h === skip ? [h] : [h, skip]));
  return input;
}

/**
 * A down block's layers: each resnet, then its attention where it has one; every layer's output
 * is also a skip for the up path (pushed to `skips`). Returns the last output.
 */
function resnetsAndAttentions(g: Graph, x: Tensor, temb: Tensor | null, resnets: readonly ResnetBlock2D[], attentions: readonly SpatialAttention[], skips: Tensor[]): Tensor {
  let h = x;
  resnets.forEach((r, i) => {
    h = r.forward(g, h, temb);
    const a = attentions[i];
    if (a) {
      const prev = h;
      h = a.forward(g, h);
      g.release(prev);
    }
    skips.push(h);
  });
  return h;
}

export interface BlockOptions {
  numLayers: number;
  inChannels: number;
  outChannels: number;
  tembChannels: number | null;
  groups: number;
  eps: number;
  /** Channels per attention head (diffusers' attention_head_dim after its defaulting). */
  attentionHeadDim: number;
  outputScaleFactor: number;
  /** resnet_time_scale_shift, passed to every ResnetBlock2D. */
  timeEmbeddingNorm?: TimeEmbeddingNorm;
  /** resnet_act_fn, passed to every ResnetBlock2D (default SiLU). */
  act?: Activation;
}

function makeAttention(w: WeightLoader, channels: number, o: Omit<BlockOptions, 'groups'> & { groups: number | null }): SpatialAttention {
  if (channels % o.attentionHeadDim !== 0) {
    throw new ConfigError(`${w.prefix}: ${channels} channels do not split into heads of attention_head_dim ${o.attentionHeadDim}`);
  }
  return new SpatialAttention(w, { channels, heads: channels / o.attentionHeadDim, groups: o.groups, eps: o.eps, rescaleOutputFactor: o.outputScaleFactor });
}

/**
 * UNet2DModel's skip_sample, which NCSN++'s skip blocks carry beside the hidden states: the down
 * blocks get the (centered) input sample and FIR-downsample it level by level (each adds
 * skip_conv of it to its output); the up blocks start from null (diffusers' None, then 0) and build
 * the image-space skip that is added to the model's output. `owned`: t was made by a block (and is
 * released when a block replaces it), not the caller's sample. Other block types ignore it.
 */
export interface SkipSample {
  t: Tensor | null;
  owned: boolean;
}

export interface DownBlock {
  /** Returns the block output and the skip states it adds. */
  forward(g: Graph, x: Tensor, temb: Tensor | null, skip?: SkipSample): { out: Tensor; skips: Tensor[] };
  /** The VAE encoder's path: over channel chunks (attentions on whole tensors), consuming x, no skips kept. */
  forwardSplit(g: Graph, x: Split): Split;
}

/**
 * Resnets (each followed by its attention, where the block has one) then the resampler, over
 * channel chunks; each input is released once consumed. An attention mixes all channels of every
 * pixel, so it takes its input whole (whole() names the tensor if that would pass the binding
 * limit) and hands on a single chunk. `zq`: the quantized latents every resnet and attention of a
 * norm_type 'spatial' decoder is conditioned on (null elsewhere: the VAEs have no time embedding).
 */
export function chainSplit(
  g: Graph,
  x: Split,
  resnets: readonly ResnetBlock2D[],
  resample: ((h: Split) => Split) | null,
  attentions: readonly (SpatialAttention | null)[] = [],
  zq: Tensor | null = null,
): Split {
  const steps: ((t: Split) => Split)[] = [];
  resnets.forEach((r, i) => {
    steps.push((t) => r.forwardSplit(g, t, zq));
    const a = attentions[i];
    if (a) steps.push((t) => single(a.forward(g, whole(t, a.where), zq ?? undefined)));
  });
  if (resample) steps.push(resample);
  let h = x;
  for (const step of steps) {
    const next = step(h);
    releaseSplit(g, h);
    h = next;
  }
  return h;
}

/** The ResnetBlock2D (in = out channels) that resamples in place of a conv Downsample2D / Upsample2D. */
function resampleResnet(w: WeightLoader, o: BlockOptions, resample: 'up' | 'down'): ResnetBlock2D {
  return new ResnetBlock2D(w, { inChannels: o.outChannels, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act, resample });
}

/** DownBlock2D / AttnDownBlock2D / DownEncoderBlock2D / AttnDownEncoderBlock2D / ResnetDownsampleBlock2D: resnets, optional attentions, optional downsampler. */
class Down implements DownBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];
  private readonly down: Downsample2D | null = null;
  /** downsamplers.0 as a ResnetBlock2D with down=True (takes the time embedding). */
  private readonly downResnet: ResnetBlock2D | null = null;
  private readonly groups: number;

  constructor(w: WeightLoader, o: BlockOptions, withAttention: boolean, addDownsample: boolean, downsamplePadding: number, downsampleType: ResampleType = 'conv') {
    for (let i = 0; i < o.numLayers; i++) {
      const cin = i === 0 ? o.inChannels : o.outChannels;
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i}`), { inChannels: cin, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act }));
      if (withAttention) this.attentions.push(makeAttention(w.sub(`attentions.${i}`), o.outChannels, o));
    }
    if (addDownsample && downsampleType === 'resnet') this.downResnet = resampleResnet(w.sub('downsamplers.0'), o, 'down');
    else if (addDownsample) this.down = new Downsample2D(w.sub('downsamplers.0'), o.outChannels, downsamplePadding);
    this.groups = o.groups;
  }

  forwardSplit(g: Graph, x: Split): Split {
    const resample = this.down ? (h: Split) => this.down!.forwardSplit(g, h, this.groups) : this.downResnet ? (h: Split) => this.downResnet!.forwardSplit(g, h, null) : null;
    return chainSplit(g, x, this.resnets, resample, this.attentions);
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null): { out: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    let h = resnetsAndAttentions(g, x, temb, this.resnets, this.attentions, skips);
    if (this.down) {
      h = this.down.forward(g, h);
      skips.push(h);
    } else if (this.downResnet) {
      h = this.downResnet.forward(g, h, temb);
      skips.push(h);
    }
    return { out: h, skips };
  }
}

/**
 * diffusers' get_down_block (its config reader has checked `type` is one the model builds). `downsampleType` is the U-Net's
 * downsample_type, which in diffusers v0.25.1 only AttnDownBlock2D reads: DownBlock2D keeps its
 * conv Downsample2D whatever it is, and ResnetDownsampleBlock2D always resamples with a ResnetBlock2D
 * (and ignores downsample_padding).
 */
export function makeDownBlock(type: string, w: WeightLoader, o: BlockOptions, addDownsample: boolean, downsamplePadding: number, where: string, downsampleType: ResampleType = 'conv'): DownBlock {
  switch (type) {
    case 'DownBlock2D':
    case 'DownEncoderBlock2D':
      return new Down(w, o, false, addDownsample, downsamplePadding);
    case 'AttnDownBlock2D':
      return new Down(w, o, true, addDownsample, downsamplePadding, downsampleType);
    // The VAE encoder's: AttnDownBlock2D's layers without a time embedding, always a conv downsampler.
    case 'AttnDownEncoderBlock2D':
      return new Down(w, o, true, addDownsample, downsamplePadding);
    case 'ResnetDownsampleBlock2D':
      return new Down(w, o, false, addDownsample, downsamplePadding, 'resnet');
    case 'SkipDownBlock2D':
      return new SkipDown(w, o, false, addDownsample);
    case 'AttnSkipDownBlock2D':
      return new SkipDown(w, o, true, addDownsample);
    default:
      throw new ConfigError(`${where}: down block type ${type} is not supported (supported: DownBlock2D, AttnDownBlock2D, DownEncoderBlock2D, AttnDownEncoderBlock2D, ResnetDownsampleBlock2D, SkipDownBlock2D, AttnSkipDownBlock2D)`);
  }
}

/** NCSN++'s skip blocks' residual scale (their output_scale_factor, np.sqrt(2.0); they ignore the U-Net's). */
const SKIP_OUTPUT_SCALE = Math.SQRT2;

/**
 * A group count NCSN++'s skip blocks compute for their norms instead of taking norm_num_groups:
 * min(channels // 4, 32) by default (`groups` where a block computes another), checked to divide the channels.
 */
function skipGroups(where: string, channels: number, groups = Math.min(Math.floor(channels / 4), 32)): number {
  if (groups < 1 || channels % groups !== 0) throw new ConfigError(`${where}: ${channels} channels do not split into ${groups} groups (the group count the skip block computes from its channels)`);
  return groups;
}

/** The attention of AttnSkipDownBlock2D / AttnSkipUpBlock2D: GroupNorm with 32 groups whatever norm_num_groups is, rescaled by √2. */
function skipAttention(w: WeightLoader, o: BlockOptions): SpatialAttention {
  if (o.outChannels % 32 !== 0) throw new ConfigError(`${w.prefix}: the skip blocks' attention norm takes 32 groups, and ${o.outChannels} channels do not split into 32`);
  return makeAttention(w, o.outChannels, { ...o, groups: 32, outputScaleFactor: SKIP_OUTPUT_SCALE });
}

/** Replaces skip.t with t (made from it), releasing the old tensor where a block made it. */
function replaceSkip(g: Graph, skip: SkipSample, t: Tensor): void {
  if (skip.t && skip.owned) g.release(skip.t);
  skip.t = t;
  skip.owned = true;
}

function skipBlocksWholeOnly(where: string): never {
  throw new ConfigError(`${where}: skip blocks run in the U-Net only, on whole tensors`);
}

/**
 * SkipDownBlock2D / AttnSkipDownBlock2D (NCSN++): resnets (groups min(C // 4, 32) for each norm,
 * output scale √2, no norm_num_groups), optional attentions; where it downsamples, resnet_down (a
 * ResnetBlock2D with a FIR down and a 1x1 shortcut) on the hidden states, the skip sample
 * FIR-downsampled (FirDownsample2D, no conv) and skip_conv (1x1, 3 → C) of it added to the output.
 */
class SkipDown implements DownBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];
  private readonly resnetDown: ResnetBlock2D | null = null;
  private readonly skipConv: ReturnType<typeof loadConv> | null = null;
  private readonly where: string;

  constructor(w: WeightLoader, o: BlockOptions, withAttention: boolean, addDownsample: boolean) {
    this.where = w.prefix;
    const shared = { tembChannels: o.tembChannels, eps: o.eps, outputScaleFactor: SKIP_OUTPUT_SCALE, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act };
    for (let i = 0; i < o.numLayers; i++) {
      const cin = i === 0 ? o.inChannels : o.outChannels;
      const rw = w.sub(`resnets.${i}`);
      this.resnets.push(new ResnetBlock2D(rw, { ...shared, inChannels: cin, outChannels: o.outChannels, groups: skipGroups(rw.prefix, cin), groupsOut: skipGroups(rw.prefix, o.outChannels) }));
      if (withAttention) this.attentions.push(skipAttention(w.sub(`attentions.${i}`), o));
    }
    if (addDownsample) {
      const rw = w.sub('resnet_down');
      const groups = skipGroups(rw.prefix, o.outChannels);
      this.resnetDown = new ResnetBlock2D(rw, { ...shared, inChannels: o.outChannels, outChannels: o.outChannels, groups, resample: 'down', fir: true, useInShortcut: true });
      this.skipConv = loadConv(w, 'skip_conv', SKIP_SAMPLE_CHANNELS, o.outChannels, 1);
    }
  }

  forwardSplit(): Split {
    return skipBlocksWholeOnly(this.where);
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null, skip?: SkipSample): { out: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    let h = resnetsAndAttentions(g, x, temb, this.resnets, this.attentions, skips);
    if (this.resnetDown && this.skipConv) {
      if (!skip?.t) throw new ConfigError(`${this.where}: a skip block needs the skip sample, which only UNet2DModel passes`);
      const down = this.resnetDown.forward(g, h, temb);
      replaceSkip(g, skip, firResample2x(g, `${this.where}.downsamplers.0`, skip.t, 'down'));
      h = conv2d(g, `${this.where}.skip_conv`, skip.t!, this.skipConv.weight, { bias: this.skipConv.bias, residual: down });
      g.release(down);
      skips.push(h);
    }
    return { out: h, skips };
  }
}

/** UNetMidBlock2D: resnet, (attention, resnet) × layers. */
export class MidBlock2D {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];

  /** attnGroups null: attention without its group norm (diffusers' attn_groups = None). */
  constructor(w: WeightLoader, o: BlockOptions & { addAttention: boolean; attnGroups: number | null }) {
    const ro = { inChannels: o.inChannels, outChannels: o.inChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act };
    this.resnets.push(new ResnetBlock2D(w.sub('resnets.0'), ro));
    for (let i = 0; i < o.numLayers; i++) {
      if (o.addAttention) this.attentions.push(makeAttention(w.sub(`attentions.${i}`), o.inChannels, { ...o, groups: o.attnGroups }));
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i + 1}`), ro));
    }
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null): Tensor {
    let h = this.resnets[0]!.forward(g, x, temb);
    for (let i = 1; i < this.resnets.length; i++) {
      const a = this.attentions[i - 1];
      if (a) {
        const prev = h;
        h = a.forward(g, h);
        g.release(prev);
      }
      const prev = h;
      h = this.resnets[i]!.forward(g, h, temb);
      g.release(prev);
    }
    return h;
  }
}

export interface UpBlock {
  /** Consumes skip states from the end of `skips` (UNet); the decoder passes none. `skip`: UNet2DModel's skip sample. */
  forward(g: Graph, x: Tensor, temb: Tensor | null, skips: Tensor[], skip?: SkipSample): Tensor;
  /** The VAE decoder's path: over channel chunks (attentions on whole tensors), consuming x; no skip connections. */
  forwardSplit(g: Graph, x: Split): Split;
}

/** UpBlock2D / AttnUpBlock2D / ResnetUpsampleBlock2D (with skip concatenation) and UpDecoderBlock2D / AttnUpDecoderBlock2D (without). */
class Up implements UpBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];
  private readonly up: Upsample2D | null = null;
  /** upsamplers.0 as a ResnetBlock2D with up=True (takes the time embedding). */
  private readonly upResnet: ResnetBlock2D | null = null;
  private readonly groups: number;
  private readonly where: string;

  constructor(w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, withAttention: boolean, addUpsample: boolean, private readonly useSkips: boolean, upsampleType: ResampleType = 'conv') {
    this.groups = o.groups;
    this.where = w.prefix;
    for (let i = 0; i < o.numLayers; i++) {
      let cin: number;
      if (useSkips) {
        const skipChannels = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
        cin = (i === 0 ? o.prevOutputChannels : o.outChannels) + skipChannels;
      } else {
        cin = i === 0 ? o.inChannels : o.outChannels;
      }
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i}`), { inChannels: cin, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act }));
      if (withAttention) this.attentions.push(makeAttention(w.sub(`attentions.${i}`), o.outChannels, o));
    }
    if (addUpsample && upsampleType === 'resnet') this.upResnet = resampleResnet(w.sub('upsamplers.0'), o, 'up');
    else if (addUpsample) this.up = new Upsample2D(w.sub('upsamplers.0'), o.outChannels);
  }

  forwardSplit(g: Graph, x: Split): Split {
    if (this.useSkips) throw new ConfigError(`${this.where}: blocks with skip connections run on whole tensors only`);
    const resample = this.up ? (h: Split) => this.up!.forwardSplit(g, h, this.groups) : this.upResnet ? (h: Split) => this.upResnet!.forwardSplit(g, h, null) : null;
    return chainSplit(g, x, this.resnets, resample, this.attentions);
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null, skips: Tensor[]): Tensor {
    let h = x;
    this.resnets.forEach((r, i) => {
      let input = h;
      if (this.useSkips) input = catSkip(g, h, skips);
      h = r.forward(g, input, temb);
      g.release(input);
      const a = this.attentions[i];
      if (a) {
        const prev = h;
        h = a.forward(g, h);
        g.release(prev);
      }
    });
    if (this.up) {
      const prev = h;
      // diffusers upsamples to the next skip's size, which differs from 2x for odd latent sizes.
      h = this.up.forward(g, h, skips.at(-1)?.shape.slice(2));
      g.release(prev);
    } else if (this.upResnet) {
      // Always 2x (diffusers' ResnetBlock2D up has no output size): only UNet2DModel builds it, which takes sizes divisible by 2^(levels-1).
      const prev = h;
      h = this.upResnet.forward(g, h, temb);
      g.release(prev);
    }
    return h;
  }
}

/**
 * diffusers' get_up_block (its config reader has checked `type` is one the model builds). `upsampleType` is the U-Net's
 * upsample_type, which in diffusers v0.25.1 only AttnUpBlock2D reads: UpBlock2D keeps its conv
 * Upsample2D, and ResnetUpsampleBlock2D always resamples with a ResnetBlock2D.
 */
export function makeUpBlock(type: string, w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, addUpsample: boolean, where: string, upsampleType: ResampleType = 'conv'): UpBlock {
  switch (type) {
    case 'UpBlock2D':
      return new Up(w, o, false, addUpsample, true);
    case 'AttnUpBlock2D':
      return new Up(w, o, true, addUpsample, true, upsampleType);
    case 'ResnetUpsampleBlock2D':
      return new Up(w, o, false, addUpsample, true, 'resnet');
    case 'UpDecoderBlock2D':
      return new Up(w, o, false, addUpsample, false);
    case 'AttnUpDecoderBlock2D':
      return new Up(w, o, true, addUpsample, false);
    case 'SkipUpBlock2D':
      return new SkipUp(w, o, false, addUpsample);
    case 'AttnSkipUpBlock2D':
      return new SkipUp(w, o, true, addUpsample);
    default:
      throw new ConfigError(`${where}: up block type ${type} is not supported (supported: UpBlock2D, AttnUpBlock2D, ResnetUpsampleBlock2D, UpDecoderBlock2D, AttnUpDecoderBlock2D, SkipUpBlock2D, AttnSkipUpBlock2D)`);
  }
}

/**
 * SkipUpBlock2D / AttnSkipUpBlock2D (NCSN++): resnets over the concatenated skips (output scale √2,
 * own group counts), for the attention variant one attention after all of them; then the skip
 * sample, where there is one, FIR-upsampled 2x (FirUpsample2D, no conv) and, where the block
 * upsamples, skip_conv(SiLU(skip_norm(h))) (3x3, C → 3) added to it, and resnet_up (a ResnetBlock2D
 * with a FIR up and a 1x1 shortcut) on the hidden states.
 */
class SkipUp implements UpBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attention: SpatialAttention | null = null;
  private readonly resnetUp: ResnetBlock2D | null = null;
  private readonly skipConv: ReturnType<typeof loadConv> | null = null;
  private readonly skipNorm: ReturnType<typeof loadNorm> | null = null;
  private readonly skipNormGroups: number = 0;
  private readonly eps: number;
  private readonly where: string;

  constructor(w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, withAttention: boolean, addUpsample: boolean) {
    this.where = w.prefix;
    this.eps = o.eps;
    const shared = { tembChannels: o.tembChannels, eps: o.eps, outputScaleFactor: SKIP_OUTPUT_SCALE, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act };
    for (let i = 0; i < o.numLayers; i++) {
      const skipChannels = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
      const resnetIn = i === 0 ? o.prevOutputChannels : o.outChannels;
      const cin = resnetIn + skipChannels;
      // diffusers v0.25.1: SkipUpBlock2D gives norm1 min((in + skip) // 4, 32) groups, AttnSkipUpBlock2D
      // min(in + skip // 4, 32) (its // binds before +: 32 whenever in >= 32).
      const groups = withAttention ? Math.min(resnetIn + Math.floor(skipChannels / 4), 32) : Math.min(Math.floor(cin / 4), 32);
      const rw = w.sub(`resnets.${i}`);
      this.resnets.push(new ResnetBlock2D(rw, { ...shared, inChannels: cin, outChannels: o.outChannels, groups: skipGroups(rw.prefix, cin, groups), groupsOut: skipGroups(rw.prefix, o.outChannels) }));
    }
    if (withAttention) this.attention = skipAttention(w.sub('attentions.0'), o);
    if (addUpsample) {
      const rw = w.sub('resnet_up');
      const groups = skipGroups(rw.prefix, o.outChannels);
      this.resnetUp = new ResnetBlock2D(rw, { ...shared, inChannels: o.outChannels, outChannels: o.outChannels, groups, resample: 'up', fir: true, useInShortcut: true });
      this.skipConv = loadConv(w, 'skip_conv', o.outChannels, SKIP_SAMPLE_CHANNELS, 3);
      this.skipNorm = loadNorm(w, 'skip_norm', o.outChannels);
      this.skipNormGroups = groups;
    }
  }

  forwardSplit(): Split {
    return skipBlocksWholeOnly(this.where);
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null, skips: Tensor[], skip?: SkipSample): Tensor {
    if (!skip) throw new ConfigError(`${this.where}: a skip block needs the skip sample, which only UNet2DModel passes`);
    const p = this.where;
    let h = x;
    for (const r of this.resnets) {
      const input = catSkip(g, h, skips);
      h = r.forward(g, input, temb);
      g.release(input);
    }
    if (this.attention) {
      const prev = h;
      h = this.attention.forward(g, h);
      g.release(prev);
    }
    if (skip.t) replaceSkip(g, skip, firResample2x(g, `${p}.upsampler`, skip.t, 'up'));
    if (this.resnetUp && this.skipConv && this.skipNorm) {
      // skip_sample (0 where there was none) + skip_conv(SiLU(skip_norm(h))): SiLU whatever act_fn is.
      const n = groupNorm(g, `${p}.skip_norm`, h, this.skipNorm.weight, this.skipNorm.bias, { groups: this.skipNormGroups, eps: this.eps, act: 'silu' });
      const s = conv2d(g, `${p}.skip_conv`, n, this.skipConv.weight, { bias: this.skipConv.bias, padding: 1, ...(skip.t ? { residual: skip.t } : {}) });
      g.release(n);
      replaceSkip(g, skip, s);
      const prev = h;
      h = this.resnetUp.forward(g, h, temb);
      g.release(prev);
    }
    return h;
  }
}
