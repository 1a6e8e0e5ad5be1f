// diffusers.models.autoencoder_kl.AutoencoderKL (decode path): post_quant_conv then the Decoder.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d } from '../kernels/gemm.ts';
import type { WeightStore } from '../io/weights.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { loadConv } from './resnet.ts';
import { Decoder } from './vae.ts';

export class AutoencoderKL {
  readonly latentChannels: number;
  readonly outChannels: number;
  readonly scalingFactor: number;
  /** Image pixels per latent pixel along each side. */
  readonly downFactor: number;
  private readonly w: WeightLoader;
  private readonly postQuant: { weight: Tensor; bias: Tensor } | null;
  private readonly decoder: Decoder;

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, where = 'AutoencoderKL') {
    const c = new ConfigReader(config, where);
    c.only('_class_name', ['AutoencoderKL']);
    this.latentChannels = c.get('latent_channels', 4);
    this.outChannels = c.get('out_channels', 3);
    this.scalingFactor = c.get('scaling_factor', 0.18215);
    const channels = c.get<number[]>('block_out_channels', [64]);
    this.downFactor = 2 ** (channels.length - 1);
    if (c.get<boolean>('use_quant_conv', true) === false) throw new ConfigError(`${where}: use_quant_conv = false is not supported`);
    const w = new WeightLoader(rt, store);
    this.w = w;
    this.postQuant = c.get<boolean>('use_post_quant_conv', true) ? loadConv(w, 'post_quant_conv', this.latentChannels, this.latentChannels, 1) : null;
    this.decoder = new Decoder(w.sub('decoder'), c, this.latentChannels, this.outChannels);
    // Only the decode path exists so far: the encoder's weights may be present and unused.
    const unused = store.unused().filter((k) => !k.startsWith('encoder.') && !k.startsWith('quant_conv.'));
    if (unused.length) throw new ConfigError(`${where}: ${unused.length} weights are not used by the model built from config.json: ${unused.slice(0, 10).join(', ')}`);
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
  }
}
