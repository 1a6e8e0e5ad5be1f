// Plain float64 attention: the full score matrix per (batch, head), softmax, times v.

/** q: [B, Tq, C], k and v: [B, Tk, C], head h on channels [h·d, (h+1)·d). Returns [B, Tq, C]. */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  B: number,
  Tq: number,
  Tk: number,
  C: number,
  heads: number,
  opts: { scale?: number; causal?: boolean } = {},
): Float64Array {
  const d = C / heads;
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  const out = new Float64Array(B * Tq * C);
  const s = new Float64Array(Tk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < Tq; i++) {
        const keys = opts.causal ? Math.min(Tk, i + 1) : Tk;
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[(b * Tq + i) * C + h * d + c]! * k[(b * Tk + j) * C + h * d + c]!;
          s[j] = dot * scale;
          max = Math.max(max, s[j]!);
        }
        let sum = 0;
        for (let j = 0; j < keys; j++) {
          s[j] = Math.exp(s[j]! - max);
          sum += s[j]!;
        }
        for (let c = 0; c < d; c++) {
          let acc = 0;
          for (let j = 0; j < keys; j++) acc += s[j]! * v[(b * Tk + j) * C + h * d + c]!;
          out[(b * Tq + i) * C + h * d + c] = acc / sum;
        }
      }
  return out;
}

/** The largest |q·k·scale| over all heads: how hard a case pushes the softmax. */
export function maxLogit(q: ArrayLike<number>, k: ArrayLike<number>, B: number, Tq: number, Tk: number, C: number, heads: number, scale: number): number {
  const d = C / heads;
  let max = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < Tq; i++)
        for (let j = 0; j < Tk; j++) {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[(b * Tq + i) * C + h * d + c]! * k[(b * Tk + j) * C + h * d + c]!;
          max = Math.max(max, Math.abs(dot * scale));
        }
  return max;
}
