// Textual inversion on a loaded Stable Diffusion pipeline, as diffusers' load_textual_inversion:
// the token (and `token_1` … for more vectors) joins each tokenizer, its vectors the matching text
// encoder's table. Everything is checked before anything changes.
import type { Inversion, InversionVectors } from '../io/textual_inversion.ts';
import type { CLIPTextModel } from '../models/clip_text_model.ts';
import type { CLIPTokenizer } from '../text/clip_tokenizer.ts';
import type { SdModel } from './sd_folder.ts';
import { TokenizerError } from '../errors.ts';

/** Adds `inv` under `token`; returns the tokens added. `where` names the file in errors. */
export function addTextualInversion(sd: SdModel, inv: Inversion, token: string, where: string): string[] {
  const pairs: [CLIPTokenizer, CLIPTextModel, InversionVectors, string][] = [[sd.tokenizer, sd.textEncoder, inv.text_encoder, 'text_encoder']];
  if (sd.xl) {
    if (!inv.text_encoder_2) throw new TokenizerError(`${where}: Stable Diffusion XL needs an embedding for each text encoder (clip_l and clip_g); this file has one`);
    pairs.push([sd.xl.tokenizer2, sd.xl.textEncoder2, inv.text_encoder_2, 'text_encoder_2']);
  }
  const n = inv.text_encoder.n;
  const tokens = [token, ...Array.from({ length: n - 1 }, (_, i) => `${token}_${i + 1}`)];
  for (const [tok, te, v, label] of pairs) {
    if (v.dim !== te.hiddenSize) throw new TokenizerError(`${where}: the embedding has ${v.dim} features but ${label} takes ${te.hiddenSize}`);
    if (v.n !== n) throw new TokenizerError(`${where}: clip_l has ${n} vectors but clip_g ${v.n}`);
    if (tok.size !== te.vocabSize) throw new TokenizerError(`${where}: the tokenizer has ${tok.size} ids but ${label}'s table ${te.vocabSize} rows`);
    for (const t of tokens) if (tok.has(t)) throw new TokenizerError(`token ${JSON.stringify(t)} is already in the tokenizer's vocabulary; give the embedding another token`);
  }
  for (const [tok, te, v, label] of pairs) {
    tok.addTokens(tokens);
    te.addTokenRows(v.values, v.n, `${label} ${token}`);
  }
  return tokens;
}
