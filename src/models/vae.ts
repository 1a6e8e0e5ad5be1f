// diffusers.models.vae: the Encoder (conv_in → down blocks → mid block → norm, SiLU, conv_out to
// 2·latent channels) and the Decoder (conv_in → mid block → up blocks → norm, SiLU, conv_out).
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d } from '../kernels/gemm.ts';
import { groupNorm } from '../kernels/group_norm.ts';
import { releaseSplit, single, splitConv, splitGroupNorm, whole, type Split } from './channel_split.ts';
import type { WeightLoader } from './loader.ts';
import { SpatialAttention } from './attention_processor.ts';
import { loadConv, loadNorm, loadSpatialNorm, ResnetBlock2D, splitSpatialNorm, Upsample2D, type SpatialNormWeights } from './resnet.ts';
import { chainSplit, MidBlock2D, makeDownBlock, makeUpBlock, type DownBlock, type UpBlock } from './unet_2d_blocks.ts';
import { SPATIAL_NORM_GROUPS, type VaeDecoderConfig, type VaeEncoderConfig } from './vae_config.ts';
import { ConfigError } from '../errors.ts';

/** The VAE's resnets and attention use eps 1e-6 regardless of config (as diffusers does). */
const VAE_EPS = 1e-6;

/** AutoencoderKL's encoder (double_z: conv_out gives the posterior's mean and logvar stacked on channels). */
export class Encoder {
  private readonly convIn;
  private readonly down: DownBlock[] = [];
  private readonly mid: MidBlock2D;
  private readonly normOut;
  private readonly convOut;
  private readonly groups: number;

  /** `where` names the model in errors. */
  constructor(private readonly w: WeightLoader, c: VaeEncoderConfig, inChannels: number, latentChannels: number, where: string) {
    const { act, channels, groups } = c;
    this.groups = groups;
    this.convIn = loadConv(w, 'conv_in', inChannels, channels[0]!, 3);
    let out = channels[0]!;
    c.downTypes.forEach((type, i) => {
      const prev = out;
      out = channels[i]!;
      // The encoder's downsamplers use padding 0: an asymmetric right/bottom pad, unlike the UNet's.
      this.down.push(
        makeDownBlock(type, w.sub(`down_blocks.${i}`), { numLayers: c.layersPerBlock, inChannels: prev, outChannels: out, tembChannels: null, groups, eps: VAE_EPS, attentionHeadDim: out, outputScaleFactor: 1, act }, i !== c.downTypes.length - 1, 0, where),
      );
    });
    this.mid = new MidBlock2D(w.sub('mid_block'), {
      numLayers: 1, inChannels: out, outChannels: out, tembChannels: null, groups, eps: VAE_EPS,
      attentionHeadDim: out, outputScaleFactor: 1, addAttention: c.midBlockAddAttention, attnGroups: groups, act,
    });
    this.normOut = loadNorm(w, 'conv_norm_out', out);
    this.convOut = loadConv(w, 'conv_out', out, 2 * latentChannels, 3);
  }

  /**
   * image [B, C, H, W] → moments [B, 2·latent_channels, H/f, W/f]. The high-resolution levels run
   * over channel chunks (one chunk when a tensor fits a binding); the mid block needs whole tensors.
   */
  forward(g: Graph, x: Tensor): Tensor {
    const p = this.w.prefix;
    const s = this.w.slices;
    let hs = splitConv(g, s, `${p}.conv_in`, single(x), this.convIn, { groups: this.groups, padding: 1 });
    for (const d of this.down) hs = d.forwardSplit(g, hs);
    const h = whole(hs, `${p}.mid_block`);
    const m = this.mid.forward(g, h, null);
    g.release(h);
    const n = groupNorm(g, `${p}.conv_norm_out`, m, this.normOut.weight, this.normOut.bias, { groups: this.groups, eps: VAE_EPS, silu: true });
    g.release(m);
    const out = conv2d(g, `${p}.conv_out`, n, this.convOut.weight, { bias: this.convOut.bias, padding: 1 });
    g.release(n);
    return out;
  }
}

/**
 * The decoder under norm_type 'spatial' (MoVQ): every norm is a SpatialNorm conditioned on the
 * quantized latents zq (resnets' norm1/norm2 with time_embedding_norm 'spatial', the mid-block
 * attention's spatial_norm with no group_norm, conv_norm_out). diffusers builds the mid and up
 * blocks with temb_channels = the decoder's in_channels, so zq must have latent_channels channels.
 */
class SpatialDecoderBlocks {
  readonly midResnets: ResnetBlock2D[] = [];
  readonly midAttention: SpatialAttention | null;
  /** Each resnet is followed by its attention in an AttnUpDecoderBlock2D (null in an UpDecoderBlock2D). */
  readonly up: { resnets: ResnetBlock2D[]; attentions: (SpatialAttention | null)[]; upsampler: Upsample2D | null }[] = [];
  readonly normOut: SpatialNormWeights;

