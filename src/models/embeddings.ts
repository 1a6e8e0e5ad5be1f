// diffusers.models.embeddings: TimestepEmbedding (linear_1 → SiLU → linear_2) over the
// sinusoidal projection, plus the class-label embedding added to it (the U-Nets' class_embedding:
// an nn.Embedding table, a second TimestepEmbedding over the labels' sinusoidal projection, or the
// labels themselves, or a TimestepEmbedding / Linear over float class vectors).
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type DType, type Tensor } from '../graph/tensor.ts';
import { castTo } from '../kernels/cast.ts';
import { activation, add } from '../kernels/elementwise.ts';
import { embeddingLookup, timestepEmbedding, uploadIds } from '../kernels/embedding.ts';
import { linear, type Activation } from '../kernels/gemm.ts';
import { ConfigError, type WeightLoader } from './loader.ts';

/**
 * How class labels become an embedding (diffusers' class_embed_type): 'embedding' is nn.Embedding
 * (class_embed_type null with num_class_embeds set), 'timestep' sends the labels through the same
 * sinusoidal projection as the timesteps and then a TimestepEmbedding of its own, 'identity' adds
 * the labels, [B, time_embed_dim], as they are; 'projection' sends float class vectors
 * [B, projection_class_embeddings_input_dim] through a TimestepEmbedding (SiLU, whatever act_fn is:
 * diffusers builds it with its default), 'simple_projection' through one Linear.
 */
export type ClassEmbedType = 'embedding' | 'timestep' | 'identity' | 'projection' | 'simple_projection';

export interface TimeEmbeddingOptions {
  /** Width of the sinusoidal projection (block_out_channels[0]). */
  projDim: number;
  /** Width of the embedding (time_embed_dim). */
  embedDim: number;
  flipSinToCos: boolean;
  freqShift: number;
  /** nn.Embedding class table rows (class_embed_type null), or null. Ignored when classEmbedType is 'timestep' or 'identity'. */
  numClassEmbeds: number | null;
  /** 'timestep', 'identity', 'projection' or 'simple_projection' (diffusers' class_embed_type); left out, numClassEmbeds decides. */
  classEmbedType?: Exclude<ClassEmbedType, 'embedding'> | null;
  /** projection_class_embeddings_input_dim: the class vectors' width for 'projection' / 'simple_projection'. */
  projectionInputDim?: number | null;
  /** timestep_post_act: TimestepEmbedding's post_act after linear_2 (the time embedding's only), or none. */
  postAct?: Activation | null;
  /** time_embedding_act_fn: applied once to emb (+ class_emb) before the blocks, or none. */
  embedAct?: Activation | null;
  /** time_cond_proj_dim: width of timestep_cond, projected by time_embedding.cond_proj (no bias); null or left out: none. */
  condProjDim?: number | null;
  /**
   * The activation inside TimestepEmbedding (between linear_1 and linear_2), of the time embedding
   * and of a 'timestep' class embedding: act_fn in UNet2DConditionModel, SiLU in UNet2DModel. Default SiLU.
   */
  mlpAct?: Activation;
  /** The activation every ResNet applies to the embedding before time_emb_proj (resnet_act_fn). Default SiLU. */
  resnetAct?: Activation;
}

export interface TimestepInput {
  /** f32 timesteps, one per batch element, or one shared value with broadcast. */
  timesteps: Tensor | GPUBuffer;
  broadcast: boolean;
  /**
   * Class labels for class-conditional models, one per batch element: u32 class ids [B] for an
   * nn.Embedding class embedding, f32 values [B] for class_embed_type 'timestep', f32 embeddings
   * [B, time_embed_dim] for 'identity' (uploadClassLabels makes the right one from host values).
   */
  classLabels?: Tensor;
  /**
   * timestep_cond [B, time_cond_proj_dim] (f32) for models with time_cond_proj_dim (LCM-distilled
   * U-Nets, which get the guidance scale's embedding here): cond_proj(timestep_cond) is added to the
   * sinusoidal projection before linear_1.
   */
  timestepCond?: Tensor;
}

type LinearParams = { weight: Tensor; bias: Tensor };

/** diffusers' TimestepEmbedding weights (linear_1: proj → embed, linear_2: embed → embed). */
function loadMlp(w: WeightLoader, projDim: number, embedDim: number): { l1: LinearParams; l2: LinearParams } {
  return {
    l1: { weight: w.tensor('linear_1.weight', [embedDim, projDim]), bias: w.tensor('linear_1.bias', [embedDim]) },
    l2: { weight: w.tensor('linear_2.weight', [embedDim, embedDim]), bias: w.tensor('linear_2.bias', [embedDim]) },
  };
}

