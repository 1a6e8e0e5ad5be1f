// diffusers.models.autoencoder_kl.AutoencoderKL: encode (Encoder, quant_conv, posterior mean) and
// decode (post_quant_conv, Decoder).
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d } from '../kernels/gemm.ts';
import type { WeightStore } from '../io/weights.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { loadConv } from './resnet.ts';
import { Decoder, Encoder } from './vae.ts';

/** AutoencoderKL's constructor arguments (diffusers 0.25, plus the later quant-conv switches). */
const AUTOENCODER_KL_KEYS = [
  'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'act_fn', 'latent_channels', 'norm_num_groups', 'sample_size', 'scaling_factor', 'force_upcast',
  'use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention',
];

export class AutoencoderKL {
  readonly latentChannels: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly scalingFactor: number;
  private readonly w: WeightLoader;
  private readonly rt: Runtime;
  /** Weights uploaded here rather than through the loader (the sliced quant_conv). */
  private readonly ownBuffers: GPUBuffer[] = [];
  private readonly postQuant: { weight: Tensor; bias: Tensor } | null;
  private readonly decoder: Decoder;
  private readonly encoder: Encoder;
  /** quant_conv's rows for the posterior mean only: [latent, 2·latent, 1, 1]; the logvar rows are never needed. */
  private readonly quantMean: { weight: Tensor; bias: Tensor };

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, where = 'AutoencoderKL') {
    const c = new ConfigReader(config, where);
    c.only('_class_name', ['AutoencoderKL']);
    c.knownKeys(AUTOENCODER_KL_KEYS);
    c.only('use_quant_conv', [true]);
    this.latentChannels = c.int('latent_channels', 4, 1);
    this.inChannels = c.int('in_channels', 3, 1);
    this.outChannels = c.int('out_channels', 3, 1);
    this.scalingFactor = c.num('scaling_factor', 0.18215);
    if (this.scalingFactor === 0) throw new ConfigError(`${where}: config option scaling_factor = 0 is not usable`);
    const w = new WeightLoader(rt, store);
    this.w = w;
    this.rt = rt;
    try {
      this.postQuant = c.bool('use_post_quant_conv', true) ? loadConv(w, 'post_quant_conv', this.latentChannels, this.latentChannels, 1) : null;
      this.decoder = new Decoder(w.sub('decoder'), c, this.latentChannels, this.outChannels);
      this.encoder = new Encoder(w.sub('encoder'), c, this.inChannels, this.latentChannels);
      this.quantMean = this.loadQuantMean(rt, store);
      const unused = store.unused();
      if (unused.length) throw new ConfigError(`${where}: ${unused.length} weights are not used by the model built from config.json: ${unused.slice(0, 10).join(', ')}`);
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** Uploads the first latent_channels output rows of quant_conv (1×1 conv, 2·latent → 2·latent). */
  private loadQuantMean(rt: Runtime, store: WeightStore): { weight: Tensor; bias: Tensor } {
    const C = this.latentChannels;
    const rows = (key: string, shape: number[], keep: number): Tensor => {
      const data = store.take(key, shape).slice(0, keep);
      const label = `${key}[:${C}]`;
      const buffer = rt.upload(data, label);
      this.ownBuffers.push(buffer);
      return { buffer, shape: [C, ...shape.slice(1)], label };
    };
    return { weight: rows('quant_conv.weight', [2 * C, 2 * C, 1, 1], C * 2 * C), bias: rows('quant_conv.bias', [2 * C], C) };
  }

  /** image [B, in_channels, H, W] in [-1, 1] → the posterior mean [B, latent_channels, H/f, W/f] (not scaled). */
  encodeMean(g: Graph, image: Tensor): Tensor {
    if (image.shape[1] !== this.inChannels) throw new ConfigError(`AutoencoderKL: image has ${image.shape[1]} channels, the model takes ${this.inChannels}`);
    const moments = this.encoder.forward(g, image);
    const mean = conv2d(g, 'quant_conv', moments, this.quantMean.weight, { bias: this.quantMean.bias });
    g.release(moments);
    return mean;
  }

  /** latents [B, latent_channels, h, w] (already divided by scaling_factor) → image [B, C, h·f, w·f]. */
  decode(g: Graph, latents: Tensor): Tensor {
    if (latents.shape[1] !== this.latentChannels) throw new ConfigError(`AutoencoderKL: latents have ${latents.shape[1]} channels, the model takes ${this.latentChannels}`);
    let z = latents;
    if (this.postQuant) z = conv2d(g, 'post_quant_conv', latents, this.postQuant.weight, { bias: this.postQuant.bias });
    const out = this.decoder.forward(g, z);
    if (z !== latents) g.release(z);
    return out;
  }

  destroy(): void {
    this.w.destroy();
    for (const b of this.ownBuffers) this.rt.destroyBuffer(b);
    this.ownBuffers.length = 0;
  }
}
