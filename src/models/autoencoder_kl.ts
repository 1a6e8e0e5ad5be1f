// diffusers.models.autoencoder_kl.AutoencoderKL: encode (Encoder, quant_conv, then the posterior's
// mean or a sample of it) and decode (post_quant_conv, Decoder).
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { inStorage } from '../kernels/cast.ts';
import { conv2d } from '../kernels/gemm.ts';
import { posteriorSample } from '../kernels/posterior_sample.ts';
import { gaussianNoise } from '../kernels/rng.ts';
import type { AutoencoderKLConfig } from './autoencoder_kl_config.ts';
import { assertWeightsUsed, type ModelLoader } from './model_loader.ts';
import type { ResolvedPrecision } from './precision.ts';
import { loadConv } from './resnet.ts';
import { Decoder, Encoder } from './vae.ts';
import { ConfigError } from '../errors.ts';

export class AutoencoderKL {
  readonly latentChannels: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly scalingFactor: number;
  /** Image pixels per latent pixel along each side: 2^(levels − 1), diffusers' vae_scale_factor. */
  readonly scaleFactor: number;
  readonly precision: ResolvedPrecision;
  private readonly w: ModelLoader;
  private readonly postQuant: { weight: Tensor; bias: Tensor } | null;
  private readonly decoder: Decoder;
  private readonly encoder: Encoder;
  /** quant_conv [2·latent, 2·latent, 1, 1]: mean rows then logvar rows. */
  private readonly quant: { weight: Tensor; bias: Tensor };
  /** Views of quant_conv's first latent_channels rows, for the mean alone. */
  private readonly quantMean: { weight: Tensor; bias: Tensor };

  /** Uploads the weights `config` names (every one in the store must be used). */
  constructor(w: ModelLoader, readonly config: AutoencoderKLConfig) {
    const c = config;
    this.w = w;
    this.precision = w.precision;
    this.latentChannels = c.latentChannels;
    this.inChannels = c.inChannels;
    this.outChannels = c.outChannels;
    this.scalingFactor = c.scalingFactor;
    this.scaleFactor = c.scaleFactor;
    this.postQuant = c.usePostQuantConv ? loadConv(w, 'post_quant_conv', c.latentChannels, c.latentChannels, 1) : null;
    this.decoder = new Decoder(w.sub('decoder'), c.decoder, c.latentChannels, c.outChannels, c.where);
    this.encoder = new Encoder(w.sub('encoder'), c.encoder, c.inChannels, c.latentChannels, c.where);
    const C2 = 2 * c.latentChannels;
    this.quant = loadConv(w, 'quant_conv', C2, C2, 1);
    this.quantMean = this.meanRows(this.quant);
    assertWeightsUsed(w.store, c.where);
  }

  /**
   * The mean's rows are the leading latent·2·latent weights and latent biases, so a tensor of that
   * shape over the same buffer (bindings start at offset 0) is the sliced conv without a copy. A
   * quantized weight's leading rows and their scales lie at the same places (src/io/quant.ts), and
   * an interleaved one's leading groups of four rows (the GEMM never stores columns past N).
   */
  private meanRows(q: { weight: Tensor; bias: Tensor }): { weight: Tensor; bias: Tensor } {
    const C = this.latentChannels;
    const quant = q.weight.quant;
    return {
      weight: { buffer: q.weight.buffer, shape: [C, 2 * C, 1, 1], label: `quant_conv.weight[:${C}]`, dtype: q.weight.dtype, ...(quant ? { quant: { ...quant, N: C } } : {}), ...(q.weight.layout ? { layout: q.weight.layout } : {}) },
      bias: { buffer: q.bias.buffer, shape: [C], label: `quant_conv.bias[:${C}]`, dtype: q.bias.dtype },
    };
  }

  private checkImage(image: Tensor): void {
    if (image.shape[1] !== this.inChannels) throw new ConfigError(`AutoencoderKL: image has ${image.shape[1]} channels, the model takes ${this.inChannels}`);
  }

  /** image [B, in_channels, H, W] in [-1, 1] → the posterior mean [B, latent_channels, H/f, W/f] (not scaled). */
  encodeMean(g: Graph, image: Tensor): Tensor {
    this.checkImage(image);
    return inStorage(g, this.precision.dtype, image, (x) => {
      const moments = this.encoder.forward(g, x);
      const mean = conv2d(g, 'quant_conv', moments, this.quantMean.weight, { bias: this.quantMean.bias });
      g.release(moments);
      return mean;
    }, ['image', 'latent-mean']);
  }

  /**
   * image [B, in_channels, H, W] in [-1, 1] → a sample of the posterior, mean + std·ε (diffusers'
   * latent_dist.sample(), what img2img uses by default), not scaled. ε is the Philox noise of
   * `seed` and `stream`, or the given `noise` [B, latent_channels, H/f, W/f].
   */
  encode(g: Graph, image: Tensor, eps: { seed: number; stream?: number } | { noise: Tensor }): Tensor {
    this.checkImage(image);
    // The sample (exp of the log-variance, the noise) is taken in f32, like the latents it becomes.
    const moments = inStorage(g, this.precision.dtype, image, (x) => {
      const h = this.encoder.forward(g, x);
      const stored = conv2d(g, 'quant_conv', h, this.quant.weight, { bias: this.quant.bias });
      g.release(h);
      return stored;
    }, ['image', 'moments']);
    const shape = [moments.shape[0]!, this.latentChannels, ...moments.shape.slice(2)];
    const noise = 'noise' in eps ? eps.noise : gaussianNoise(g, 'posterior-noise', shape, eps.seed, { stream: eps.stream ?? 0 });
    const sample = posteriorSample(g, 'posterior-sample', moments, noise);
    g.release(moments);
    if (!('noise' in eps)) g.release(noise);
    return sample;
  }

  /** latents [B, latent_channels, h, w] (already divided by scaling_factor) → image [B, C, h·f, w·f]. */
  decode(g: Graph, latents: Tensor): Tensor {
    if (latents.shape[1] !== this.latentChannels) throw new ConfigError(`AutoencoderKL: latents have ${latents.shape[1]} channels, the model takes ${this.latentChannels}`);
    return inStorage(g, this.precision.dtype, latents, (x) => {
      const z = this.postQuant ? conv2d(g, 'post_quant_conv', x, this.postQuant.weight, { bias: this.postQuant.bias }) : x;
      const out = this.decoder.forward(g, z);
      if (z !== x) g.release(z);
      return out;
    }, ['latents', 'image']);
  }

  destroy(): void {
    this.w.destroy();
  }
}
