// diffusers.models.vq_model.VQModel (decode path): nearest-codebook quantization, post_quant_conv,
// then the same Decoder as AutoencoderKL; under norm_type 'spatial' (MoVQ, Kandinsky) every
// decoder norm is a SpatialNorm conditioned on the quantized latents (before post_quant_conv).
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { conv2d } from '../kernels/gemm.ts';
import { quantize } from '../kernels/quantize.ts';
import type { WeightStore } from '../io/weights.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { inStorage } from '../kernels/cast.ts';
import { resolvePrecision, type ModelOptions, type ResolvedPrecision } from './precision.ts';
import { loadConv } from './resnet.ts';
import { Decoder } from './vae.ts';

/** VQModel's constructor arguments in diffusers 0.25. */
const VQ_MODEL_KEYS = [
  'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block',
  'act_fn', 'latent_channels', 'sample_size', 'num_vq_embeddings', 'norm_num_groups', 'vq_embed_dim',
  'scaling_factor', 'norm_type', 'mid_block_add_attention', 'lookup_from_codebook', 'force_upcast',
];

export class VQModel {
  /** Channels decode() takes: the codebook's vector size. */
  readonly embedDim: number;
  readonly latentChannels: number;
  readonly outChannels: number;
  readonly scalingFactor: number;
  readonly precision: ResolvedPrecision;
  private readonly w: WeightLoader;
  private readonly codebook: Tensor;
  private readonly postQuant: { weight: Tensor; bias: Tensor };
  private readonly decoder: Decoder;
  private readonly spatial: boolean;

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, where = 'VQModel', opts: ModelOptions = {}) {
    this.precision = resolvePrecision(rt.gpu.features, opts.precision);
    const c = new ConfigReader(config, where);
    c.only('_class_name', ['VQModel']);
    c.knownKeys(VQ_MODEL_KEYS);
    c.only('norm_type', ['group', 'spatial']);
    this.spatial = c.raw('norm_type') === 'spatial';
    c.only('lookup_from_codebook', [false]);
    c.bool('force_upcast', false);
    this.latentChannels = c.int('latent_channels', 3, 1);
    this.embedDim = c.int('vq_embed_dim', this.latentChannels, 1);
    this.outChannels = c.int('out_channels', 3, 1);
    const numEmbeddings = c.int('num_vq_embeddings', 256, 1);
    // diffusers sizes the SpatialNorms' 1x1 convs for latent_channels inputs but feeds them the
    // vq_embed_dim quantized latents: the two must agree (diffusers itself fails otherwise).
    if (this.spatial && this.embedDim !== this.latentChannels) throw new ConfigError(`${where}: norm_type 'spatial' needs vq_embed_dim (${this.embedDim}) = latent_channels (${this.latentChannels}): the decoder's SpatialNorms take the quantized latents`);
    this.scalingFactor = c.num('scaling_factor', 0.18215);
    if (this.scalingFactor === 0) throw new ConfigError(`${where}: config option scaling_factor = 0 is not usable`);
    const w = new WeightLoader(rt, store, '', this.precision.dtype);
    this.w = w;
    try {
      this.codebook = w.tensor('quantize.embedding.weight', [numEmbeddings, this.embedDim]);
      this.postQuant = loadConv(w, 'post_quant_conv', this.embedDim, this.latentChannels, 1);
      this.decoder = new Decoder(w.sub('decoder'), c, this.latentChannels, this.outChannels, this.spatial ? 'spatial' : 'group');
      // Only the decode path exists so far: the encoder's weights may be present and unused.
      const unused = store.unused().filter((k) => !k.startsWith('encoder.') && !k.startsWith('quant_conv.'));
      if (unused.length) throw new ConfigError(`${where}: ${unused.length} weights are not used by the model built from config.json: ${unused.slice(0, 10).join(', ')}`);
    } catch (e) {
      w.destroy();
      throw e;
    }
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
