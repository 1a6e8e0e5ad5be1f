// diffusers.models.unet_2d_blocks: the down, mid and up blocks of UNet2DModel and of the
// AutoencoderKL decoder, built from their block type names.
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

/** DownBlock2D / AttnDownBlock2D / DownEncoderBlock2D: resnets, optional attentions, optional downsampler. */
class Down implements DownBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];
  private readonly down: Downsample2D | null;
  private readonly groups: number;
  private readonly where: string;

  constructor(w: WeightLoader, o: BlockOptions, withAttention: boolean, addDownsample: boolean, downsamplePadding: number) {
    for (let i = 0; i < o.numLayers; i++) {
      const cin = i === 0 ? o.inChannels : o.outChannels;
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i}`), { inChannels: cin, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act }));
      if (withAttention) this.attentions.push(makeAttention(w.sub(`attentions.${i}`), o.outChannels, o));
    }
    this.down = addDownsample ? new Downsample2D(w.sub('downsamplers.0'), o.outChannels, downsamplePadding) : null;
    this.groups = o.groups;
    this.where = w.prefix;
  }

  forwardSplit(g: Graph, x: Split): Split {
    noChunkedAttention(this.where, this.attentions);
    return chainSplit(g, x, this.resnets, this.down ? (h) => this.down!.forwardSplit(g, h, this.groups) : null);
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
    }
    return { out: h, skips };
  }
}

export function makeDownBlock(type: string, allowed: readonly string[], w: WeightLoader, o: BlockOptions, addDownsample: boolean, downsamplePadding: number, where: string): DownBlock {
  if (!allowed.includes(type)) throw new ConfigError(`${where}: down block type ${type} is not supported (supported: ${allowed.join(', ')})`);
  switch (type) {
    case 'DownBlock2D':
    case 'DownEncoderBlock2D':
      return new Down(w, o, false, addDownsample, downsamplePadding);
    case 'AttnDownBlock2D':
      return new Down(w, o, true, addDownsample, downsamplePadding);
    default:
      throw new ConfigError(`${where}: down block type ${type} is not supported (supported: DownBlock2D, AttnDownBlock2D, DownEncoderBlock2D)`);
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

/** UpBlock2D / AttnUpBlock2D (with skip concatenation) and UpDecoderBlock2D (without). */
class Up implements UpBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: SpatialAttention[] = [];
  private readonly up: Upsample2D | null;
  private readonly groups: number;
  private readonly where: string;

  constructor(w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, withAttention: boolean, addUpsample: boolean, private readonly useSkips: boolean) {
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
    this.up = addUpsample ? new Upsample2D(w.sub('upsamplers.0'), o.outChannels) : null;
  }

  forwardSplit(g: Graph, x: Split): Split {
    noChunkedAttention(this.where, this.attentions);
    if (this.useSkips) throw new ConfigError(`${this.where}: blocks with skip connections run on whole tensors only`);
    return chainSplit(g, x, this.resnets, this.up ? (h) => this.up!.forwardSplit(g, h, this.groups) : null);
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
    }
    return h;
  }
}

export function makeUpBlock(type: string, allowed: readonly string[], w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, addUpsample: boolean, where: string): UpBlock {
  if (!allowed.includes(type)) throw new ConfigError(`${where}: up block type ${type} is not supported (supported: ${allowed.join(', ')})`);
  switch (type) {
    case 'UpBlock2D':
      return new Up(w, o, false, addUpsample, true);
    case 'AttnUpBlock2D':
      return new Up(w, o, true, addUpsample, true);
    case 'UpDecoderBlock2D':
      return new Up(w, o, false, addUpsample, false);
    default:
      throw new ConfigError(`${where}: up block type ${type} is not supported (supported: UpBlock2D, AttnUpBlock2D, UpDecoderBlock2D)`);
  }
}
