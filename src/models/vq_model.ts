// diffusers.models.vq_model.VQModel (decode path): nearest-codebook quantization, post_quant_conv,
// then the same Decoder as AutoencoderKL; under norm_type 'spatial' (MoVQ, Kandinsky) every
// decoder norm is a SpatialNorm conditioned on the quantized latents (before post_quant_conv).
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { inStorage } from '../kernels/cast.ts';
import { conv2d } from '../kernels/gemm.ts';
import { quantize } from '../kernels/quantize.ts';
import { assertWeightsUsed, type ModelLoader } from './model_loader.ts';
import type { ResolvedPrecision } from './precision.ts';
import { loadConv } from './resnet.ts';
import { Decoder } from './vae.ts';
import type { VQModelConfig } from './vq_model_config.ts';
import { ConfigError } from '../errors.ts';

export class VQModel {
  /** Channels decode() takes: the codebook's vector size. */
  readonly embedDim: number;
  readonly latentChannels: number;
  readonly outChannels: number;
  readonly scalingFactor: number;
  readonly precision: ResolvedPrecision;
  private readonly w: ModelLoader;
  private readonly codebook: Tensor;
  private readonly postQuant: { weight: Tensor; bias: Tensor };
  private readonly decoder: Decoder;
  private readonly spatial: boolean;

  /** Uploads the weights of the decode path `config` names (the encoder's may be left over). */
  constructor(w: ModelLoader, readonly config: VQModelConfig) {
    const c = config;
    this.w = w;
    this.precision = w.precision;
    this.embedDim = c.embedDim;
    this.latentChannels = c.latentChannels;
    this.outChannels = c.outChannels;
    this.scalingFactor = c.scalingFactor;
    this.spatial = c.decoder.normType === 'spatial';
    this.codebook = w.tensor('quantize.embedding.weight', [c.numEmbeddings, c.embedDim]);
    this.postQuant = loadConv(w, 'post_quant_conv', c.embedDim, c.latentChannels, 1);
    this.decoder = new Decoder(w.sub('decoder'), c.decoder, c.latentChannels, c.outChannels, c.where);
    // Only the decode path exists so far: the encoder's weights may be present and unused.
    assertWeightsUsed(w.store, c.where, (k) => k.startsWith('encoder.') || k.startsWith('quant_conv.'));
  }

  /** latents [B, vq_embed_dim, h, w] (already divided by scaling_factor) → image [B, C, h·f, w·f]. */
  decode(g: Graph, latents: Tensor): Tensor {
    if (latents.shape.length !== 4 || latents.shape[1] !== this.embedDim) {
      throw new ConfigError(`VQModel: latents [${latents.shape.join(', ')}] should be [B, ${this.embedDim}, h, w]`);
    }
    return inStorage(g, this.w.dtype, latents, (x) => {
      const q = quantize(g, 'quantize', x, this.codebook);
      const z = conv2d(g, 'post_quant_conv', q, this.postQuant.weight, { bias: this.postQuant.bias });
      if (!this.spatial) g.release(q);
      const out = this.decoder.forward(g, z, this.spatial ? q : undefined);
      g.release(z);
      if (this.spatial) g.release(q);
      return out;
    }, ['latents', 'image']);
  }

  destroy(): void {
    this.w.destroy();
  }
}
