// diffusers.models.unet_2d_blocks: the down, mid and up blocks of UNet2DModel and of the
// AutoencoderKL decoder, built from their block type names (get_down_block / get_up_block).
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import type { Activation } from '../kernels/gemm.ts';
import { concatChannels } from '../kernels/elementwise.ts';
import { SpatialAttention } from './attention_processor.ts';
import { releaseSplit, type Split } from './channel_split.ts';
import { ConfigError, type WeightLoader } from './loader.ts';
import { Downsample2D, ResnetBlock2D, Upsample2D, type TimeEmbeddingNorm } from './resnet.ts';

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

export interface DownBlock {
  /** Returns the block output and the skip states it adds. */
  forward(g: Graph, x: Tensor, temb: Tensor | null): { out: Tensor; skips: Tensor[] };
  /** The VAE encoder's path: over channel chunks, consuming x, no skips kept (resnets and downsampler only). */
  forwardSplit(g: Graph, x: Split): Split;
}

/** Resnets then the resampler over channel chunks; each input is released once consumed. */
function chainSplit(g: Graph, x: Split, resnets: ResnetBlock2D[], resample: ((h: Split) => Split) | null): Split {
  let h = x;
  for (const r of [...resnets.map((r) => (t: Split) => r.forwardSplit(g, t, null)), ...(resample ? [resample] : [])]) {
    const next = r(h);
    releaseSplit(g, h);
    h = next;
  }
  return h;
}

function noChunkedAttention(where: string, attentions: unknown[]): void {
  if (attentions.length) throw new ConfigError(`${where}: blocks with attention run on whole tensors only`);
}

/**
 * How a block resamples: 'conv' is Downsample2D / Upsample2D with their 3x3 conv, 'resnet' a
 * ResnetBlock2D with down=True / up=True (AttnDownBlock2D / AttnUpBlock2D under the U-Net's
 * downsample_type / upsample_type 'resnet', and always in ResnetDownsampleBlock2D / ResnetUpsampleBlock2D).
 */
export type ResampleType = 'conv' | 'resnet';

/** The ResnetBlock2D (in = out channels) that resamples in place of a conv Downsample2D / Upsample2D. */
function resampleResnet(w: WeightLoader, o: BlockOptions, resample: 'up' | 'down'): ResnetBlock2D {
  return new ResnetBlock2D(w, { inChannels: o.outChannels, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act, resample });
}

