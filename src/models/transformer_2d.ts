// diffusers.models.transformer_2d.Transformer2DModel on feature maps (continuous input): group
// norm, proj_in, BasicTransformerBlocks over the pixels as tokens, proj_out, residual.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { linear } from '../kernels/gemm.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import { BasicTransformerBlock } from './attention.ts';
import type { WeightLoader } from './loader.ts';
import { loadNorm } from './resnet.ts';
import { ConfigError } from '../errors.ts';

export interface Transformer2DOptions {
  channels: number;
  heads: number;
  numLayers: number;
  crossAttentionDim: number;
  groups: number;
  /** LayerNorm eps inside the blocks. */
  eps: number;
  /** true: proj_in / proj_out are nn.Linear over tokens; false: 1×1 convs (same math, 4-D weights). */
  linearProjection: boolean;
  /** only_cross_attention: each block's attn1 attends to the context too. */
  onlyCrossAttention?: boolean;
}

export class Transformer2D {
  private readonly norm;
  private readonly projIn: { weight: Tensor; bias: Tensor };
  private readonly projOut: { weight: Tensor; bias: Tensor };
  private readonly blocks: BasicTransformerBlock[] = [];

  constructor(private readonly w: WeightLoader, private readonly o: Transformer2DOptions) {
    const c = o.channels;
    if (c % o.heads !== 0) throw new ConfigError(`${w.prefix}: ${c} channels do not split into ${o.heads} attention heads`);
    this.norm = loadNorm(w, 'norm', c);
    // A 1×1 conv's [out, in, 1, 1] weight is the linear [out, in] weight in the same memory.
    const load = (name: string) => {
      const weight = w.gemmWeight(`${name}.weight`, o.linearProjection ? [c, c] : [c, c, 1, 1]);
      return { weight: { ...weight, shape: [c, c] }, bias: w.tensor(`${name}.bias`, [c]) };
    };
    this.projIn = load('proj_in');
    for (let i = 0; i < o.numLayers; i++) {
      this.blocks.push(new BasicTransformerBlock(w.sub(`transformer_blocks.${i}`), { dim: c, heads: o.heads, crossAttentionDim: o.crossAttentionDim, eps: o.eps, onlyCrossAttention: o.onlyCrossAttention ?? false }));
    }
    this.projOut = load('proj_out');
  }

  /** x: [B, C, H, W]; context: [B, S, cross_attention_dim]. Returns [B, C, H, W]; x stays alive. */
  forward(g: Graph, x: Tensor, context: Tensor): Tensor {
    const p = this.w.prefix;
    const [B, C, H, W] = x.shape as [number, number, number, number];
    // diffusers hard-codes eps 1e-6 for this norm.
    const n = groupNorm(g, `${p}.norm`, x, this.norm.weight, this.norm.bias, { groups: this.o.groups, eps: 1e-6 });
    // proj_in reads NCHW and writes tokens [B, HW, C]; proj_out writes back NCHW with the residual.
    let h = linear(g, `${p}.proj_in`, n, this.projIn.weight, { bias: this.projIn.bias, input: 'channels', output: 'rows', outShape: [B, H * W, C] });
    g.release(n);
    for (const b of this.blocks) {
      const prev = h;
      h = b.forward(g, h, context);
      g.release(prev);
    }
    const out = linear(g, `${p}.proj_out`, h, this.projOut.weight, { bias: this.projOut.bias, output: 'channels', outShape: [B, C, H, W], residual: x });
    g.release(h);
    return out;
  }
}
