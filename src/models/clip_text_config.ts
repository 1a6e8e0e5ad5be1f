// transformers' CLIPTextConfig read and checked (transformers' defaults), for CLIPTextModel and
// CLIPTextModelWithProjection. No GPU code.
import { ConfigReader } from './config.ts';
import { ConfigError } from '../errors.ts';

/**
 * CLIPTextConfig's fields plus PretrainedConfig bookkeeping that real text_encoder/config.json
 * files carry. Dropouts, initializers, projection_dim (CLIPTextModelWithProjection only) and the
 * special token ids (eos_token_id: the pooled output only) do not change last_hidden_state.
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
  /** text_projection's output width (CLIPTextModelWithProjection); null for CLIPTextModel. */
  projectionDim: number | null;
  /** Which row pools (see poolPositions): config eos_token_id (transformers' default 49407). */
  eosTokenId: number;
}

/** CLIPTextModelWithProjection's config: text_projection's width is set. */
export type CLIPTextWithProjectionConfig = CLIPTextConfig & { projectionDim: number };

/**
 * Reads and checks a CLIPTextConfig (transformers' defaults where a field is absent), for
 * CLIPTextModel or, with `withProjection`, CLIPTextModelWithProjection.
 */
export function readClipTextConfig(config: Record<string, unknown>, where: string, withProjection: true): CLIPTextWithProjectionConfig;
export function readClipTextConfig(config: Record<string, unknown>, where?: string, withProjection?: boolean): CLIPTextConfig;
export function readClipTextConfig(config: Record<string, unknown>, where = 'CLIPTextModel', withProjection = false): CLIPTextConfig {
  const c = new ConfigReader(config, where);
  c.knownKeys(KEYS);
  c.only('model_type', ['clip_text_model']);
  if (withProjection) c.only('architectures', [['CLIPTextModelWithProjection']], 'is not supported (this builds CLIPTextModelWithProjection)');
  else c.only('architectures', [['CLIPTextModel']], 'is not supported (this builds CLIPTextModel, without a projection)');
  c.only('hidden_act', ['quick_gelu', 'gelu']);
  // transformers 5 allows a list of end-of-text ids; CLIP's pooling compares with one.
  if (Array.isArray(c.raw('eos_token_id'))) throw new ConfigError(`${where}: config option eos_token_id = ${JSON.stringify(c.raw('eos_token_id'))} (a list) is not supported`);
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
    projectionDim: withProjection ? c.int('projection_dim', 512, 1) : null,
    eosTokenId: c.int('eos_token_id', 49407, 0),
  };
}
