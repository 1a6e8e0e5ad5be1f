// transformers' CLIPTextModel (modeling_clip.CLIPTextTransformer), the text encoder of Stable
// Diffusion, loaded from a text_encoder/ folder (config.json + model.safetensors, transformers key
// names): token + position embeddings, pre-LN encoder layers with causal multi-head
// self-attention and a quick_gelu / GELU MLP, then final_layer_norm. SD pipelines call it without
// an attention mask, so padding tokens are encoded like any other. CLIPTextModelWithProjection
// (Stable Diffusion XL's text_encoder_2) adds text_embeds: the final-norm state at each row's
// end-of-text token (transformers' pooler_output) through text_projection, a bias-free Linear.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type Tensor } from '../graph/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { castTo, uploadTensor } from '../kernels/cast.ts';
import { embeddingLookup, tokenEmbedding, tokenTableChunks } from '../kernels/embedding.ts';
import { linear } from '../kernels/gemm.ts';
import { layerNorm } from '../kernels/layer_norm.ts';
import { loadModelFrom, nodeFolderReader, openModelFrom, type FolderReader, type ModelFolder } from '../io/model_folder.ts';
import { readClipTextConfig, type CLIPTextConfig, type CLIPTextWithProjectionConfig } from './clip_text_config.ts';
import type { WeightLoader } from './loader.ts';
import { buildModel, type ModelLoader } from './model_loader.ts';
import type { ModelOptions, ResolvedPrecision } from './precision.ts';
import { ShapeError } from '../errors.ts';

/**
 * The row of each sequence that transformers' CLIPTextTransformer pools (pooler_output, which
 * CLIPTextModelWithProjection projects to text_embeds): with the legacy eos_token_id 2 of older
 * configs (SDXL's among them), the first position of the largest id (torch's argmax; CLIP's
 * <|endoftext|> is the largest id of its vocabulary); otherwise the first position of
 * eos_token_id, or 0 where a row has none (argmax of all zeros).
 */
export function poolPositions(rows: readonly (readonly number[])[], eosTokenId: number): number[] {
  return rows.map((ids) => {
    if (eosTokenId === 2) {
      let best = 0;
      for (let i = 1; i < ids.length; i++) if (ids[i]! > ids[best]!) best = i;
      return best;
    }
    return Math.max(0, ids.indexOf(eosTokenId));
  });
}

interface Linear {
  weight: Tensor;
  bias: Tensor;
}

interface Norm {
  weight: Tensor;
  bias: Tensor;
}

function loadLinear(w: WeightLoader, name: string, out: number, inp: number): Linear {
  return { weight: w.tensor(`${name}.weight`, [out, inp]), bias: w.tensor(`${name}.bias`, [out]) };
}

function loadLayerNorm(w: WeightLoader, name: string, d: number): Norm {
  return { weight: w.tensor(`${name}.weight`, [d]), bias: w.tensor(`${name}.bias`, [d]) };
}

/** CLIPEncoderLayer: x + attn(layer_norm1(x)), then + mlp(layer_norm2(·)). */
class CLIPEncoderLayer {
  private readonly ln1: Norm;
  private readonly q: Linear;
  private readonly k: Linear;
  private readonly v: Linear;
  private readonly out: Linear;
  private readonly ln2: Norm;
  private readonly fc1: Linear;
  private readonly fc2: Linear;

  constructor(private readonly w: WeightLoader, private readonly cfg: CLIPTextConfig) {
    const d = cfg.hiddenSize;
    this.ln1 = loadLayerNorm(w, 'layer_norm1', d);
    this.q = loadLinear(w, 'self_attn.q_proj', d, d);
    this.k = loadLinear(w, 'self_attn.k_proj', d, d);
    this.v = loadLinear(w, 'self_attn.v_proj', d, d);
    this.out = loadLinear(w, 'self_attn.out_proj', d, d);
    this.ln2 = loadLayerNorm(w, 'layer_norm2', d);
    this.fc1 = loadLinear(w, 'mlp.fc1', cfg.intermediateSize, d);
    this.fc2 = loadLinear(w, 'mlp.fc2', d, cfg.intermediateSize);
  }

