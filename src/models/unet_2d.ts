// diffusers.models.unet_2d.UNet2DModel, built from the config readUNet2DConfig returns.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import type { Tensor } from '../graph/tensor.ts';
import { divideBatch } from '../kernels/elementwise.ts';
import type { ClassEmbedType } from './config_types.ts';
import { TimeEmbedding, type TimestepInput } from './embeddings.ts';
import type { ModelLoader } from './model_loader.ts';
import type { ResolvedPrecision } from './precision.ts';
import { loadConv, loadNorm } from './resnet.ts';
import { runUNetBody } from './unet_body.ts';
import { MidBlock2D, makeDownBlock, makeUpBlock, type DownBlock, type SkipSample, type UpBlock } from './unet_2d_blocks.ts';
import type { UNet2DConfig } from './unet_2d_config.ts';
import { ConfigError } from '../errors.ts';

export class UNet2DModel {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly sampleSize: number;
  readonly precision: ResolvedPrecision;
  /** @internal The loader its weights came from (LoRAs merge into them). */
  readonly w: ModelLoader;
  private readonly time: TimeEmbedding;
  private readonly convIn: ReturnType<typeof loadConv>;
  private readonly down: DownBlock[] = [];
  private readonly mid: MidBlock2D;
  private readonly up: UpBlock[] = [];
  private readonly normOut: ReturnType<typeof loadNorm>;
  private readonly convOut: ReturnType<typeof loadConv>;

  /** Uploads the weights `config` names (every one in the store must be used). */
  constructor(w: ModelLoader, readonly config: UNet2DConfig) {
    const c = config;
    this.w = w;
    this.precision = w.precision;
    this.inChannels = c.inChannels;
    this.outChannels = c.outChannels;
    this.sampleSize = c.sampleSize;
    const { channels, where, act, timeEmbeddingNorm, groups, eps } = c;
    const temb = c.timeEmbedDim;
    this.time = new TimeEmbedding(w, {
      projDim: channels[0]!,
      timeEmbeddingType: c.timeEmbeddingType,
      numTrainTimesteps: c.numTrainTimesteps,
      embedDim: temb,
      flipSinToCos: c.flipSinToCos,
      freqShift: c.freqShift,
      numClassEmbeds: c.numClassEmbeds,
      classEmbedType: c.classEmbedType,
      resnetAct: act,
    });
    this.convIn = loadConv(w, 'conv_in', c.inChannels, channels[0]!, 3);
    const headDim = (ch: number) => c.attentionHeadDim ?? ch;

    let out = channels[0]!;
    c.downTypes.forEach((type, i) => {
      const inCh = out;
      out = channels[i]!;
      const isFinal = i === channels.length - 1;
      this.down.push(
        makeDownBlock(type, w.sub(`down_blocks.${i}`), { numLayers: c.layersPerBlock, inChannels: inCh, outChannels: out, tembChannels: temb, groups, eps, attentionHeadDim: headDim(out), outputScaleFactor: 1, timeEmbeddingNorm, act }, !isFinal, c.downsamplePadding, where, c.downsampleType),
      );
    });
    const last = channels[channels.length - 1]!;
    this.mid = new MidBlock2D(w.sub('mid_block'), { numLayers: 1, inChannels: last, outChannels: last, tembChannels: temb, groups: c.midGroups, eps, attentionHeadDim: headDim(last), outputScaleFactor: c.midBlockScaleFactor, addAttention: c.addAttention, attnGroups: c.attnGroups, timeEmbeddingNorm, act });
    const rev = [...channels].reverse();
    let outCh = rev[0]!;
    c.upTypes.forEach((type, i) => {
      const prev = outCh;
      outCh = rev[i]!;
      const inCh = rev[Math.min(i + 1, rev.length - 1)]!;
      const isFinal = i === channels.length - 1;
      this.up.push(
        makeUpBlock(type, w.sub(`up_blocks.${i}`), { numLayers: c.layersPerBlock + 1, inChannels: inCh, outChannels: outCh, prevOutputChannels: prev, tembChannels: temb, groups, eps, attentionHeadDim: headDim(outCh), outputScaleFactor: 1, timeEmbeddingNorm, act }, !isFinal, where, c.upsampleType),
      );
    });
    this.normOut = loadNorm(w, 'conv_norm_out', channels[0]!);
    this.convOut = loadConv(w, 'conv_out', channels[0]!, c.outChannels, 3);
    w.store.assertAllUsed();
  }

  /** The class embedding kind (diffusers' class_embed_type, 'embedding' for nn.Embedding), or null. */
  get classEmbedType(): ClassEmbedType | null {
    return this.time.classEmbedType;
  }

  get numClasses(): number | null {
    return this.time.numClasses;
  }

  /**
   * Host class labels as the tensor forward() takes in TimestepInput.classLabels: class ids for
   * nn.Embedding, label values for 'timestep', [batch, time_embed_dim] rows for 'identity'.
   */
  uploadClassLabels(rt: Runtime, ids: ArrayLike<number>, batch: number, label = 'class_labels'): Tensor {
    return this.time.uploadClassLabels(rt, ids, batch, label);
  }

  /** Records one forward pass. sample: [B, in_channels, H, W] (f32). Returns [B, out_channels, H, W] (f32). */
  forward(g: Graph, sample: Tensor, t: TimestepInput): Tensor {
    const B = sample.shape[0]!;
    if (sample.shape[1] !== this.inChannels) throw new ConfigError(`UNet2DModel: sample has ${sample.shape[1]} channels, the model takes ${this.inChannels}`);
    const factor = 2 ** (this.down.length - 1);
    if (sample.shape[2]! % factor !== 0 || sample.shape[3]! % factor !== 0) {
      throw new ConfigError(`UNet2DModel: sample size ${sample.shape[2]}x${sample.shape[3]} must be a multiple of ${factor}`);
    }
    const emb = this.time.forward(g, B, t);
    const skip: SkipSample | undefined = this.config.skipPath ? { t: null, owned: false } : undefined;
    const out = runUNetBody(g, {
      where: 'UNet2DModel',
      dtype: this.w.dtype,
      centerInput: this.config.centerInput,
      convIn: this.convIn,
      convInPadding: 1,
      down: this.down.map((d) => (gr: Graph, h: Tensor) => d.forward(gr, h, emb, skip)),
      mid: (gr, h) => this.mid.forward(gr, h, emb),
      up: this.up.map((u) => (gr: Graph, h: Tensor, skips: Tensor[]) => u.forward(gr, h, emb, skips, skip)),
      normOut: this.normOut,
      groups: this.config.groups,
      eps: this.config.eps,
      convOut: this.convOut,
      convOutPadding: 1,
      ...(skip ? { skipSample: skip } : {}),
    }, sample);
    g.release(emb);
    if (this.config.timeEmbeddingType !== 'fourier') return out;
    // time_embedding_type 'fourier': sample / timesteps, per batch element (in f32, as diffusers'
    // f32 timesteps promote it).
    const scaled = divideBatch(g, 'sample/timesteps', out, t.timesteps, t.broadcast);
    g.release(out);
    return scaled;
  }

  destroy(): void {
    this.w.destroy();
  }
}