/** DownBlock2D / AttnDownBlock2D / DownEncoderBlock2D / ResnetDownsampleBlock2D: resnets, optional attentions, optional downsampler. */
class Down implements DownBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];
  private readonly down: Downsample2D | null = null;
  /** downsamplers.0 as a ResnetBlock2D with down=True (takes the time embedding). */
  private readonly downResnet: ResnetBlock2D | null = null;
  private readonly groups: number;
  private readonly where: string;

  constructor(w: WeightLoader, o: BlockOptions, withAttention: boolean, addDownsample: boolean, downsamplePadding: number, downsampleType: ResampleType = 'conv') {
    for (let i = 0; i < o.numLayers; i++) {
      const cin = i === 0 ? o.inChannels : o.outChannels;
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i}`), { inChannels: cin, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act }));
      if (withAttention) this.attentions.push(makeAttention(w.sub(`attentions.${i}`), o.outChannels, o));
    }
    if (addDownsample && downsampleType === 'resnet') this.downResnet = resampleResnet(w.sub('downsamplers.0'), o, 'down');
    else if (addDownsample) this.down = new Downsample2D(w.sub('downsamplers.0'), o.outChannels, downsamplePadding);
    this.groups = o.groups;
    this.where = w.prefix;
  }

  forwardSplit(g: Graph, x: Split): Split {
    noChunkedAttention(this.where, this.attentions);
    const resample = this.down ? (h: Split) => this.down!.forwardSplit(g, h, this.groups) : this.downResnet ? (h: Split) => this.downResnet!.forwardSplit(g, h, null) : null;
    return chainSplit(g, x, this.resnets, resample);
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null): { out: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    let h = x;
    this.resnets.forEach((r, i) => {
      h = r.forward(g, h, temb);
      const a = this.attentions[i];
      if (a) {
        const prev = h;
        h = a.forward(g, h);
        g.release(prev);
      }
      skips.push(h);
    });
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
 * diffusers' get_down_block for the types `allowed` names. `downsampleType` is the U-Net's
 * downsample_type, which in diffusers v0.25.1 only AttnDownBlock2D reads: DownBlock2D keeps its
 * conv Downsample2D whatever it is, and ResnetDownsampleBlock2D always resamples with a ResnetBlock2D
 * (and ignores downsample_padding).
 */
export function makeDownBlock(type: string, allowed: readonly string[], w: WeightLoader, o: BlockOptions, addDownsample: boolean, downsamplePadding: number, where: string, downsampleType: ResampleType = 'conv'): DownBlock {
  if (!allowed.includes(type)) throw new ConfigError(`${where}: down block type ${type} is not supported (supported: ${allowed.join(', ')})`);
  switch (type) {
    case 'DownBlock2D':
    case 'DownEncoderBlock2D':
      return new Down(w, o, false, addDownsample, downsamplePadding);
    case 'AttnDownBlock2D':
      return new Down(w, o, true, addDownsample, downsamplePadding, downsampleType);
    case 'ResnetDownsampleBlock2D':
      return new Down(w, o, false, addDownsample, downsamplePadding, 'resnet');
    default:
      throw new ConfigError(`${where}: down block type ${type} is not supported (supported: DownBlock2D, AttnDownBlock2D, DownEncoderBlock2D, ResnetDownsampleBlock2D)`);
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
  /** Consumes skip states from the end of `skips` (UNet); the decoder passes none. */
  forward(g: Graph, x: Tensor, temb: Tensor | null, skips: Tensor[]): Tensor;
  /** The VAE decoder's path: over channel chunks, consuming x (resnets and upsampler only). */
  forwardSplit(g: Graph, x: Split): Split;
}

/** UpBlock2D / AttnUpBlock2D / ResnetUpsampleBlock2D (with skip concatenation) and UpDecoderBlock2D (without). */
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
    noChunkedAttention(this.where, this.attentions);
    if (this.useSkips) throw new ConfigError(`${this.where}: blocks with skip connections run on whole tensors only`);
    const resample = this.up ? (h: Split) => this.up!.forwardSplit(g, h, this.groups) : this.upResnet ? (h: Split) => this.upResnet!.forwardSplit(g, h, null) : null;
    return chainSplit(g, x, this.resnets, resample);
  }

  forward(g: Graph, x: Tensor, temb: Tensor | null, skips: Tensor[]): Tensor {
    let h = x;
    this.resnets.forEach((r, i) => {
      let input = h;
      if (this.useSkips) {
        const skip = skips.pop();
        if (!skip) throw new ConfigError('up block ran out of skip connections: down and up block configs do not match');
        input = concatChannels(g, `cat`, h, skip);
        // h is the skip itself after an absent mid block (mid_block_type null): release it once.
        g.release(...(h === skip ? [h] : [h, skip]));
      }
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
 * diffusers' get_up_block for the types `allowed` names. `upsampleType` is the U-Net's
 * upsample_type, which in diffusers v0.25.1 only AttnUpBlock2D reads: UpBlock2D keeps its conv
 * Upsample2D, and ResnetUpsampleBlock2D always resamples with a ResnetBlock2D.
 */
export function makeUpBlock(type: string, allowed: readonly string[], w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, addUpsample: boolean, where: string, upsampleType: ResampleType = 'conv'): UpBlock {
  if (!allowed.includes(type)) throw new ConfigError(`${where}: up block type ${type} is not supported (supported: ${allowed.join(', ')})`);
  switch (type) {
    case 'UpBlock2D':
      return new Up(w, o, false, addUpsample, true);
    case 'AttnUpBlock2D':
      return new Up(w, o, true, addUpsample, true, upsampleType);
    case 'ResnetUpsampleBlock2D':
      return new Up(w, o, false, addUpsample, true, 'resnet');
    case 'UpDecoderBlock2D':
      return new Up(w, o, false, addUpsample, false);
    default:
      throw new ConfigError(`${where}: up block type ${type} is not supported (supported: UpBlock2D, AttnUpBlock2D, ResnetUpsampleBlock2D, UpDecoderBlock2D)`);
  }
}