  /** x: [B, T, D]; returns a new tensor, x stays alive. */
  forward(g: Graph, x: Tensor): Tensor {
    const p = this.w.prefix;
    const { eps, heads, act } = this.cfg;
    const h = layerNorm(g, `${p}.layer_norm1`, x, this.ln1.weight, this.ln1.bias, eps);
    const q = linear(g, `${p}.self_attn.q_proj`, h, this.q.weight, { bias: this.q.bias });
    const k = linear(g, `${p}.self_attn.k_proj`, h, this.k.weight, { bias: this.k.bias });
    const v = linear(g, `${p}.self_attn.v_proj`, h, this.v.weight, { bias: this.v.bias });
    g.release(h);
    // transformers scales q by head_dim^-0.5 before q·kᵀ; the kernel's default scale is the same.
    const a = attention(g, `${p}.self_attn`, q, k, v, heads, { causal: true });
    g.release(q, k, v);
    const x1 = linear(g, `${p}.self_attn.out_proj`, a, this.out.weight, { bias: this.out.bias, residual: x });
    g.release(a);
    const h2 = layerNorm(g, `${p}.layer_norm2`, x1, this.ln2.weight, this.ln2.bias, eps);
    const f = linear(g, `${p}.mlp.fc1`, h2, this.fc1.weight, { bias: this.fc1.bias, quickGelu: act === 'quick_gelu', gelu: act === 'gelu' });
    g.release(h2);
    const x2 = linear(g, `${p}.mlp.fc2`, f, this.fc2.weight, { bias: this.fc2.bias, residual: x1 });
    g.release(f, x1);
    return x2;
  }
}

export interface CLIPTextOutputs {
  /** f32 [B, T, D]: final_layer_norm of the last layer's output (SD 1.x's encoder_hidden_states). */
  lastHiddenState: Tensor;
  /**
   * f32 [B, T, D]: transformers' hidden_states[-2], the input of the last layer, no final norm
   * (clip skip; SDXL's states); hidden_states[-(2 + stateSkip)] with EncodeOptions.stateSkip.
   */
  penultimate: Tensor;
  /** f32 [B, projection_dim]: CLIPTextModelWithProjection's text_embeds, when EncodeOptions.pool is given. */
  textEmbeds?: Tensor;
}

export interface EncodeOptions {
  /** diffusers' (SD 1.x/2.x) clip_skip k: the states k layers before the last, through the final layer norm. */
  clipSkip?: number;
  /**
   * `penultimate` becomes hidden_states[-(2 + stateSkip)] while the whole model still runs (SDXL's
   * clip_skip, whose pooled output stays the last layer's). Needs clipSkip 0.
   */
  stateSkip?: number;
  /**
   * CLIPTextModelWithProjection: u32 [B] indices b·T + (pooled position of row b) into the [B·T]
   * rows of the final-norm states (see poolRows); text_embeds is computed from those rows.
   */
  pool?: Tensor;
}

export interface CLIPTextModelOptions extends ModelOptions {
  /** Build CLIPTextModelWithProjection (its text_projection weight, text_embeds). */
  withProjection?: boolean;
}

export class CLIPTextModel {
  readonly hiddenSize: number;
  readonly maxPositions: number;
  /** Rows of the token table: the config's vocab_size, plus rows added by textual inversion. */
  get vocabSize(): number {
    return this.tokenChunks.reduce((n, c) => n + c.shape[0]!, 0);
  }
  readonly config: CLIPTextConfig;
  readonly precision: ResolvedPrecision;
  /** Row chunks of the token table, each within the plan's binding limit when built (textual inversion appends). */
  readonly tokenChunks: Tensor[];
  /** @internal The loader its weights came from (LoRAs merge into them). */
  readonly w: WeightLoader;
  private readonly positions: Tensor;
  /** text_projection's width (CLIPTextModelWithProjection), else null. */
  readonly projectionDim: number | null;
  private readonly layers: CLIPEncoderLayer[] = [];
  private readonly finalNorm: Norm;
  private readonly projection: Tensor | null = null;

