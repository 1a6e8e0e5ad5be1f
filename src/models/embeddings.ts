// diffusers.models.embeddings: TimestepEmbedding (linear_1 → SiLU → linear_2) over the
// sinusoidal projection, plus the class-label embedding added to it.
import type { Graph } from '../graph/graph.ts';
import type { DType, Tensor } from '../graph/tensor.ts';
import { embeddingLookup, timestepEmbedding } from '../kernels/embedding.ts';
import { linear } from '../kernels/gemm.ts';
import { ConfigError, type WeightLoader } from './loader.ts';

export interface TimeEmbeddingOptions {
  /** Width of the sinusoidal projection (block_out_channels[0]). */
  projDim: number;
  /** Width of the embedding (time_embed_dim). */
  embedDim: number;
  flipSinToCos: boolean;
  freqShift: number;
  numClassEmbeds: number | null;
}

export interface TimestepInput {
  /** f32 timesteps, one per batch element, or one shared value with broadcast. */
  timesteps: Tensor | GPUBuffer;
  broadcast: boolean;
  /** u32 class ids [B] for class-conditional models. */
  classLabels?: Tensor;
}

export class TimeEmbedding {
  private readonly l1;
  private readonly l2;
  private readonly classTable: Tensor | null;

  private readonly dtype: DType;

  constructor(w: WeightLoader, private readonly o: TimeEmbeddingOptions) {
    this.dtype = w.dtype;
    const t = w.sub('time_embedding');
    this.l1 = { weight: t.tensor('linear_1.weight', [o.embedDim, o.projDim]), bias: t.tensor('linear_1.bias', [o.embedDim]) };
    this.l2 = { weight: t.tensor('linear_2.weight', [o.embedDim, o.embedDim]), bias: t.tensor('linear_2.bias', [o.embedDim]) };
    this.classTable = o.numClassEmbeds !== null ? w.tensor('class_embedding.weight', [o.numClassEmbeds, o.embedDim]) : null;
  }

  get numClasses(): number | null {
    return this.o.numClassEmbeds;
  }

  /**
   * Returns SiLU(emb): every ResNet applies SiLU to the embedding before its time_emb_proj,
   * so it is computed once here, fused into linear_2's write together with the class embedding.
   */
  forward(g: Graph, batch: number, input: TimestepInput): Tensor {
    const proj = timestepEmbedding(g, 'time_proj', input.timesteps, batch, this.o.projDim, {
      flipSinToCos: this.o.flipSinToCos,
      downscaleFreqShift: this.o.freqShift,
      broadcast: input.broadcast,
      dtype: this.dtype,
    });
    const h = linear(g, 'time_embedding.linear_1', proj, this.l1.weight, { bias: this.l1.bias, silu: true });
    g.release(proj);
    let classEmb: Tensor | undefined;
    if (this.classTable) {
      if (!input.classLabels) throw new ConfigError('this model is class-conditional (num_class_embeds is set): class labels are required');
      if (input.classLabels.shape[0] !== batch) throw new ConfigError(`${input.classLabels.shape[0]} class labels for a batch of ${batch}`);
      classEmb = embeddingLookup(g, 'class_embedding', this.classTable, input.classLabels);
    } else if (input.classLabels) {
      throw new ConfigError('class labels were given, but this model has no class embedding (num_class_embeds is null)');
    }
    const act = linear(g, 'time_embedding.linear_2', h, this.l2.weight, { bias: this.l2.bias, residual: classEmb, silu: true });
    g.release(h);
    if (classEmb) g.release(classEmb);
    return act;
  }
}