export class TimeEmbedding {
  private readonly l1;
  private readonly l2;
  private readonly classTable: Tensor | null = null;
  private readonly classMlp: { l1: LinearParams; l2: LinearParams } | null = null;
  /** 'simple_projection': class_embedding, a Linear [embedDim, projection_class_embeddings_input_dim]. */
  private readonly classLinear: LinearParams | null = null;
  /** time_embedding.cond_proj.weight [projDim, time_cond_proj_dim], or null. */
  private readonly condProj: Tensor | null = null;
  /** The class embedding kind, or null for a model without class conditioning. */
  readonly classEmbedType: ClassEmbedType | null;

  private readonly dtype: DType;

  constructor(w: WeightLoader, private readonly o: TimeEmbeddingOptions) {
    this.dtype = w.dtype;
    ({ l1: this.l1, l2: this.l2 } = loadMlp(w.sub('time_embedding'), o.projDim, o.embedDim));
    if (o.condProjDim != null) this.condProj = w.tensor('time_embedding.cond_proj.weight', [o.projDim, o.condProjDim]);
    this.classEmbedType = o.classEmbedType ?? (o.numClassEmbeds !== null ? 'embedding' : null);
    if (this.classEmbedType === 'embedding') this.classTable = w.tensor('class_embedding.weight', [o.numClassEmbeds!, o.embedDim]);
    if (this.classEmbedType === 'timestep') this.classMlp = loadMlp(w.sub('class_embedding'), o.projDim, o.embedDim);
    if (this.classEmbedType === 'projection' || this.classEmbedType === 'simple_projection') {
      const pin = o.projectionInputDim;
      if (pin == null) throw new ConfigError(`class_embed_type '${this.classEmbedType}' requires projection_class_embeddings_input_dim`);
      if (this.classEmbedType === 'projection') this.classMlp = loadMlp(w.sub('class_embedding'), pin, o.embedDim);
      else this.classLinear = { weight: w.tensor('class_embedding.weight', [o.embedDim, pin]), bias: w.tensor('class_embedding.bias', [o.embedDim]) };
    }
  }

  /** The width of one class label row: time_embed_dim for 'identity', projection_class_embeddings_input_dim for the projections; null for scalar labels. */
  private get labelWidth(): number | null {
    if (this.classEmbedType === 'identity') return this.o.embedDim;
    if (this.classEmbedType === 'projection' || this.classEmbedType === 'simple_projection') return this.o.projectionInputDim!;
    return null;
  }

  /** Rows of the nn.Embedding class table; null for other class embeddings and none. */
  get numClasses(): number | null {
    return this.classEmbedType === 'embedding' ? this.o.numClassEmbeds : null;
  }

  /**
   * Host class labels as the tensor forward() takes: ids (checked against the table) for
   * 'embedding', f32 values for 'timestep', f32 [batch, embedDim] rows for 'identity', f32
   * [batch, projection_class_embeddings_input_dim] rows for 'projection' / 'simple_projection'.
   */
  uploadClassLabels(rt: Runtime, values: ArrayLike<number>, batch: number, label = 'class_labels'): Tensor {
    switch (this.classEmbedType) {
      case 'embedding':
        if (values.length !== batch) throw new ConfigError(`${values.length} class labels for a batch of ${batch}`);
        return uploadIds(rt, values, this.o.numClassEmbeds!, label);
      case 'timestep':
        if (values.length !== batch) throw new ConfigError(`${values.length} class labels for a batch of ${batch}`);
        return { buffer: rt.upload(Float32Array.from(values), label), shape: [batch], label };
      case 'identity':
      case 'projection':
      case 'simple_projection': {
        const width = this.labelWidth!;
        if (values.length !== batch * width) throw new ConfigError(`class_embed_type '${this.classEmbedType}' takes [${batch}, ${width}] class labels, got ${values.length} values`);
        return { buffer: rt.upload(Float32Array.from(values), label), shape: [batch, width], label };
      }
      default:
        throw new ConfigError('class labels were given, but this model has no class embedding (num_class_embeds and class_embed_type are null)');
    }
  }

  /** The class embedding [batch, embedDim] in the storage type, and whether it is a new tensor to release. */
  private classEmbedding(g: Graph, batch: number, labels: Tensor): { emb: Tensor; owned: boolean } {
    const width = this.labelWidth;
    const expect = width !== null ? [batch, width] : [batch];
    if (shapeStr(labels.shape) !== shapeStr(expect)) throw new ConfigError(`class labels ${shapeStr(labels.shape)} should be ${shapeStr(expect)} for a batch of ${batch}`);
    if (this.classTable) return { emb: embeddingLookup(g, 'class_embedding', this.classTable, labels), owned: true };
    if (this.classEmbedType === 'projection' || this.classEmbedType === 'simple_projection') {
      const x = castTo(g, 'class_labels', labels, this.dtype);
      let emb: Tensor;
      if (this.classLinear) {
        emb = linear(g, 'class_embedding', x, this.classLinear.weight, { bias: this.classLinear.bias });
      } else {
        const m = this.classMlp!;
        const h = linear(g, 'class_embedding.linear_1', x, m.l1.weight, { bias: m.l1.bias, act: 'silu' });
        emb = linear(g, 'class_embedding.linear_2', h, m.l2.weight, { bias: m.l2.bias });
        g.release(h);
      }
      if (x !== labels) g.release(x);
      return { emb, owned: true };
    }
    if (this.classMlp) {
      const proj = timestepEmbedding(g, 'class_proj', labels, batch, this.o.projDim, {
        flipSinToCos: this.o.flipSinToCos,
        downscaleFreqShift: this.o.freqShift,
        dtype: this.dtype,
      });
      const h = linear(g, 'class_embedding.linear_1', proj, this.classMlp.l1.weight, { bias: this.classMlp.l1.bias, act: this.o.mlpAct ?? 'silu' });
      g.release(proj);
      const emb = linear(g, 'class_embedding.linear_2', h, this.classMlp.l2.weight, { bias: this.classMlp.l2.bias });
      g.release(h);
      return { emb, owned: true };
    }
    const emb = castTo(g, 'class_embedding', labels, this.dtype);
    return { emb, owned: emb !== labels };
  }

