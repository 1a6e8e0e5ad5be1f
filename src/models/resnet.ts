// diffusers.models.resnet: ResnetBlock2D, Downsample2D, Upsample2D.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { linear } from '../kernels/gemm.ts';
import { releaseSplit, single, splitConv, splitGroupNorm, whole, type Split } from './channel_split.ts';
import type { WeightLoader } from './loader.ts';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  /** null for the VAE, which has no time embedding. */
  tembChannels: number | null;
  groups: number;
  eps: number;
  outputScaleFactor: number;
  /**
   * diffusers' time_embedding_norm (the U-Nets' resnet_time_scale_shift): 'default' adds the
   * projected embedding to conv1's output; 'scale_shift' projects to 2C and applies
   * norm2(h)·(1 + scale) + shift before the SiLU.
   */
  timeEmbeddingNorm?: TimeEmbeddingNorm;
}

export type TimeEmbeddingNorm = 'default' | 'scale_shift';

interface Conv {
  weight: Tensor;
  bias: Tensor;
}

export function loadConv(w: WeightLoader, name: string, cin: number, cout: number, k: number): Conv {
  return { weight: w.tensor(`${name}.weight`, [cout, cin, k, k]), bias: w.tensor(`${name}.bias`, [cout]) };
}

export function loadNorm(w: WeightLoader, name: string, c: number): { weight: Tensor; bias: Tensor } {
  return { weight: w.tensor(`${name}.weight`, [c]), bias: w.tensor(`${name}.bias`, [c]) };
}

export class ResnetBlock2D {
  private readonly norm1;
  private readonly conv1: Conv;
  private readonly timeEmbProj: { weight: Tensor; bias: Tensor } | null;
  private readonly norm2;
  private readonly conv2: Conv;
  private readonly shortcut: Conv | null;

  private readonly scaleShift: boolean;

  constructor(private readonly w: WeightLoader, private readonly o: ResnetOptions) {
    this.scaleShift = (o.timeEmbeddingNorm ?? 'default') === 'scale_shift';
    this.norm1 = loadNorm(w, 'norm1', o.inChannels);
    this.conv1 = loadConv(w, 'conv1', o.inChannels, o.outChannels, 3);
    const projOut = this.scaleShift ? 2 * o.outChannels : o.outChannels;
    this.timeEmbProj =
      o.tembChannels === null
        ? null
        : { weight: w.tensor('time_emb_proj.weight', [projOut, o.tembChannels]), bias: w.tensor('time_emb_proj.bias', [projOut]) };
    this.norm2 = loadNorm(w, 'norm2', o.outChannels);
    this.conv2 = loadConv(w, 'conv2', o.outChannels, o.outChannels, 3);
    this.shortcut = o.inChannels !== o.outChannels ? loadConv(w, 'conv_shortcut', o.inChannels, o.outChannels, 1) : null;
  }

  /** x: [B, Cin, H, W]; tembAct: SiLU(emb) [B, tembChannels] shared by every block. */
  forward(g: Graph, x: Tensor, tembAct: Tensor | null): Tensor {
    return whole(this.forwardSplit(g, single(x), tembAct), this.w.prefix);
  }

  /** The same over channel chunks (the VAE at high resolution); a time embedding needs whole tensors. */
  forwardSplit(g: Graph, x: Split, tembAct: Tensor | null): Split {
    const p = this.w.prefix;
    const s = this.w.slices;
    const { groups, eps } = this.o;
    let temb: Tensor | undefined;
    if (this.timeEmbProj && tembAct) {
      temb = linear(g, `${p}.time_emb_proj`, tembAct, this.timeEmbProj.weight, { bias: this.timeEmbProj.bias });
    }
    // scale_shift takes the [B, 2C] projection in norm2's apply pass; default adds it in conv1's epilogue.
    const scaleShift = this.scaleShift ? temb : undefined;
    const h1 = splitGroupNorm(g, s, `${p}.norm1`, x, this.norm1, { groups, eps, silu: true });
    const h2 = splitConv(g, s, `${p}.conv1`, h1, this.conv1, { groups, padding: 1, temb: scaleShift ? undefined : temb });
    releaseSplit(g, h1);
    const h3 = splitGroupNorm(g, s, `${p}.norm2`, h2, this.norm2, { groups, eps, silu: true, scaleShift });
    releaseSplit(g, h2);
    if (temb) g.release(temb);
    const residual = this.shortcut ? splitConv(g, s, `${p}.conv_shortcut`, x, this.shortcut, { groups }) : x;
    const out = splitConv(g, s, `${p}.conv2`, h3, this.conv2, { groups, padding: 1, residual, scale: 1 / this.o.outputScaleFactor });
    releaseSplit(g, h3);
    if (residual !== x) releaseSplit(g, residual);
    return out;
  }
}

export class Downsample2D {
  private readonly conv: Conv;
  constructor(private readonly w: WeightLoader, channels: number, private readonly padding: number) {
    this.conv = loadConv(w, 'conv', channels, channels, 3);
  }

  forward(g: Graph, x: Tensor): Tensor {
    return whole(this.forwardSplit(g, single(x), 1), this.w.prefix);
  }

  /** `groups`: of the norm that reads the output, which its chunks must not cut. */
  forwardSplit(g: Graph, x: Split, groups: number): Split {
    // padding = 0 means diffusers pads (0, 1, 0, 1) — right and bottom only — before the conv.
    const pad: [number, number, number, number] = this.padding === 0 ? [0, 0, 1, 1] : [this.padding, this.padding, this.padding, this.padding];
    return splitConv(g, this.w.slices, `${this.w.prefix}.conv`, x, this.conv, { groups, stride: 2, padding: pad });
  }
}

export class Upsample2D {
  private readonly conv: Conv;
  constructor(private readonly w: WeightLoader, channels: number) {
    this.conv = loadConv(w, 'conv', channels, channels, 3);
  }

  /**
   * Nearest 2x (or to `size`, the next skip's, as diffusers' upsample_size for odd latents) then a
   * 3x3 conv; the upsample is fused into the conv's input read.
   */
  forward(g: Graph, x: Tensor, size?: readonly number[]): Tensor {
    return whole(this.forwardSplit(g, single(x), 1, size), this.w.prefix);
  }

  /** `groups`: of the norm that reads the output, which its chunks must not cut. */
  forwardSplit(g: Graph, x: Split, groups: number, size?: readonly number[]): Split {
    const upsample = size ? ([size[0]!, size[1]!] as const) : true;
    return splitConv(g, this.w.slices, `${this.w.prefix}.conv`, x, this.conv, { groups, padding: 1, upsample });
  }
}
