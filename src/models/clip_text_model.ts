// transformers' CLIPTextModel (modeling_clip.CLIPTextTransformer), the text encoder of Stable
// Diffusion, loaded from a text_encoder/ folder (config.json + model.safetensors, transformers key
// names): token + position embeddings, pre-LN encoder layers with causal multi-head
// self-attention and a quick_gelu / GELU MLP, then final_layer_norm. SD pipelines call it without
// an attention mask, so padding tokens are encoded like any other.
import type { Runtime } from '../gpu/runtime.ts';
import type { Graph } from '../graph/graph.ts';
import { shapeStr, type Tensor } from '../graph/tensor.ts';
import { attention } from '../kernels/attention.ts';
import { castTo } from '../kernels/cast.ts';
import { tokenEmbedding, tokenTableChunks } from '../kernels/embedding.ts';
import { linear, ShapeError } from '../kernels/gemm.ts';
import { layerNorm } from '../kernels/layer_norm.ts';
import { loadModelFrom, nodeFolderReader, type FolderReader, type ModelFolder } from '../io/model_folder.ts';
import { WeightStore } from '../io/weights.ts';
import { ConfigError, ConfigReader, WeightLoader } from './loader.ts';
import { resolvePrecision, type ModelOptions, type ResolvedPrecision } from './precision.ts';

/**
 * CLIPTextConfig's fields plus PretrainedConfig bookkeeping that real text_encoder/config.json
 * files carry. Dropouts, initializers, projection_dim (CLIPTextModelWithProjection only) and the
 * special token ids (pooled output only) do not change last_hidden_state.
 */
const KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'projection_dim', 'num_hidden_layers', 'num_attention_heads',
  'max_position_embeddings', 'hidden_act', 'layer_norm_eps', 'attention_dropout', 'dropout', 'initializer_range',
  'initializer_factor', 'pad_token_id', 'bos_token_id', 'eos_token_id', 'architectures', 'model_type',
  'torch_dtype', 'transformers_version',
];

export type ClipActivation = 'quick_gelu' | 'gelu';

export interface CLIPTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  maxPositions: number;
  act: ClipActivation;
  eps: number;
}

/** Reads and checks a CLIPTextConfig (transformers' defaults where a field is absent). */
export function readClipTextConfig(config: Record<string, unknown>, where: string): CLIPTextConfig {
  const c = new ConfigReader(config, where);
  c.knownKeys(KEYS);
  c.only('model_type', ['clip_text_model']);
  c.only('architectures', [['CLIPTextModel']], 'is not supported (this builds CLIPTextModel, without a projection)');
  c.only('hidden_act', ['quick_gelu', 'gelu']);
  const hiddenSize = c.int('hidden_size', 512, 1);
  const heads = c.int('num_attention_heads', 8, 1);
  if (hiddenSize % heads !== 0) throw new ConfigError(`${where}: config option hidden_size = ${hiddenSize} does not split into num_attention_heads = ${heads} heads`);
  return {
    vocabSize: c.int('vocab_size', 49408, 1),
    hiddenSize,
    intermediateSize: c.int('intermediate_size', 2048, 1),
    layers: c.int('num_hidden_layers', 12, 1),
    heads,
    maxPositions: c.int('max_position_embeddings', 77, 1),
    act: (c.raw('hidden_act') ?? 'quick_gelu') as ClipActivation,
    eps: c.num('layer_norm_eps', 1e-5),
  };
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
  /** f32 [B, T, D]: transformers' hidden_states[-2], the input of the last layer, no final norm (clip skip). */
  penultimate: Tensor;
}

export interface CLIPTextModelOptions extends ModelOptions {
  /** Names the model in errors (the folder, usually). */
  where?: string;
}

export class CLIPTextModel {
  readonly hiddenSize: number;
  readonly maxPositions: number;
  readonly vocabSize: number;
  readonly config: CLIPTextConfig;
  readonly precision: ResolvedPrecision;
  /** Row chunks of the token table, each within the plan's binding limit when built. */
  readonly tokenChunks: readonly Tensor[];
  private readonly w: WeightLoader;
  private readonly positions: Tensor;
  private readonly layers: CLIPEncoderLayer[] = [];
  private readonly finalNorm: Norm;