  /**
   * proj + cond_proj(timestep_cond) for time_cond_proj_dim models, else proj. Like diffusers'
   * TimestepEmbedding, a model with cond_proj given no timestep_cond just skips the projection
   * (diffusers does not require it either); a timestep_cond for a model without cond_proj is an error.
   */
  private condProject(g: Graph, batch: number, proj: Tensor, cond: Tensor | undefined): Tensor {
    if (!cond) return proj;
    if (!this.condProj) throw new ConfigError('timestep_cond was given, but this model has no time_embedding.cond_proj (time_cond_proj_dim is null)');
    const dim = this.o.condProjDim!;
    if (shapeStr(cond.shape) !== shapeStr([batch, dim])) throw new ConfigError(`timestep_cond ${shapeStr(cond.shape)} should be ${shapeStr([batch, dim])} for a batch of ${batch}`);
    const c = castTo(g, 'timestep_cond', cond, this.dtype);
    const out = linear(g, 'time_embedding.cond_proj', c, this.condProj, { residual: proj });
    if (c !== cond) g.release(c);
    return out;
  }

  /**
   * Returns act(emb) (SiLU unless resnetAct says otherwise): every ResNet applies its activation to
   * the embedding before its time_emb_proj, so it is computed once here, fused into linear_2's write together with the class embedding.
   */
  forward(g: Graph, batch: number, input: TimestepInput): Tensor {
    const proj = timestepEmbedding(g, 'time_proj', input.timesteps, batch, this.o.projDim, {
      flipSinToCos: this.o.flipSinToCos,
      downscaleFreqShift: this.o.freqShift,
      broadcast: input.broadcast,
      dtype: this.dtype,
    });
    const sample = this.condProject(g, batch, proj, input.timestepCond);
    if (sample !== proj) g.release(proj);
    const h = linear(g, 'time_embedding.linear_1', sample, this.l1.weight, { bias: this.l1.bias, act: this.o.mlpAct ?? 'silu' });
    g.release(sample);
    let classEmb: { emb: Tensor; owned: boolean } | undefined;
    if (this.classEmbedType) {
      if (!input.classLabels) {
        const why = this.classEmbedType === 'embedding' ? 'num_class_embeds is set' : `class_embed_type is '${this.classEmbedType}'`;
        throw new ConfigError(`this model is class-conditional (${why}): class labels are required`);
      }
      classEmb = this.classEmbedding(g, batch, input.classLabels);
    } else if (input.classLabels) {
      throw new ConfigError('class labels were given, but this model has no class embedding (num_class_embeds and class_embed_type are null)');
    }
    const resnetAct = this.o.resnetAct ?? 'silu';
    const postAct = this.o.postAct ?? undefined;
    const embedAct = this.o.embedAct ?? undefined;
    if (!postAct && !embedAct) {
      // emb + class_emb, then the activation every ResNet applies, in linear_2's write.
      const act = linear(g, 'time_embedding.linear_2', h, this.l2.weight, { bias: this.l2.bias, residual: classEmb?.emb, act: resnetAct });
      g.release(h);
      if (classEmb?.owned) g.release(classEmb.emb);
      return act;
    }
    // post_act(linear_2(h)) (timestep_post_act) + class_emb, then time_embed_act (time_embedding_act_fn),
    // then the ResNets' activation.
    let e = linear(g, 'time_embedding.linear_2', h, this.l2.weight, { bias: this.l2.bias, residual: postAct ? undefined : classEmb?.emb, act: postAct });
    g.release(h);
    const step = (next: Tensor): void => {
      g.release(e);
      e = next;
    };
    if (postAct && classEmb) step(add(g, 'time_embedding+class_embedding', e, classEmb.emb));
    if (classEmb?.owned) g.release(classEmb.emb);
    if (embedAct) step(activation(g, 'time_embed_act', e, embedAct));
    step(activation(g, 'time_embedding.resnet_act', e, resnetAct));
    return e;
  }
}
