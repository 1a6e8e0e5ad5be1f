// diffusers.models.autoencoder_kl.AutoencoderKL (decode path): post_quant_conv then the Decoder.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d } from '../kernels/gemm.ts';
import type { WeightStore } from '../io/weights.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { loadConv } from './resnet.ts';
import { Decoder } from './vae.ts';

/** AutoencoderKL's constructor arguments (diffusers 0.25, plus the later quant-conv switches). */
const AUTOENCODER_KL_KEYS = [
  'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'act_fn', 'latent_channels', 'norm_num_groups', 'sample_size', 'scaling_factor', 'force_upcast',
  'use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention',
];

export class AutoencoderKL {
  readonly latentChannels: number;
  readonly outChannels: number;
  readonly scalingFactor: number;
  private readonly w: WeightLoader;
  private readonly postQuant: { weight: Tensor; bias: Tensor } | null;
  private readonly decoder: Decoder;

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, where = 'AutoencoderKL') {
    const c = new ConfigReader(config, where);
    c.only('_class_name', ['AutoencoderKL']);
    c.knownKeys(AUTOENCODER_KL_KEYS);
    c.only('use_quant_conv', [true]);
    this.latentChannels = c.int('latent_channels', 4, 1);
    this.outChannels = c.int('out_channels', 3, 1);
    this.scalingFactor = c.num('scaling_factor', 0.18215);
    if (this.scalingFactor === 0) throw new ConfigError(`${where}: config option scaling_factor = 0 is not usable`);
    const w = new WeightLoader(rt, store);
    this.w = w;
    try {
      this.postQuant = c.bool('use_post_quant_conv', true) ? loadConv(w, 'post_quant_conv', this.latentChannels, this.latentChannels, 1) : null;
      this.decoder = new Decoder(w.sub('decoder'), c, this.latentChannels, this.outChannels);
      // Only the decode path exists so far: the encoder's weights may be present and unused.
      const unused = store.unused().filter((k) => !k.startsWith('encoder.') && !k.startsWith('quant_conv.'));
      if (unused.length) throw new ConfigError(`${where}: ${unused.length} weights are not used by the model built from config.json: ${unused.slice(0, 10).join(', ')}`);
    } catch (e) {
      w.destroy();
      throw e;
    }
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