  /** Uploads the weights `config` names (every one in the store must be used); text_projection where config.projectionDim is set. */
  constructor(root: ModelLoader, config: CLIPTextConfig) {
    this.precision = root.precision;
    const cfg = config;
    this.projectionDim = cfg.projectionDim;
    this.config = cfg;
    this.hiddenSize = cfg.hiddenSize;
    this.maxPositions = cfg.maxPositions;
    const d = cfg.hiddenSize;
    const { rt, store } = root;
    this.w = root;
    const w = root.sub('text_model');
    const emb = w.sub('embeddings');
    const key = emb.key('token_embedding.weight');
    const chunks = tokenTableChunks(cfg.vocabSize, d, w.weightDtype, rt.planLimits.binding);
    this.tokenChunks = emb.rows('token_embedding.weight', [cfg.vocabSize, d], chunks, ([s, e]) => (chunks.length > 1 ? `${key}[${s}:${e}]` : key));
    this.positions = emb.tensor('position_embedding.weight', [cfg.maxPositions, d]);
    // Older checkpoints keep the constant 0..P-1 position ids as a buffer; they are implied here.
    if (store.has(emb.key('position_ids'))) store.skip(emb.key('position_ids'), [1, cfg.maxPositions]);
    const enc = w.sub('encoder');
    for (let i = 0; i < cfg.layers; i++) this.layers.push(new CLIPEncoderLayer(enc.sub(`layers.${i}`), cfg));
    this.finalNorm = loadLayerNorm(w, 'final_layer_norm', d);
    // text_projection sits beside text_model, not under it: nn.Linear(hidden, projection_dim, bias=False).
    if (cfg.projectionDim !== null) this.projection = root.tensor('text_projection.weight', [cfg.projectionDim, d]);
    store.assertAllUsed();
  }

  /**
   * poolPositions as the u32 indices EncodeOptions.pool takes: b·T + position for each row of
   * `rows` (token ids [B][T]). The caller uploads them (uploadIds with num = B·T).
   */
  poolRows(rows: readonly (readonly number[])[]): number[] {
    const T = rows[0]?.length ?? 0;
    return poolPositions(rows, this.config.eosTokenId).map((p, b) => b * T + p);
  }

  /**
   * Records the encoder. ids: u32 token ids [B, T], T <= max_position_embeddings (77 for SD; see
   * uploadIds). The outputs are new f32 tensors the caller owns.
   */
  encode(g: Graph, ids: Tensor, opts: EncodeOptions = {}): CLIPTextOutputs {
    const name = this.projection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel';
    // diffusers' clip_skip k: the states k layers before the last, through the final layer norm.
    const skip = opts.clipSkip ?? 0;
    if (!Number.isInteger(skip) || skip < 0 || skip >= this.layers.length) throw new ShapeError(`${name}: clip_skip ${skip} must be an integer in [0, ${this.layers.length - 1}]`);
    const stateSkip = opts.stateSkip ?? 0;
    if (!Number.isInteger(stateSkip) || stateSkip < 0 || stateSkip >= this.layers.length) throw new ShapeError(`${name}: stateSkip ${stateSkip} must be an integer in [0, ${this.layers.length - 1}]`);
    if (stateSkip && skip) throw new ShapeError(`${name}: clipSkip and stateSkip do not go together`);
    if (opts.pool && !this.projection) throw new ShapeError(`${name}: text_embeds needs CLIPTextModelWithProjection (a text_projection)`);
    const layers = this.layers.slice(0, this.layers.length - skip);
    const T = ids.shape[1];
    if (ids.shape.length !== 2 || T === undefined || T < 1 || T > this.maxPositions) {
      throw new ShapeError(`${name}: input_ids ${shapeStr(ids.shape)} should be [B, T] with 1 <= T <= ${this.maxPositions}`);
    }
    const B = ids.shape[0]!;
    if (opts.pool && (opts.pool.shape.length !== 1 || opts.pool.shape[0] !== B)) throw new ShapeError(`${name}: pool indices ${shapeStr(opts.pool.shape)} should be [${B}]`);
    // The embeddings are the first activations: stored as the model's activations, whatever the weights'.
    let x = tokenEmbedding(g, 'text_model.embeddings', this.tokenChunks, ids, this.positions, this.w.dtype);
    // hidden_states[-(2 + stateSkip)] is what enters layer L - 1 - stateSkip (the embeddings for the first).
    const penAt = layers.length - 1 - stateSkip;
    let pen = x;
    for (let i = 0; i < layers.length; i++) {
      const next = layers[i]!.forward(g, x);
      if (i === penAt) pen = x;
      else g.release(x);
      x = next;
    }
    const n = layerNorm(g, 'text_model.final_layer_norm', x, this.finalNorm.weight, this.finalNorm.bias, this.config.eps);
    if (x !== pen) g.release(x);
    let textEmbeds: Tensor | undefined;
    if (opts.pool) {
      // pooler_output: one row of the final-norm states per sequence, then text_projection (no bias).
      const D = this.hiddenSize;
      const rows: Tensor = { ...n, shape: [B * T, D] };
      const pooled = embeddingLookup(g, 'text_model.pooler_output', rows, opts.pool);
      const proj = linear(g, 'text_projection', pooled, this.projection!);
      g.release(pooled);
      textEmbeds = this.toF32(g, 'text_embeds', proj);
    }
    return { lastHiddenState: this.toF32(g, 'last_hidden_state', n), penultimate: this.toF32(g, 'hidden_state_penultimate', pen), ...(textEmbeds ? { textEmbeds } : {}) };
  }

