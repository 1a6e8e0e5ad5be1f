// diffusers.models.embeddings: TimestepEmbedding (linear_1 → SiLU → linear_2) over the
// sinusoidal projection (UNet2DModel: or GaussianFourierProjection, or a learned table), plus the class-label embedding added to it (the U-Nets' class_embedding:
// an nn.Embedding table, a second TimestepEmbedding over the labels' sinusoidal projection, or the
// labels themselves, or a TimestepEmbedding / Linear over float class vectors), and the U-Net's
// add_embedding for addition_embed_type 'text_time' (SDXL: pooled text embeds and time ids).
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type DType, type Tensor } from '../graph/tensor.ts';
import { castTo } from '../kernels/cast.ts';
import { activation, add, concatChannels } from '../kernels/elementwise.ts';
import { embeddingLookup, embeddingLookupAt, gaussianFourierProjection, timestepEmbedding, uploadIds } from '../kernels/embedding.ts';
import { linear, type Activation } from '../kernels/gemm.ts';
import type { ClassEmbedType, TimeEmbeddingType } from './config_types.ts';
import type { WeightLoader } from './loader.ts';
import { ConfigError } from '../errors.ts';

export interface TimeEmbeddingOptions {
  /** Width of the sinusoidal projection (block_out_channels[0]). */
  projDim: number;
  /** The time projection (UNet2DModel's time_embedding_type); default 'positional'. */
  timeEmbeddingType?: TimeEmbeddingType;
  /** Rows of the 'learned' time table (num_train_timesteps). */
  numTrainTimesteps?: number | null;
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
  /**
   * addition_embed_type 'text_time' (Stable Diffusion XL): add_time_proj, a sinusoidal projection of
   * width `timeEmbedDim` (addition_time_embed_dim, with flipSinToCos and freqShift) of every time id,
   * and add_embedding, a TimestepEmbedding (SiLU, whatever act_fn is: diffusers builds it with its
   * default) from `inputDim` (projection_class_embeddings_input_dim) over cat(text_embeds, those
   * projections). Null or left out: none.
   */
  textTime?: { timeEmbedDim: number; inputDim: number } | null;
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
  /**
   * addition_embed_type 'text_time' models (SDXL), diffusers' added_cond_kwargs: text_embeds [B, P]
   * (f32; SDXL's pooled text embedding) and time_ids [B, N] (f32; SDXL's original size, crop
   * top-left and target size or aesthetic score), with P + N·addition_time_embed_dim =
   * projection_class_embeddings_input_dim. Both are required by such a model and refused by others.
   */
  textEmbeds?: Tensor;
  timeIds?: Tensor;
}

type LinearParams = { weight: Tensor; bias: Tensor };