  constructor(rt: Runtime, store: WeightStore, config: Record<string, unknown>, opts: CLIPTextModelOptions = {}) {
    const where = opts.where ?? 'CLIPTextModel';
    this.precision = resolvePrecision(rt.gpu.features, opts.precision);
    const cfg = readClipTextConfig(config, where);
    this.config = cfg;
    this.hiddenSize = cfg.hiddenSize;
    this.maxPositions = cfg.maxPositions;
    this.vocabSize = cfg.vocabSize;
    const d = cfg.hiddenSize;
    const w = new WeightLoader(rt, store, 'text_model', this.precision.dtype);
    this.w = w;
    try {
      const emb = w.sub('embeddings');
      const key = emb.key('token_embedding.weight');
      const table = store.take(key, [cfg.vocabSize, d]);
      this.tokenChunks = tokenTableChunks(cfg.vocabSize, d, w.dtype, rt.planLimits.binding).map(([s, e], k, all) =>
        w.upload(table.subarray(s * d, e * d), [e - s, d], all.length > 1 ? `${key}[${s}:${e}]` : key),
      );
      this.positions = emb.tensor('position_embedding.weight', [cfg.maxPositions, d]);
      // Older checkpoints keep the constant 0..P-1 position ids as a buffer; they are implied here.
      store.optional(emb.key('position_ids'), [1, cfg.maxPositions]);
      const enc = w.sub('encoder');
      for (let i = 0; i < cfg.layers; i++) this.layers.push(new CLIPEncoderLayer(enc.sub(`layers.${i}`), cfg));
      this.finalNorm = loadLayerNorm(w, 'final_layer_norm', d);
      store.assertAllUsed();
    } catch (e) {
      w.destroy();
      throw e;
    }
  }

  /**
   * Records the encoder. ids: u32 token ids [B, T], T <= max_position_embeddings (77 for SD; see
   * uploadIds). Both outputs are new f32 tensors the caller owns.
   */
  encode(g: Graph, ids: Tensor, opts: { clipSkip?: number } = {}): CLIPTextOutputs {
    // diffusers' clip_skip k: the states k layers before the last, through the final layer norm.
    const skip = opts.clipSkip ?? 0;
    if (!Number.isInteger(skip) || skip < 0 || skip >= this.layers.length) throw new ShapeError(`CLIPTextModel: clip_skip ${skip} must be an integer in [0, ${this.layers.length - 1}]`);
    const layers = this.layers.slice(0, this.layers.length - skip);
    const T = ids.shape[1];
    if (ids.shape.length !== 2 || T === undefined || T < 1 || T > this.maxPositions) {
      throw new ShapeError(`CLIPTextModel: input_ids ${shapeStr(ids.shape)} should be [B, T] with 1 <= T <= ${this.maxPositions}`);
    }
    let x = tokenEmbedding(g, 'text_model.embeddings', this.tokenChunks, ids, this.positions);
    // hidden_states[-2] is what enters the last layer (the embeddings when there is one layer).
    let pen = x;
    for (let i = 0; i < layers.length; i++) {
      const next = layers[i]!.forward(g, x);
      if (i === layers.length - 1) pen = x;
      else g.release(x);
      x = next;
    }
    const n = layerNorm(g, 'text_model.final_layer_norm', x, this.finalNorm.weight, this.finalNorm.bias, this.config.eps);
    if (x !== pen) g.release(x);
    return { lastHiddenState: this.toF32(g, 'last_hidden_state', n), penultimate: this.toF32(g, 'hidden_state_penultimate', pen) };
  }

  private toF32(g: Graph, label: string, t: Tensor): Tensor {
    const out = castTo(g, label, t, 'f32');
    if (out !== t) g.release(t);
    return out;
  }

  destroy(): void {
    this.w.destroy();
  }
}

// The full-precision file wins when both exist, as for diffusers folders.
const WEIGHT_FILES = ['model.safetensors', 'model.fp16.safetensors'];

/** config.json and the weights of a transformers text_encoder/ folder. */
export function readClipTextFolder(reader: FolderReader, dir: string): Promise<ModelFolder> {
  return loadModelFrom(reader, dir, WEIGHT_FILES, 'a text_encoder folder');
}

/** Loads a text_encoder/ folder: a path on disk (Node) or a FolderReader (a browser's URLs). */
export async function loadClipTextModel(rt: Runtime, source: FolderReader | string, opts: CLIPTextModelOptions = {}): Promise<CLIPTextModel> {
  const reader = typeof source === 'string' ? nodeFolderReader(source) : source;
  const dir = typeof source === 'string' ? source : source.where('');
  const { config, weights } = await readClipTextFolder(reader, dir);
  return new CLIPTextModel(rt, weights, config, { where: dir, ...opts });
}
