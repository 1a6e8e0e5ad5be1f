// diffusers.models.AutoencoderTiny (TAESD): plain 3×3 convs, ReLU and AutoencoderTinyBlocks, no
// norms, no attention. EncoderTiny downsamples with stride-2 convs; DecoderTiny soft-clamps the
// latents with tanh and upsamples with nearest 2× fused into the following conv.
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { inStorage } from '../kernels/cast.ts';
import { affine, tanhClamp } from '../kernels/elementwise.ts';
import { conv2d, type Activation } from '../kernels/gemm.ts';
import type { AutoencoderTinyConfig } from './autoencoder_tiny_config.ts';
import type { WeightLoader } from './loader.ts';
import { assertWeightsUsed, type ModelLoader } from './model_loader.ts';
import type { ResolvedPrecision } from './precision.ts';
import { loadConv } from './resnet.ts';
import { ConfigError } from '../errors.ts';

type Conv = ReturnType<typeof loadConv>;

/** DecoderTiny clamps with a fixed tanh(x / 3) · 3, whatever latent_magnitude says. */
const DECODER_CLAMP = 3;

/** relu(conv(act(conv(act(conv(x))))) + x): act is act_fn, the final fuse always ReLU; the skip is the identity since in = out channels. */
class AutoencoderTinyBlock {
  private readonly convs: Conv[];

  constructor(private readonly w: WeightLoader, channels: number, private readonly act: Activation) {
    this.convs = [0, 2, 4].map((i) => loadConv(w, `conv.${i}`, channels, channels, 3));
  }

  forward(g: Graph, x: Tensor): Tensor {
    const p = this.w.prefix;
    const [c0, c2, c4] = this.convs as [Conv, Conv, Conv];
    const h1 = conv2d(g, `${p}.conv.0`, x, c0.weight, { bias: c0.bias, padding: 1, act: this.act });
    const h2 = conv2d(g, `${p}.conv.2`, h1, c2.weight, { bias: c2.bias, padding: 1, act: this.act });
    g.release(h1);
    const out = conv2d(g, `${p}.conv.4`, h2, c4.weight, { bias: c4.bias, padding: 1, residual: x, relu: true });
    g.release(h2);
    return out;
  }
}

type Layer =
  | { kind: 'block'; block: AutoencoderTinyBlock }
  /** The conv that ends each stage: 2× nearest upsample fused into its read, no bias, no activation. */
  | { kind: 'upconv'; name: string; weight: Tensor };

class DecoderTiny {
  private readonly convIn: Conv;
  private readonly layers: Layer[] = [];
  /** The last conv's weight and its bias minus 0.5, so that scale 2 gives diffusers' x·2 − 1. */
  private readonly convOut: { name: string; weight: Tensor; bias: Tensor };

  /** Every stage `channels` wide, numBlocks[i] blocks in stage i. */
  constructor(private readonly w: WeightLoader, latentChannels: number, outChannels: number, channels: number, numBlocks: number[], private readonly act: Activation) {
    const ch = channels;
    this.convIn = loadConv(w, 'layers.0', latentChannels, ch, 3);
    // layers.1 is act_fn after conv_in; then per stage: blocks, [Upsample], conv.
    let idx = 2;
    numBlocks.forEach((n, i) => {
      for (let b = 0; b < n; b++) this.layers.push({ kind: 'block', block: new AutoencoderTinyBlock(w.sub(`layers.${idx++}`), ch, act) });
      if (i === numBlocks.length - 1) return;
      idx++; // the Upsample module has no weights
      const name = `layers.${idx++}`;
      this.layers.push({ kind: 'upconv', name: w.key(name), weight: w.tensor(`${name}.weight`, [ch, ch, 3, 3]) });
    });
    const name = `layers.${idx}`;
    const weight = w.tensor(`${name}.weight`, [outChannels, ch, 3, 3]);
    const bias = w.derived(`${name}.bias`, [outChannels], (v) => v.map((x) => x - 0.5), `${w.key(`${name}.bias`)} - 0.5`);
    this.convOut = { name: w.key(name), weight, bias };
  }

  forward(g: Graph, z: Tensor): Tensor {
    const p = this.w.prefix;
    const clamped = tanhClamp(g, `${p}.clamp`, z, DECODER_CLAMP);
    let h = conv2d(g, `${p}.layers.0`, clamped, this.convIn.weight, { bias: this.convIn.bias, padding: 1, act: this.act });
    g.release(clamped);
    for (const l of this.layers) {
      const next = l.kind === 'block' ? l.block.forward(g, h) : conv2d(g, l.name, h, l.weight, { padding: 1, upsample: true });
      g.release(h);
      h = next;
    }
    const o = this.convOut;
    const out = conv2d(g, o.name, h, o.weight, { bias: o.bias, padding: 1, scale: 2 });
    g.release(h);
    return out;
  }
}