  private toF32(g: Graph, label: string, t: Tensor): Tensor {
    const out = castTo(g, label, t, 'f32');
    if (out !== t) g.release(t);
    return out;
  }

  /**
   * Appends `n` rows (f32 values, [n, hiddenSize]) to the token table: the embeddings of tokens
   * added to the tokenizer (textual inversion), whose ids are the current vocabSize onwards.
   * Stored like the other weights.
   */
  addTokenRows(values: Float32Array, n: number, label: string): number {
    const d = this.hiddenSize;
    if (values.length !== n * d) throw new ShapeError(`${label}: ${values.length} values are not ${n} rows of ${d}`);
    const first = this.vocabSize;
    const t = uploadTensor(this.w.rt, values, [n, d], `${label}[${first}:${first + n}]`, this.w.weightDtype);
    this.w.own(t.buffer);
    this.tokenChunks.push(t);
    return first;
  }

  destroy(): void {
    this.w.destroy();
  }
}

// The full-precision file wins when both exist, as for diffusers folders.
const WEIGHT_FILES = ['model.safetensors', 'model.fp16.safetensors'];

/** config.json and the weight headers of a transformers text_encoder/ folder, streamed (see openModelFrom). */
export function openClipTextFolder(reader: FolderReader, dir: string, variant?: string | null): Promise<ModelFolder> {
  return openModelFrom(reader, dir, { weightName: WEIGHT_FILES[0], kind: 'a text_encoder folder', variant });
}

/** config.json and the weights of a transformers text_encoder/ folder. */
export function readClipTextFolder(reader: FolderReader, dir: string): Promise<ModelFolder> {
  return loadModelFrom(reader, dir, WEIGHT_FILES, 'a text_encoder folder');
}

/** transformers' CLIPTextModelWithProjection: a CLIPTextModel with text_projection (SDXL's text_encoder_2). */
export class CLIPTextModelWithProjection extends CLIPTextModel {
  declare readonly projectionDim: number;

  constructor(root: ModelLoader, config: CLIPTextWithProjectionConfig) {
    super(root, config);
  }
}

/** Loads a text_encoder/ folder: a path on disk (Node) or a FolderReader (a browser's URLs). */
export async function loadClipTextModel(rt: Runtime, source: FolderReader | string, opts: CLIPTextModelOptions = {}): Promise<CLIPTextModel> {
  const reader = typeof source === 'string' ? nodeFolderReader(source) : source;
  const dir = typeof source === 'string' ? source : source.where('');
  const { config, weights } = await openClipTextFolder(reader, dir);
  const model = buildModel(CLIPTextModel, rt, weights, readClipTextConfig(config, dir, opts.withProjection), opts);
  try {
    await rt.assertHealthy();
    await weights.fill();
  } catch (e) {
    model.destroy();
    throw e;
  }
  return model;
}