  constructor(w: WeightLoader, c: VaeDecoderConfig, zqChannels: number) {
    const { channels, upTypes, act } = c;
    const layers = c.layersPerBlock;
    const last = channels[channels.length - 1]!;
    const resnet = (p: string, cin: number, cout: number) =>
      new ResnetBlock2D(w.sub(p), { inChannels: cin, outChannels: cout, tembChannels: zqChannels, groups: SPATIAL_NORM_GROUPS, eps: VAE_EPS, outputScaleFactor: 1, timeEmbeddingNorm: 'spatial', act });
    this.midResnets.push(resnet('mid_block.resnets.0', last, last));
    // attention_head_dim = the channels: one head; attn_groups is None under 'spatial' (no group_norm).
    this.midAttention = c.midBlockAddAttention
      ? new SpatialAttention(w.sub('mid_block.attentions.0'), { channels: last, heads: 1, groups: null, eps: VAE_EPS, rescaleOutputFactor: 1, spatialNormDim: zqChannels })
      : null;
    this.midResnets.push(resnet('mid_block.resnets.1', last, last));
    const rev = [...channels].reverse();
    let out = rev[0]!;
    upTypes.forEach((type, i) => {
      const prev = out;
      out = rev[i]!;
      const resnets: ResnetBlock2D[] = [];
      const attentions: (SpatialAttention | null)[] = [];
      for (let j = 0; j < layers + 1; j++) {
        resnets.push(resnet(`up_blocks.${i}.resnets.${j}`, j === 0 ? prev : out, out));
        // Under 'spatial' an AttnUpDecoderBlock2D's attention has a SpatialNorm on zq and no group norm; one head (attention_head_dim = the block's channels).
        attentions.push(type === 'AttnUpDecoderBlock2D' ? new SpatialAttention(w.sub(`up_blocks.${i}.attentions.${j}`), { channels: out, heads: 1, groups: null, eps: VAE_EPS, rescaleOutputFactor: 1, spatialNormDim: zqChannels }) : null);
      }
      this.up.push({ resnets, attentions, upsampler: i !== upTypes.length - 1 ? new Upsample2D(w.sub(`up_blocks.${i}.upsamplers.0`), out) : null });
    });
    this.normOut = loadSpatialNorm(w, 'conv_norm_out', channels[0]!, zqChannels);
  }
}

export class Decoder {
  private readonly convIn;
  private readonly mid: MidBlock2D | null = null;
  private readonly up: UpBlock[] = [];
  private readonly normOut;
  private readonly convOut;
  private readonly groups: number;
  private readonly spatial: SpatialDecoderBlocks | null = null;

  /** normType 'spatial': forward() takes the quantized latents zq (latentChannels channels) too. `where` names the model in errors. */
  constructor(private readonly w: WeightLoader, c: VaeDecoderConfig, latentChannels: number, outChannels: number, where: string) {
    const { act, channels, upTypes, groups } = c;
    this.groups = groups;
    const last = channels[channels.length - 1]!;
    this.convIn = loadConv(w, 'conv_in', latentChannels, last, 3);
    this.convOut = loadConv(w, 'conv_out', channels[0]!, outChannels, 3);
    if (c.normType === 'spatial') {
      this.spatial = new SpatialDecoderBlocks(w, c, latentChannels);
      this.normOut = null;
      return;
    }
    this.mid = new MidBlock2D(w.sub('mid_block'), {
      numLayers: 1, inChannels: last, outChannels: last, tembChannels: null, groups, eps: VAE_EPS,
      attentionHeadDim: last, outputScaleFactor: 1, addAttention: c.midBlockAddAttention, attnGroups: groups, act,
    });
    const rev = [...channels].reverse();
    let out = rev[0]!;
    upTypes.forEach((type, i) => {
      const prev = out;
      out = rev[i]!;
      this.up.push(
        makeUpBlock(type, w.sub(`up_blocks.${i}`), { numLayers: c.layersPerBlock + 1, inChannels: prev, outChannels: out, prevOutputChannels: prev, tembChannels: null, groups, eps: VAE_EPS, attentionHeadDim: out, outputScaleFactor: 1, act }, i !== upTypes.length - 1, where),
      );
    });
    this.normOut = loadNorm(w, 'conv_norm_out', channels[0]!);
  }

  /**
   * The up blocks run over channel chunks, so a decode whose activations pass the binding limit
   * (Stable Diffusion's at 512×512 has 256 MiB ones) still runs; the mid block needs whole tensors.
   * zq: the quantized latents under norm_type 'spatial' (VQModel passes them before post_quant_conv).
   */
  forward(g: Graph, z: Tensor, zq?: Tensor): Tensor {
    const p = this.w.prefix;
    const s = this.w.slices;
    const h = conv2d(g, `${p}.conv_in`, z, this.convIn.weight, { bias: this.convIn.bias, padding: 1 });
    let hs: Split;
    let n: Split;
    const sp = this.spatial;
    if (sp) {
      if (!zq) throw new ConfigError(`${p}: norm_type 'spatial' needs the quantized latents`);
      let m = sp.midResnets[0]!.forward(g, h, zq);
      g.release(h);
      if (sp.midAttention) {
        const prev = m;
        m = sp.midAttention.forward(g, m, zq);
        g.release(prev);
      }
      const prev = m;
      m = sp.midResnets[1]!.forward(g, m, zq);
      g.release(prev);
      hs = single(m);
      for (const u of sp.up) {
        const up = u.upsampler;
        hs = chainSplit(g, hs, u.resnets, up ? (t: Split) => up.forwardSplit(g, t, this.groups) : null, u.attentions, zq);
      }
      n = splitSpatialNorm(g, s, `${p}.conv_norm_out`, hs, sp.normOut, zq, 'silu');
    } else {
      hs = single(this.mid!.forward(g, h, null));
      g.release(h);
      for (const u of this.up) hs = u.forwardSplit(g, hs);
      n = splitGroupNorm(g, s, `${p}.conv_norm_out`, hs, this.normOut!, { groups: this.groups, eps: VAE_EPS, silu: true });
    }
    releaseSplit(g, hs);
    // One group per output channel: the image's few channels are chunked only if they must be.
    const out = splitConv(g, s, `${p}.conv_out`, n, this.convOut, { groups: this.convOut.weight.shape[0]!, padding: 1 });
    releaseSplit(g, n);
    return whole(out, `${p}.conv_out`);
  }
}
