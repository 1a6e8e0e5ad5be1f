// diffusers.models.attention.BasicTransformerBlock as Stable Diffusion's U-Net uses it
// (norm_type 'layer_norm', GEGLU feed-forward) on tokens [B, T, C]: self-attention, cross-attention
// to the text states, feed-forward, each pre-normed and added back to its input.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { geglu } from '../kernels/elementwise.ts';
import { linear } from '../kernels/gemm.ts';
import { layerNorm } from '../kernels/layer_norm.ts';
import { loadNorm } from './resnet.ts';
import type { WeightLoader } from './loader.ts';

export interface TransformerBlockOptions {
  /** Token width (heads × head dim). */
  dim: number;
  heads: number;
  /** Width of encoder_hidden_states, the keys and values of attn2. */
  crossAttentionDim: number;
  /** LayerNorm eps (diffusers' norm_eps, 1e-5 by default). */
  eps: number;
  /** only_cross_attention: attn1 takes its keys and values from the context (attn2 still follows). */
  onlyCrossAttention?: boolean;
}

interface Linear {
  weight: Tensor;
  bias?: Tensor;
}

/** attn1 / attn2: q from the tokens, k and v from `context` (the tokens themselves for attn1). */
class CrossAttention {
  private readonly q: Linear;
  private readonly k: Linear;
  private readonly v: Linear;
  private readonly out: Linear;

  constructor(private readonly w: WeightLoader, dim: number, contextDim: number, private readonly heads: number) {
    // attention_bias is False in the U-Net's transformers: only to_out has a bias.
    this.q = { weight: w.gemmWeight('to_q.weight', [dim, dim]) };
    this.k = { weight: w.gemmWeight('to_k.weight', [dim, contextDim]) };
    this.v = { weight: w.gemmWeight('to_v.weight', [dim, contextDim]) };
    this.out = { weight: w.gemmWeight('to_out.0.weight', [dim, dim]), bias: w.tensor('to_out.0.bias', [dim]) };
  }

  /** Returns residual + attention(x, context). */
  forward(g: Graph, x: Tensor, context: Tensor, residual: Tensor): Tensor {
    const p = this.w.prefix;
    const q = linear(g, `${p}.to_q`, x, this.q.weight);
    const k = linear(g, `${p}.to_k`, context, this.k.weight);
    const v = linear(g, `${p}.to_v`, context, this.v.weight);
    const a = attention(g, `${p}.attn`, q, k, v, this.heads);
    g.release(q, k, v);
    const out = linear(g, `${p}.to_out.0`, a, this.out.weight, { bias: this.out.bias, residual });
    g.release(a);
    return out;
  }
}

export class BasicTransformerBlock {
  private readonly norm1;
  private readonly attn1: CrossAttention;
  private readonly norm2;
  private readonly attn2: CrossAttention;
  private readonly norm3;
  private readonly ffIn: Linear;
  private readonly ffOut: Linear;

  constructor(private readonly w: WeightLoader, private readonly o: TransformerBlockOptions) {
    const d = o.dim;
    // FeedForward(dim, mult=4, activation_fn='geglu'): the projection makes value and gate halves.
    const inner = 4 * d;
    this.norm1 = loadNorm(w, 'norm1', d);
    this.attn1 = new CrossAttention(w.sub('attn1'), d, o.onlyCrossAttention ? o.crossAttentionDim : d, o.heads);
    this.norm2 = loadNorm(w, 'norm2', d);
    this.attn2 = new CrossAttention(w.sub('attn2'), d, o.crossAttentionDim, o.heads);
    this.norm3 = loadNorm(w, 'norm3', d);
    this.ffIn = { weight: w.gemmWeight('ff.net.0.proj.weight', [2 * inner, d]), bias: w.tensor('ff.net.0.proj.bias', [2 * inner]) };
    this.ffOut = { weight: w.gemmWeight('ff.net.2.weight', [d, inner]), bias: w.tensor('ff.net.2.bias', [d]) };
  }

  /** x: [B, T, dim]; context: [B, S, cross_attention_dim]. Returns [B, T, dim]; x stays alive. */
  forward(g: Graph, x: Tensor, context: Tensor): Tensor {
    const p = this.w.prefix;
    const eps = this.o.eps;
    const n1 = layerNorm(g, `${p}.norm1`, x, this.norm1.weight, this.norm1.bias, eps);
    const h1 = this.attn1.forward(g, n1, this.o.onlyCrossAttention ? context : n1, x);
    g.release(n1);
    const n2 = layerNorm(g, `${p}.norm2`, h1, this.norm2.weight, this.norm2.bias, eps);
    const h2 = this.attn2.forward(g, n2, context, h1);
    g.release(n2, h1);
    const n3 = layerNorm(g, `${p}.norm3`, h2, this.norm3.weight, this.norm3.bias, eps);
    const proj = linear(g, `${p}.ff.net.0.proj`, n3, this.ffIn.weight, { bias: this.ffIn.bias });
    g.release(n3);
    const act = geglu(g, `${p}.ff.geglu`, proj);
    g.release(proj);
    const out = linear(g, `${p}.ff.net.2`, act, this.ffOut.weight, { bias: this.ffOut.bias, residual: h2 });
    g.release(act, h2);
    return out;
  }
}
