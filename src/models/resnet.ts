// diffusers.models.resnet: ResnetBlock2D, Downsample2D, Upsample2D.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d } from '../kernels/gemm.ts';
import { linear } from '../kernels/gemm.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import type { WeightLoader } from './loader.ts';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  /** null for the VAE, which has no time embedding. */
  tembChannels: number | null;
  groups: number;
  eps: number;
  outputScaleFactor: number;
}

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

  constructor(private readonly w: WeightLoader, private readonly o: ResnetOptions) {
    this.norm1 = loadNorm(w, 'norm1', o.inChannels);
    this.conv1 = loadConv(w, 'conv1', o.inChannels, o.outChannels, 3);
    this.timeEmbProj =
      o.tembChannels === null
        ? null
        : { weight: w.tensor('time_emb_proj.weight', [o.outChannels, o.tembChannels]), bias: w.tensor('time_emb_proj.bias', [o.outChannels]) };
    this.norm2 = loadNorm(w, 'norm2', o.outChannels);
    this.conv2 = loadConv(w, 'conv2', o.outChannels, o.outChannels, 3);
    this.shortcut = o.inChannels !== o.outChannels ? loadConv(w, 'conv_shortcut', o.inChannels, o.outChannels, 1) : null;
  }

  /** x: [B, Cin, H, W]; tembAct: SiLU(emb) [B, tembChannels] shared by every block. */
  forward(g: Graph, x: Tensor, tembAct: Tensor | null): Tensor {
    const p = this.w.prefix;
    const { groups, eps } = this.o;
    let temb: Tensor | undefined;
    if (this.timeEmbProj && tembAct) {
      temb = linear(g, `${p}.time_emb_proj`, tembAct, this.timeEmbProj.weight, { bias: this.timeEmbProj.bias });
    }
    const h1 = groupNorm(g, `${p}.norm1`, x, this.norm1.weight, this.norm1.bias, { groups, eps, silu: true });
    const h2 = conv2d(g, `${p}.conv1`, h1, this.conv1.weight, { bias: this.conv1.bias, padding: 1, temb });
    g.release(h1);
    if (temb) g.release(temb);
    const h3 = groupNorm(g, `${p}.norm2`, h2, this.norm2.weight, this.norm2.bias, { groups, eps, silu: true });
    g.release(h2);
    const residual = this.shortcut ? conv2d(g, `${p}.conv_shortcut`, x, this.shortcut.weight, { bias: this.shortcut.bias }) : x;
    const out = conv2d(g, `${p}.conv2`, h3, this.conv2.weight, {
      bias: this.conv2.bias,
      padding: 1,
      residual,
      scale: 1 / this.o.outputScaleFactor,
    });
    g.release(h3);
    if (residual !== x) g.release(residual);
    return out;
  }
}

export class Downsample2D {
  private readonly conv: Conv;
  constructor(private readonly w: WeightLoader, channels: number, private readonly padding: number) {
    this.conv = loadConv(w, 'conv', channels, channels, 3);
  }

  forward(g: Graph, x: Tensor): Tensor {
    // padding = 0 means diffusers pads (0, 1, 0, 1) — right and bottom only — before the conv.
    const pad: [number, number, number, number] = this.padding === 0 ? [0, 0, 1, 1] : [this.padding, this.padding, this.padding, this.padding];
    return conv2d(g, `${this.w.prefix}.conv`, x, this.conv.weight, { bias: this.conv.bias, stride: 2, padding: pad });
  }
}

export class Upsample2D {
  private readonly conv: Conv;
  constructor(private readonly w: WeightLoader, channels: number) {
    this.conv = loadConv(w, 'conv', channels, channels, 3);
  }

  /** Nearest 2x then a 3x3 conv; the upsample is fused into the conv's input read. */
  forward(g: Graph, x: Tensor): Tensor {
    return conv2d(g, `${this.w.prefix}.conv`, x, this.conv.weight, { bias: this.conv.bias, padding: 1, upsample: true });
  }
}