/** diffusers' TimestepEmbedding weights (linear_1: proj → embed, linear_2: embed → embed). */
function loadMlp(w: WeightLoader, projDim: number, embedDim: number): { l1: LinearParams; l2: LinearParams } {
  return {
    l1: { weight: w.gemmWeight('linear_1.weight', [embedDim, projDim]), bias: w.tensor('linear_1.bias', [embedDim]) },
    l2: { weight: w.gemmWeight('linear_2.weight', [embedDim, embedDim]), bias: w.tensor('linear_2.bias', [embedDim]) },
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
  /** add_embedding (addition_embed_type 'text_time'), or null. */
  private readonly addMlp: { l1: LinearParams; l2: LinearParams } | null = null;
  /** The class embedding kind, or null for a model without class conditioning. */
  readonly classEmbedType: ClassEmbedType | null;

  private readonly dtype: DType;
  /** 'fourier': GaussianFourierProjection's weight [projDim], kept in f32 on the GPU. */
  private readonly fourierWeight: Tensor | null = null;
  /** 'learned': time_proj.weight [num_train_timesteps, projDim]. */
  private readonly timeTable: Tensor | null = null;

  constructor(w: WeightLoader, private readonly o: TimeEmbeddingOptions) {
    this.dtype = w.dtype;
    const timeType = o.timeEmbeddingType ?? 'positional';
    // timestep_input_dim: the projection's width, linear_1's input (and a 'timestep' class embedding's).
    const projWidth = timeType === 'fourier' ? 2 * o.projDim : o.projDim;
    if (timeType === 'fourier') {
      // diffusers registers the one parameter under two names, W and weight; a checkpoint holds both,
      // and the forward of a from_pretrained model reads weight. It stays f32 whatever the storage type:
      // the arguments (ln t · w · 2π) reach ~1000 rad, where f16 weights would move them by radians.
      const name = w.has('time_proj.weight') || !w.has('time_proj.W') ? 'time_proj.weight' : 'time_proj.W';
      this.fourierWeight = w.tensor(name, [o.projDim], 'f32');
      if (name === 'time_proj.weight' && w.has('time_proj.W')) w.store.skip(w.key('time_proj.W'), [o.projDim]);
    } else if (timeType === 'learned') {
      // readUNet2DConfig requires num_train_timesteps for 'learned'.
      this.timeTable = w.tensor('time_proj.weight', [o.numTrainTimesteps!, o.projDim]);
    }
    ({ l1: this.l1, l2: this.l2 } = loadMlp(w.sub('time_embedding'), projWidth, o.embedDim));
    if (o.condProjDim != null) this.condProj = w.gemmWeight('time_embedding.cond_proj.weight', [projWidth, o.condProjDim]);
    this.classEmbedType = o.classEmbedType ?? (o.numClassEmbeds !== null ? 'embedding' : null);
    if (this.classEmbedType === 'embedding') this.classTable = w.tensor('class_embedding.weight', [o.numClassEmbeds!, o.embedDim]);
    if (this.classEmbedType === 'timestep') this.classMlp = loadMlp(w.sub('class_embedding'), projWidth, o.embedDim);
    if (this.classEmbedType === 'projection' || this.classEmbedType === 'simple_projection') {
      // readUNet2DConditionConfig requires projection_class_embeddings_input_dim for the projections.
      const pin = o.projectionInputDim!;
      if (this.classEmbedType === 'projection') this.classMlp = loadMlp(w.sub('class_embedding'), pin, o.embedDim);
      else this.classLinear = { weight: w.gemmWeight('class_embedding.weight', [o.embedDim, pin]), bias: w.tensor('class_embedding.bias', [o.embedDim]) };
    }
    if (o.textTime) this.addMlp = loadMlp(w.sub('add_embedding'), o.textTime.inputDim, o.embedDim);
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
    if (this.classTable) return { emb: embeddingLookup(g, 'class_embedding', this.classTable, labels, this.dtype), owned: true };
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
      // 'timestep': the labels through the same time_proj as the timesteps.
      const proj = this.project(g, 'class_proj', labels, batch, false);
      const h = linear(g, 'class_embedding.linear_1', proj, this.classMlp.l1.weight, { bias: this.classMlp.l1.bias, act: this.o.mlpAct ?? 'silu' });
      g.release(proj);
      const emb = linear(g, 'class_embedding.linear_2', h, this.classMlp.l2.weight, { bias: this.classMlp.l2.bias });
      g.release(h);
      return { emb, owned: true };
    }
    const emb = castTo(g, 'class_embedding', labels, this.dtype);
    return { emb, owned: emb !== labels };
  }

  /** time_proj of f32 values (timesteps, or 'timestep' class labels): [batch, timestep_input_dim] in the storage type. */
  private project(g: Graph, label: string, values: Tensor | GPUBuffer, batch: number, broadcast: boolean): Tensor {
    if (this.fourierWeight) return gaussianFourierProjection(g, label, values, batch, this.fourierWeight, { broadcast, dtype: this.dtype });
    if (this.timeTable) return embeddingLookupAt(g, label, this.timeTable, values, batch, broadcast, this.dtype);
    return timestepEmbedding(g, label, values, batch, this.o.projDim, {
      flipSinToCos: this.o.flipSinToCos,
      downscaleFreqShift: this.o.freqShift,
      broadcast,
      dtype: this.dtype,
    });
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

  /** Refuses text_embeds / time_ids that are missing, unwanted or misshapen, before anything is recorded. */
  private checkTextTime(batch: number, input: TimestepInput): void {
    const { textEmbeds, timeIds } = input;
    const tt = this.o.textTime;
    if (!tt) {
      if (textEmbeds || timeIds) throw new ConfigError(`${textEmbeds ? 'text_embeds' : 'time_ids'} was given, but this model has no add_embedding (addition_embed_type is null)`);
      return;
    }
    if (!textEmbeds || !timeIds) {
      const missing = [!textEmbeds && 'text_embeds', !timeIds && 'time_ids'].filter(Boolean).join(' and ');
      throw new ConfigError(`this model has addition_embed_type 'text_time' (SDXL): ${missing} ${!textEmbeds && !timeIds ? 'are' : 'is'} required (diffusers' added_cond_kwargs: text_embeds [B, P] and time_ids [B, N] with P + N·${tt.timeEmbedDim} = ${tt.inputDim})`);
    }
    const te = textEmbeds.shape;
    const ti = timeIds.shape;
    if (te.length !== 2 || te[0] !== batch) throw new ConfigError(`text_embeds ${shapeStr(te)} should be [${batch}, P] for a batch of ${batch}`);
    if (ti.length !== 2 || ti[0] !== batch || ti[1]! < 1) throw new ConfigError(`time_ids ${shapeStr(ti)} should be [${batch}, N] for a batch of ${batch}`);
    if (te[1]! + ti[1]! * tt.timeEmbedDim !== tt.inputDim) {
      throw new ConfigError(`text_embeds ${shapeStr(te)} and time_ids ${shapeStr(ti)} give ${te[1]} + ${ti[1]}·${tt.timeEmbedDim} = ${te[1]! + ti[1]! * tt.timeEmbedDim} features, but add_embedding takes ${tt.inputDim} (projection_class_embeddings_input_dim)`);
    }
  }

  /**
   * add_embedding(cat(text_embeds, add_time_proj(time_ids.flatten()).reshape(B, -1))), plus
   * `residual` (the class embedding, when there is one) in linear_2's write.
   */
  private addEmbedding(g: Graph, batch: number, input: TimestepInput, residual: Tensor | undefined): Tensor {
    const tt = this.o.textTime!;
    const m = this.addMlp!;
    const textEmbeds = input.textEmbeds!;
    const n = input.timeIds!.shape[1]!;
    // One sinusoid row per time id, [B·N, D], read as [B, N·D] (diffusers' reshape).
    const proj = timestepEmbedding(g, 'add_time_proj', input.timeIds!, batch * n, tt.timeEmbedDim, {
      flipSinToCos: this.o.flipSinToCos,
      downscaleFreqShift: this.o.freqShift,
      dtype: this.dtype,
    });
    const timeEmbeds: Tensor = { ...proj, shape: [batch, n * tt.timeEmbedDim] };
    const text = castTo(g, 'text_embeds', textEmbeds, this.dtype);
    const cat = concatChannels(g, 'add_embeds', text, timeEmbeds);
    g.release(timeEmbeds);
    if (text !== textEmbeds) g.release(text);
    const h = linear(g, 'add_embedding.linear_1', cat, m.l1.weight, { bias: m.l1.bias, act: 'silu' });
    g.release(cat);
    const aug = linear(g, 'add_embedding.linear_2', h, m.l2.weight, { bias: m.l2.bias, residual });
    g.release(h);
    return aug;
  }

  /**
   * Returns act(emb) (SiLU unless resnetAct says otherwise): every ResNet applies its activation to
   * the embedding before its time_emb_proj, so it is computed once here, fused into linear_2's write together with the class embedding and the 'text_time' add_embedding.
   */
  forward(g: Graph, batch: number, input: TimestepInput): Tensor {
    this.checkTextTime(batch, input);
    const proj = this.project(g, 'time_proj', input.timesteps, batch, input.broadcast);
    const sample = this.condProject(g, batch, proj, input.timestepCond);
    if (sample !== proj) g.release(proj);
    const h = linear(g, 'time_embedding.linear_1', sample, this.l1.weight, { bias: this.l1.bias, act: this.o.mlpAct ?? 'silu' });
    g.release(sample);
    // What diffusers adds to emb before time_embed_act: class_emb, aug_emb ('text_time'), or their sum.
    let added: { emb: Tensor; owned: boolean } | undefined;
    if (this.classEmbedType) {
      if (!input.classLabels) {
        const why = this.classEmbedType === 'embedding' ? 'num_class_embeds is set' : `class_embed_type is '${this.classEmbedType}'`;
        throw new ConfigError(`this model is class-conditional (${why}): class labels are required`);
      }
      added = this.classEmbedding(g, batch, input.classLabels);
    } else if (input.classLabels) {
      throw new ConfigError('class labels were given, but this model has no class embedding (num_class_embeds and class_embed_type are null)');
    }
    // emb + class_emb + aug_emb: the 'text_time' add_embedding, with the class embedding summed into its linear_2.
    if (this.addMlp) {
      const aug = this.addEmbedding(g, batch, input, added?.emb);
      if (added?.owned) g.release(added.emb);
      added = { emb: aug, owned: true };
    }
    const resnetAct = this.o.resnetAct ?? 'silu';
    const postAct = this.o.postAct ?? undefined;
    const embedAct = this.o.embedAct ?? undefined;
    if (!postAct && !embedAct) {
      // emb + class_emb (+ aug_emb), then the activation every ResNet applies, in linear_2's write.
      const act = linear(g, 'time_embedding.linear_2', h, this.l2.weight, { bias: this.l2.bias, residual: added?.emb, act: resnetAct });
      g.release(h);
      if (added?.owned) g.release(added.emb);
      return act;
    }
    // post_act(linear_2(h)) (timestep_post_act) + class_emb (+ aug_emb), then time_embed_act (time_embedding_act_fn),
    // then the ResNets' activation.
    let e = linear(g, 'time_embedding.linear_2', h, this.l2.weight, { bias: this.l2.bias, residual: postAct ? undefined : added?.emb, act: postAct });
    g.release(h);
    const step = (next: Tensor): void => {
      g.release(e);
      e = next;
    };
    if (postAct && added) step(add(g, 'time_embedding+added', e, added.emb));
    if (added?.owned) g.release(added.emb);
    if (embedAct) step(activation(g, 'time_embed_act', e, embedAct));
    step(activation(g, 'time_embedding.resnet_act', e, resnetAct));
    return e;
  }
}