/** Images in [-1, 1] → latents (unscaled). Stage 0 opens with a biased conv, later ones with a bias-free stride-2 conv. */
class EncoderTiny {
  private readonly convIn: Conv;
  private readonly layers: ({ kind: 'block'; block: AutoencoderTinyBlock } | { kind: 'down'; name: string; weight: Tensor })[] = [];
  private readonly convOut: Conv & { name: string };

  /** Every stage `channels` wide, numBlocks[i] blocks in stage i. */
  constructor(private readonly w: WeightLoader, inChannels: number, latentChannels: number, channels: number, numBlocks: number[], act: Activation) {
    const ch = channels;
    this.convIn = loadConv(w, 'layers.0', inChannels, ch, 3);
    let idx = 1;
    for (let i = 0; i < numBlocks.length; i++) {
      if (i > 0) {
        const name = `layers.${idx++}`;
        this.layers.push({ kind: 'down', name: w.key(name), weight: w.tensor(`${name}.weight`, [ch, ch, 3, 3]) });
      }
      for (let b = 0; b < numBlocks[i]!; b++) this.layers.push({ kind: 'block', block: new AutoencoderTinyBlock(w.sub(`layers.${idx++}`), ch, act) });
    }
    const name = `layers.${idx}`;
    this.convOut = { name: w.key(name), ...loadConv(w, name, ch, latentChannels, 3) };
  }

  forward(g: Graph, image: Tensor): Tensor {
    const p = this.w.prefix;
    // TAESD works on images in [0, 1]; (x + 1) / 2 rounds exactly like x · 0.5 + 0.5.
    const x01 = affine(g, `${p}.to01`, image, 0.5, 0.5);
    let h = conv2d(g, `${p}.layers.0`, x01, this.convIn.weight, { bias: this.convIn.bias, padding: 1 });
    g.release(x01);
    for (const l of this.layers) {
      const next = l.kind === 'block' ? l.block.forward(g, h) : conv2d(g, l.name, h, l.weight, { padding: 1, stride: 2 });
      g.release(h);
      h = next;
    }
    const out = conv2d(g, this.convOut.name, h, this.convOut.weight, { bias: this.convOut.bias, padding: 1 });
    g.release(h);
    return out;
  }
}

export class AutoencoderTiny {
  readonly latentChannels: number;
  readonly outChannels: number;
  readonly inChannels: number;
  readonly scalingFactor: number;
  readonly precision: ResolvedPrecision;
  private readonly w: ModelLoader;
  private readonly decoder: DecoderTiny;
  private readonly encoder: EncoderTiny;

  /** Uploads the weights `config` names (every one in the store must be used). */
  constructor(w: ModelLoader, readonly config: AutoencoderTinyConfig) {
    const c = config;
    this.w = w;
    this.precision = w.precision;
    this.latentChannels = c.latentChannels;
    this.outChannels = c.outChannels;
    this.inChannels = c.inChannels;
    this.scalingFactor = c.scalingFactor;
    this.decoder = new DecoderTiny(w.sub('decoder'), c.latentChannels, c.outChannels, c.decoderChannels, c.decoderBlocks, c.act);
    this.encoder = new EncoderTiny(w.sub('encoder'), c.inChannels, c.latentChannels, c.encoderChannels, c.encoderBlocks, c.act);
    assertWeightsUsed(w.store, c.where);
  }

  /** latents [B, latent_channels, h, w] (unscaled, as decode takes them) → image [B, out_channels, h·2^(stages−1), …] in about [-1, 1]. */
  decode(g: Graph, latents: Tensor): Tensor {
    if (latents.shape[1] !== this.latentChannels) throw new ConfigError(`AutoencoderTiny: latents have ${latents.shape[1]} channels, the model takes ${this.latentChannels}`);
    return inStorage(g, this.w.dtype, latents, (x) => this.decoder.forward(g, x));
  }

  /** image [B, in_channels, H, W] in [-1, 1] → latents [B, latent_channels, H/2^(stages−1), …] (unscaled, as encode returns them). */
  encode(g: Graph, image: Tensor): Tensor {
    if (image.shape[1] !== this.inChannels) throw new ConfigError(`AutoencoderTiny: image has ${image.shape[1]} channels, the model takes ${this.inChannels}`);
    return inStorage(g, this.w.dtype, image, (x) => this.encoder.forward(g, x));
  }

  destroy(): void {
    this.w.destroy();
  }
}
