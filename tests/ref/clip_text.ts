// float64 references for CLIP's text-encoder pieces: the MLP activations and the token + position
// embedding (transformers' CLIPTextEmbeddings).
import { erfRef } from './elementwise.ts';

/** transformers' quick_gelu: x·sigmoid(1.702·x). */
export function quickGeluRef(x: number): number {
  return x / (1 + Math.exp(-1.702 * x));
}

/** transformers' "gelu": the exact erf form. */
export function geluRef(x: number): number {
  return 0.5 * x * (1 + erfRef(x / Math.SQRT2));
}

/** table[min(id, num - 1)] + positions[t] for ids [B, T] (flattened); out [B, T, dim]. */
export function tokenEmbeddingRef(table: ArrayLike<number>, num: number, dim: number, positions: ArrayLike<number>, ids: ArrayLike<number>, T: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let r = 0; r < ids.length; r++) {
    const id = Math.min(ids[r]!, num - 1);
    const t = r % T;
    for (let j = 0; j < dim; j++) out[r * dim + j] = table[id * dim + j]! + positions[t * dim + j]!;
  }
  return out;
}

export interface ClipRefConfig {
  D: number;
  heads: number;
  layers: number;
  inter: number;
  act: 'quick_gelu' | 'gelu';
  eps: number;
}

function layerNormRows(x: Float64Array, rows: number, D: number, g: ArrayLike<number>, b: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < D; j++) mean += x[r * D + j]!;
    mean /= D;
    let v = 0;
    for (let j = 0; j < D; j++) v += (x[r * D + j]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let j = 0; j < D; j++) out[r * D + j] = (x[r * D + j]! - mean) * inv * g[j]! + b[j]!;
  }
  return out;
}

/** y = x Wᵀ + b over rows; W [N, K]. */
function dense(x: Float64Array, rows: number, K: number, w: ArrayLike<number>, b: ArrayLike<number>, N: number): Float64Array {
  const out = new Float64Array(rows * N);
  for (let r = 0; r < rows; r++)
    for (let n = 0; n < N; n++) {
      let s = b[n]!;
      for (let k = 0; k < K; k++) s += x[r * K + k]! * w[n * K + k]!;
      out[r * N + n] = s;
    }
  return out;
}

/**
 * transformers' CLIPTextTransformer in float64, for one sequence of ids (no attention mask, causal
 * self-attention). `w(name)` returns the weight under text_model. Returns the final-normed states
 * and hidden_states[-2], each [T, D].
 */
export function clipTextRef(ids: ArrayLike<number>, w: (name: string) => ArrayLike<number>, c: ClipRefConfig): { last: Float64Array; penultimate: Float64Array } {
  const { D, heads } = c;
  const T = ids.length;
  const d = D / heads;
  const tok = w('embeddings.token_embedding.weight');
  const pos = w('embeddings.position_embedding.weight');
  let x = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let j = 0; j < D; j++) x[t * D + j] = tok[ids[t]! * D + j]! + pos[t * D + j]!;
  let penultimate = x;
  const act = c.act === 'gelu' ? geluRef : quickGeluRef;
  for (let l = 0; l < c.layers; l++) {
    penultimate = x;
    const p = (n: string) => w(`encoder.layers.${l}.${n}`);
    const h = layerNormRows(x, T, D, p('layer_norm1.weight'), p('layer_norm1.bias'), c.eps);
    const q = dense(h, T, D, p('self_attn.q_proj.weight'), p('self_attn.q_proj.bias'), D);
    const k = dense(h, T, D, p('self_attn.k_proj.weight'), p('self_attn.k_proj.bias'), D);
    const v = dense(h, T, D, p('self_attn.v_proj.weight'), p('self_attn.v_proj.bias'), D);
    const a = new Float64Array(T * D);
    const s = new Float64Array(T);
    for (let hh = 0; hh < heads; hh++)
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[i * D + hh * d + e]! * k[j * D + hh * d + e]!;
          s[j] = dot / Math.sqrt(d);
          max = Math.max(max, s[j]!);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += s[j] = Math.exp(s[j]! - max);
        for (let e = 0; e < d; e++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += s[j]! * v[j * D + hh * d + e]!;
          a[i * D + hh * d + e] = acc / sum;
        }
      }
    const o = dense(a, T, D, p('self_attn.out_proj.weight'), p('self_attn.out_proj.bias'), D);
    const x1 = x.map((val, i) => val + o[i]!);
    const h2 = layerNormRows(x1, T, D, p('layer_norm2.weight'), p('layer_norm2.bias'), c.eps);
    const f = dense(h2, T, D, p('mlp.fc1.weight'), p('mlp.fc1.bias'), c.inter).map(act);
    const f2 = dense(f, T, c.inter, p('mlp.fc2.weight'), p('mlp.fc2.bias'), D);
    x = x1.map((val, i) => val + f2[i]!);
  }
  return { last: layerNormRows(x, T, D, w('final_layer_norm.weight'), w('final_layer_norm.bias'), c.eps), penultimate };
}
