// diffusers.models.resnet: ResnetBlock2D (with its up / down resampling), Downsample2D, Upsample2D.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d, linear, type Activation } from '../kernels/gemm.ts';
import { avgPool2x, firResample2x, upsampleNearest2x } from '../kernels/elementwise.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import { releaseSplit, single, splitConv, splitGroupNorm, whole, type Split, type WeightSlices } from './channel_split.ts';
import type { TimeEmbeddingNorm } from './config_types.ts';
import { SPATIAL_NORM_GROUPS } from './vae_config.ts';
import type { WeightLoader } from './loader.ts';
import { ConfigError } from '../errors.ts';

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
   * norm2(h)·(1 + scale) + shift before the SiLU; 'spatial' (MoVQ's decoder) makes norm1 and
   * norm2 SpatialNorms conditioned on the quantized latents zq (passed as the time embedding,
   * tembChannels = zq's channels), with no time_emb_proj.
   */
  timeEmbeddingNorm?: TimeEmbeddingNorm;
  /** resnet_act_fn: the activation after norm1 and norm2 (the one on the time embedding is the caller's). Default SiLU. */
  act?: Activation;
  /**
   * diffusers' up=True / down=True (no FIR kernel): after norm1 and its activation, the hidden
   * states and the shortcut's input are both nearest-upsampled 2x ('up', Upsample2D without conv)
   * or 2x2 average-pooled ('down', Downsample2D without conv). The U-Nets' downsample_type /
   * upsample_type 'resnet' and ResnetDownsampleBlock2D / ResnetUpsampleBlock2D.
   */
  resample?: 'up' | 'down';
  /**
   * diffusers' kernel='fir' (NCSN++'s skip blocks): `resample` uses the FIR (1, 3, 3, 1) filter
   * (upsample_2d / downsample_2d) instead of nearest / average pooling.
   */
  fir?: boolean;
  /** groups_out: norm2's group count (default `groups`). */
  groupsOut?: number;
  /** use_in_shortcut: a 1x1 conv_shortcut even where in = out channels (default: only where they differ). */
  useInShortcut?: boolean;
}

interface Conv {
  weight: Tensor;
  bias: Tensor;
}

export function loadConv(w: WeightLoader, name: string, cin: number, cout: number, k: number): Conv {
  return { weight: w.gemmWeight(`${name}.weight`, [cout, cin, k, k]), bias: w.tensor(`${name}.bias`, [cout]) };
}

export function loadNorm(w: WeightLoader, name: string, c: number): { weight: Tensor; bias: Tensor } {
  return { weight: w.tensor(`${name}.weight`, [c]), bias: w.tensor(`${name}.bias`, [c]) };
}

/**
 * diffusers.models.attention_processor.SpatialNorm: GroupNorm(32 groups, eps 1e-6, affine) of f,
 * then f·conv_y(zq) + conv_b(zq) with zq nearest-interpolated to f's size. The 1x1 convs run at
 * the latent size (a 1x1 conv commutes with nearest upsampling) and the apply pass of the norm
 * reads them at each pixel's nearest source position.
 */
export interface SpatialNormWeights {
  norm: { weight: Tensor; bias: Tensor };
  convY: Conv;
  convB: Conv;
}

/** SpatialNorm's fixed eps (like its group count, whatever the config says). */
const SPATIAL_NORM_EPS = 1e-6;

export function loadSpatialNorm(w: WeightLoader, name: string, channels: number, zqChannels: number): SpatialNormWeights {
  return {
    norm: loadNorm(w, `${name}.norm_layer`, channels),
    convY: loadConv(w, `${name}.conv_y`, zqChannels, channels, 1),
    convB: loadConv(w, `${name}.conv_b`, zqChannels, channels, 1),
  };
}

/** SpatialNorm over channel chunks (each chunk holds whole groups), with an optional fused activation after it. */
export function splitSpatialNorm(g: Graph, slices: WeightSlices, label: string, x: Split, n: SpatialNormWeights, zq: Tensor, act: Activation | undefined): Split {
  const C = x.shape[1];
  if (C % SPATIAL_NORM_GROUPS !== 0) throw new ConfigError(`${label}: SpatialNorm's GroupNorm takes 32 groups, and ${C} channels do not split into 32`);
  const groupSize = C / SPATIAL_NORM_GROUPS;
  const parts = x.parts.map((part, k) => {
    const c0 = x.starts[k]!;
    const c = part.shape[1]!;
    const l = x.parts.length > 1 ? `${label}[${k}]` : label;
    const mod = (name: string, conv: Conv) =>
      conv2d(g, `${l}.${name}`, zq, slices.slice(conv.weight, c0, c0 + c), { bias: slices.slice(conv.bias, c0, c0 + c) });
    const scale = mod('conv_y', n.convY);
    const shift = mod('conv_b', n.convB);
    const out = groupNorm(g, `${l}.norm_layer`, part, slices.slice(n.norm.weight, c0, c0 + c), slices.slice(n.norm.bias, c0, c0 + c), {
      groups: c / groupSize, eps: SPATIAL_NORM_EPS, act, spatial: { scale, shift },
    });
    g.release(scale, shift);
    return out;
  });
  return { parts, starts: x.starts, shape: x.shape };
}

/** f on every chunk (an op local to its channels), `[k]` in the label where there are several. */
function mapParts(x: Split, f: (t: Tensor, labelSuffix: string) => Tensor): Split {
  const parts = x.parts.map((t, k) => f(t, x.parts.length > 1 ? `[${k}]` : ''));
  const [B, C] = x.shape;
  const [, , H, W] = parts[0]!.shape as [number, number, number, number];
  return { parts, starts: x.starts, shape: [B, C, H, W] };
}

export class ResnetBlock2D {
  private readonly norm1;
  private readonly conv1: Conv;
  private readonly timeEmbProj: { weight: Tensor; bias: Tensor } | null;
  private readonly norm2;
  private readonly conv2: Conv;
  private readonly shortcut: Conv | null;

  private readonly scaleShift: boolean;
  /** time_embedding_norm 'spatial': SpatialNorm weights for norm1 and norm2 (then norm1/norm2 are unused). */
  private readonly spatial: { norm1: SpatialNormWeights; norm2: SpatialNormWeights } | null;

  constructor(private readonly w: WeightLoader, private readonly o: ResnetOptions) {
    this.scaleShift = (o.timeEmbeddingNorm ?? 'default') === 'scale_shift';
    if (o.timeEmbeddingNorm === 'spatial') {
      if (o.tembChannels === null) throw new ConfigError(`${w.prefix}: time_embedding_norm 'spatial' needs the quantized latents' channels as temb_channels`);
      this.spatial = { norm1: loadSpatialNorm(w, 'norm1', o.inChannels, o.tembChannels), norm2: loadSpatialNorm(w, 'norm2', o.outChannels, o.tembChannels) };
    } else {
      this.spatial = null;
    }
    this.norm1 = this.spatial ? null : loadNorm(w, 'norm1', o.inChannels);
    this.conv1 = loadConv(w, 'conv1', o.inChannels, o.outChannels, 3);
    const projOut = this.scaleShift ? 2 * o.outChannels : o.outChannels;
    this.timeEmbProj =
      o.tembChannels === null || this.spatial
        ? null
        : { weight: w.gemmWeight('time_emb_proj.weight', [projOut, o.tembChannels]), bias: w.tensor('time_emb_proj.bias', [projOut]) };
    this.norm2 = this.spatial ? null : loadNorm(w, 'norm2', o.outChannels);
    this.conv2 = loadConv(w, 'conv2', o.outChannels, o.outChannels, 3);
    this.shortcut = (o.useInShortcut ?? o.inChannels !== o.outChannels) ? loadConv(w, 'conv_shortcut', o.inChannels, o.outChannels, 1) : null;
  }

  /**
   * x: [B, Cin, H, W]; tembAct: act(emb) [B, tembChannels] (act = resnet_act_fn) shared by every block, or under
   * 'spatial' the quantized latents zq [B, tembChannels, h, w].
   */
  forward(g: Graph, x: Tensor, tembAct: Tensor | null): Tensor {
    return whole(this.forwardSplit(g, single(x), tembAct), this.w.prefix);
  }

  /** The same over channel chunks (the VAE at high resolution); a time embedding needs whole tensors. */
  forwardSplit(g: Graph, x: Split, tembAct: Tensor | null): Split {
    const p = this.w.prefix;
    const s = this.w.slices;
    const { groups, eps } = this.o;
    const groupsOut = this.o.groupsOut ?? groups;
    const act = this.o.act ?? 'silu';
    let temb: Tensor | undefined;
    if (this.timeEmbProj && tembAct) {
      temb = linear(g, `${p}.time_emb_proj`, tembAct, this.timeEmbProj.weight, { bias: this.timeEmbProj.bias });
    }
    // scale_shift takes the [B, 2C] projection in norm2's apply pass; default adds it in conv1's epilogue.
    const scaleShift = this.scaleShift ? temb : undefined;
    const sp = this.spatial;
    if (sp && !tembAct) throw new ConfigError(`${p}: time_embedding_norm 'spatial' needs the quantized latents`);
    let h1 = sp ? splitSpatialNorm(g, s, `${p}.norm1`, x, sp.norm1, tembAct!, act) : splitGroupNorm(g, s, `${p}.norm1`, x, this.norm1!, { groups, eps, act });
    // up / down: the hidden states are resampled here (a nearest upsample fuses into conv1's read),
    // the shortcut's input too, before its 1x1 conv.
    const { resample, fir } = this.o;
    let input = x;
    if (resample === 'down' || (resample === 'up' && fir)) {
      const op = fir ? (t: Tensor, l: string) => firResample2x(g, l, t, resample) : (t: Tensor, l: string) => avgPool2x(g, l, t);
      const resampled = mapParts(h1, (t, l) => op(t, `${p}.${resample}sample${l}`));
      releaseSplit(g, h1);
      h1 = resampled;
      input = mapParts(x, (t, l) => op(t, `${p}.${resample}sample.input${l}`));
    } else if (resample === 'up') {
      input = mapParts(x, (t, l) => upsampleNearest2x(g, `${p}.upsample.input${l}`, t));
    }
    const h2 = splitConv(g, s, `${p}.conv1`, h1, this.conv1, { groups: groupsOut, padding: 1, temb: scaleShift ? undefined : temb, upsample: resample === 'up' && !fir });
    releaseSplit(g, h1);
    const h3 = sp ? splitSpatialNorm(g, s, `${p}.norm2`, h2, sp.norm2, tembAct!, act) : splitGroupNorm(g, s, `${p}.norm2`, h2, this.norm2!, { groups: groupsOut, eps, act, scaleShift });
    releaseSplit(g, h2);
    if (temb) g.release(temb);
    const residual = this.shortcut ? splitConv(g, s, `${p}.conv_shortcut`, input, this.shortcut, { groups }) : input;
    const out = splitConv(g, s, `${p}.conv2`, h3, this.conv2, { groups, padding: 1, residual, scale: 1 / this.o.outputScaleFactor });
    releaseSplit(g, h3);
    if (residual !== x) releaseSplit(g, residual);
    if (input !== x && input !== residual) releaseSplit(g, input);
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
