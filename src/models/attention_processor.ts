// diffusers.models.attention_processor.Attention as the U-Net and VAE use it on feature maps:
// group norm, q/k/v projections over channels, multi-head SDPA, output projection, residual.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { linear } from '../kernels/gemm.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import { single, whole } from './channel_split.ts';
import { loadNorm, loadSpatialNorm, splitSpatialNorm, type SpatialNormWeights } from './resnet.ts';
import type { WeightLoader } from './loader.ts';
import { ConfigError } from '../errors.ts';

export interface SpatialAttentionOptions {
  channels: number;
  heads: number;
  /** null: no group_norm (diffusers' norm_num_groups = None, UNetMidBlock2D under scale_shift). */
  groups: number | null;
  eps: number;
  rescaleOutputFactor: number;
  /** diffusers' spatial_norm_dim: a SpatialNorm conditioned on zq with these channels before the projections. */
  spatialNormDim?: number;
}

function loadLinear(w: WeightLoader, name: string, cin: number, cout: number) {
  return { weight: w.gemmWeight(`${name}.weight`, [cout, cin]), bias: w.tensor(`${name}.bias`, [cout]) };
}

export class SpatialAttention {
  private readonly norm;
  private readonly q;
  private readonly k;
  private readonly v;
  private readonly out;
  private readonly spatialNorm: SpatialNormWeights | null;

  constructor(private readonly w: WeightLoader, private readonly o: SpatialAttentionOptions) {
    const c = o.channels;
    this.spatialNorm = o.spatialNormDim === undefined ? null : loadSpatialNorm(w, 'spatial_norm', c, o.spatialNormDim);
    this.norm = o.groups === null ? null : loadNorm(w, 'group_norm', c);
    this.q = loadLinear(w, 'to_q', c, c);
    this.k = loadLinear(w, 'to_k', c, c);
    this.v = loadLinear(w, 'to_v', c, c);
    this.out = loadLinear(w, 'to_out.0', c, c);
  }

  /** The weight prefix this attention loads from (for error messages). */
  get where(): string {
    return this.w.prefix;
  }

  /** zq: the quantized latents, for a spatial_norm (the residual stays x, as in diffusers). */
  forward(g: Graph, x: Tensor, zq?: Tensor): Tensor {
    const p = this.w.prefix;
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const T = H * W;
    if (this.spatialNorm && !zq) throw new ConfigError(`${p}: spatial_norm needs the quantized latents`);
    const s = this.spatialNorm ? whole(splitSpatialNorm(g, this.w.slices, `${p}.spatial_norm`, single(x), this.spatialNorm, zq!, undefined), `${p}.spatial_norm`) : x;
    const h = this.norm && this.o.groups !== null ? groupNorm(g, `${p}.group_norm`, s, this.norm.weight, this.norm.bias, { groups: this.o.groups, eps: this.o.eps }) : s;
    if (h !== s && s !== x) g.release(s);
    // The projections read NCHW directly (tokens = pixels) and write token-major [B, T, C].
    const proj = (name: string, l: { weight: Tensor; bias: Tensor }) =>
      linear(g, `${p}.${name}`, h, l.weight, { bias: l.bias, input: 'channels', output: 'rows', outShape: [B, T, C] });
    const q = proj('to_q', this.q);
    const k = proj('to_k', this.k);
    const v = proj('to_v', this.v);
    if (h !== x) g.release(h);
    const a = attention(g, `${p}.attn`, q, k, v, this.o.heads);
    g.release(q, k, v);
    // Output projection writes back to NCHW with the residual and 1/rescale_output_factor fused.
    const out = linear(g, `${p}.to_out.0`, a, this.out.weight, {
      bias: this.out.bias,
      output: 'channels',
      outShape: [B, C, H, W],
      residual: x,
      scale: 1 / this.o.rescaleOutputFactor,
    });
    g.release(a);
    return out;
  }
}
