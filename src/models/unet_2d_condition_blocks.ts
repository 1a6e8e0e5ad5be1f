// diffusers.models.unet_2d_blocks for UNet2DConditionModel: CrossAttnDownBlock2D,
// UNetMidBlock2DCrossAttn and CrossAttnUpBlock2D (resnets each followed by a Transformer2DModel
// that attends to encoder_hidden_states), and the plain DownBlock2D / UpBlock2D behind the same
// interface.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import type { WeightLoader } from './loader.ts';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet.ts';
import { Transformer2D } from './transformer_2d.ts';
import { catSkip, makeDownBlock, makeUpBlock, type BlockOptions } from './unet_2d_blocks.ts';

export interface CrossAttnOptions {
  heads: number;
  transformerLayers: number;
  crossAttentionDim: number;
  linearProjection: boolean;
  /** only_cross_attention: attn1 attends to encoder_hidden_states instead of the tokens. */
  onlyCrossAttention?: boolean;
}

export interface CondDownBlock {
  forward(g: Graph, x: Tensor, temb: Tensor, context: Tensor): { out: Tensor; skips: Tensor[] };
}

export interface CondUpBlock {
  forward(g: Graph, x: Tensor, temb: Tensor, context: Tensor, skips: Tensor[]): Tensor;
}

function makeTransformer(w: WeightLoader, channels: number, o: BlockOptions, a: CrossAttnOptions): Transformer2D {
  return new Transformer2D(w, { channels, heads: a.heads, numLayers: a.transformerLayers, crossAttentionDim: a.crossAttentionDim, groups: o.groups, eps: 1e-5, linearProjection: a.linearProjection, onlyCrossAttention: a.onlyCrossAttention ?? false });
}

/** Runs `t` on h, releasing h. */
function attend(g: Graph, t: Transformer2D, h: Tensor, context: Tensor): Tensor {
  const out = t.forward(g, h, context);
  g.release(h);
  return out;
}

class CrossAttnDown implements CondDownBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: Transformer2D[] = [];
  private readonly down: Downsample2D | null;

  constructor(w: WeightLoader, o: BlockOptions, a: CrossAttnOptions, addDownsample: boolean, downsamplePadding: number) {
    for (let i = 0; i < o.numLayers; i++) {
      const cin = i === 0 ? o.inChannels : o.outChannels;
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i}`), { inChannels: cin, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act }));
      this.attentions.push(makeTransformer(w.sub(`attentions.${i}`), o.outChannels, o, a));
    }
    this.down = addDownsample ? new Downsample2D(w.sub('downsamplers.0'), o.outChannels, downsamplePadding) : null;
  }

  forward(g: Graph, x: Tensor, temb: Tensor, context: Tensor): { out: Tensor; skips: Tensor[] } {
    const skips: Tensor[] = [];
    let h = x;
    this.resnets.forEach((r, i) => {
      h = attend(g, this.attentions[i]!, r.forward(g, h, temb), context);
      skips.push(h);
    });
    if (this.down) {
      h = this.down.forward(g, h);
      skips.push(h);
    }
    return { out: h, skips };
  }
}

class CrossAttnUp implements CondUpBlock {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: Transformer2D[] = [];
  private readonly up: Upsample2D | null;

  constructor(w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, a: CrossAttnOptions, addUpsample: boolean) {
    for (let i = 0; i < o.numLayers; i++) {
      const skipChannels = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
      const cin = (i === 0 ? o.prevOutputChannels : o.outChannels) + skipChannels;
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i}`), { inChannels: cin, outChannels: o.outChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act }));
      this.attentions.push(makeTransformer(w.sub(`attentions.${i}`), o.outChannels, o, a));
    }
    this.up = addUpsample ? new Upsample2D(w.sub('upsamplers.0'), o.outChannels) : null;
  }

  forward(g: Graph, x: Tensor, temb: Tensor, context: Tensor, skips: Tensor[]): Tensor {
    let h = x;
    this.resnets.forEach((r, i) => {
      const input = catSkip(g, h, skips);
      const res = r.forward(g, input, temb);
      g.release(input);
      h = attend(g, this.attentions[i]!, res, context);
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

/** UNetMidBlock2DCrossAttn: resnet, (transformer, resnet) × layers. */
export class MidBlock2DCrossAttn {
  private readonly resnets: ResnetBlock2D[] = [];
  private readonly attentions: Transformer2D[] = [];

  constructor(w: WeightLoader, o: BlockOptions, a: CrossAttnOptions) {
    const ro = { inChannels: o.inChannels, outChannels: o.inChannels, tembChannels: o.tembChannels, groups: o.groups, eps: o.eps, outputScaleFactor: o.outputScaleFactor, timeEmbeddingNorm: o.timeEmbeddingNorm, act: o.act };
    this.resnets.push(new ResnetBlock2D(w.sub('resnets.0'), ro));
    for (let i = 0; i < o.numLayers; i++) {
      this.attentions.push(makeTransformer(w.sub(`attentions.${i}`), o.inChannels, o, a));
      this.resnets.push(new ResnetBlock2D(w.sub(`resnets.${i + 1}`), ro));
    }
  }

  forward(g: Graph, x: Tensor, temb: Tensor, context: Tensor): Tensor {
    let h = this.resnets[0]!.forward(g, x, temb);
    for (let i = 1; i < this.resnets.length; i++) {
      h = attend(g, this.attentions[i - 1]!, h, context);
      const prev = h;
      h = this.resnets[i]!.forward(g, h, temb);
      g.release(prev);
    }
    return h;
  }
}

export function makeCondDownBlock(type: string, w: WeightLoader, o: BlockOptions, a: CrossAttnOptions, addDownsample: boolean, downsamplePadding: number, where: string): CondDownBlock {
  if (type === 'CrossAttnDownBlock2D') return new CrossAttnDown(w, o, a, addDownsample, downsamplePadding);
  const plain = makeDownBlock(type, w, o, addDownsample, downsamplePadding, where);
  return { forward: (g, x, temb) => plain.forward(g, x, temb) };
}

export function makeCondUpBlock(type: string, w: WeightLoader, o: BlockOptions & { prevOutputChannels: number }, a: CrossAttnOptions, addUpsample: boolean, where: string): CondUpBlock {
  if (type === 'CrossAttnUpBlock2D') return new CrossAttnUp(w, o, a, addUpsample);
  const plain = makeUpBlock(type, w, o, addUpsample, where);
  return { forward: (g, x, temb, _context, skips) => plain.forward(g, x, temb, skips) };
}
