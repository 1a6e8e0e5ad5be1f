// CLIP's byte-level BPE tokenizer, as transformers' CLIPTokenizer runs it for Stable Diffusion:
// special tokens split out of the raw prompt, openai/CLIP's cleanup (ftfy, html.unescape,
// whitespace collapsed, lower-cased: clean_text.ts), CLIP's pre-tokenizer regex, byte symbols with
// `</w>` on the last, merges by rank, then [bos] + ids[:max-2] + [eos] padded to model_max_length
// with the folder's pad token.
import type { FolderReader } from '../io/model_folder.ts';
import { byteSymbols } from './byte_symbols.ts';
import { cleanText, htmlCutoff, PY_WHITESPACE } from './clean_text.ts';
import { asObject, CONFIG_FILE, MERGES_FILE, parseJson, parseMerges, parseVocab, resolveSpecialTokens, SPECIAL_TOKENS_FILE, VOCAB_FILE, type Json } from './tokenizer_files.ts';
import { TokenizerError } from '../errors.ts';
export { TokenizerError } from '../errors.ts';


// Digits come one at a time, punctuation runs stay whole, whitespace is dropped. The two special
// strings are kept because a lower-cased "<|ENDOFTEXT|>" still reaches this regex.
const PRETOKENIZE = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${PY_WHITESPACE}\\p{L}\\p{N}]+`,
  'giu',
);
const END_OF_WORD = '</w>';
const CLIP_SPECIALS = ['<|startoftext|>', '<|endoftext|>'];
// Prompts are unbounded user input; past this many distinct words the cache starts over.
const CACHE_LIMIT = 100_000;

export interface TokenizerFiles {
  /** vocab.json: its text or the parsed object. */
  vocab: object | string;
  /** merges.txt's text. */
  merges: string;
  /** tokenizer_config.json, parsed. */
  config?: object;
  /** special_tokens_map.json, parsed. */
  specialTokens?: object;
}

export interface Encoded {
  /** Exactly maxLength ids: [bos] + ids[:maxLength-2] + [eos], then the pad id. */
  ids: number[];
  /** Whether the prompt had more than maxLength-2 tokens. */
  truncated: boolean;
}

interface Word {
  pieces: string[];
  ids: number[];
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class CLIPTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, Word>();
  /** Special strings matched in the raw prompt (longest first), and their ids. */
  private readonly specials: Map<string, number>;
  private specialSplit: RegExp | null;
  /** Tokens added after loading (textual inversion), in order, with their ids. */
  private readonly added = new Map<string, number>();

  /** Reads vocab.json, merges.txt and, where present, tokenizer_config.json and special_tokens_map.json. */
  static async load(reader: FolderReader): Promise<CLIPTokenizer> {
    const text = async (name: string, required: boolean): Promise<string | undefined> => {
      const bytes = await reader.read(name);
      if (!bytes) {
        if (required) throw new TokenizerError(`${reader.where(name)}: not found (a CLIP tokenizer folder needs ${VOCAB_FILE} and ${MERGES_FILE})`);
        return undefined;
      }
      return new TextDecoder().decode(bytes);
    };
    const json = async (name: string): Promise<Json | undefined> => {
      const t = await text(name, false);
      return t === undefined ? undefined : asObject(parseJson(t, reader.where(name)), reader.where(name));
    };
    const vocab = (await text(VOCAB_FILE, true))!;
    const merges = (await text(MERGES_FILE, true))!;
    return new CLIPTokenizer(
      { vocab, merges, config: await json(CONFIG_FILE), specialTokens: await json(SPECIAL_TOKENS_FILE) },
      (name) => reader.where(name),
    );
  }

  static fromFiles(files: TokenizerFiles): CLIPTokenizer {
    return new CLIPTokenizer(files, (name) => name);
  }

  private constructor(files: TokenizerFiles, where: (name: string) => string) {
    this.vocab = parseVocab(files.vocab, where(VOCAB_FILE));
    this.ranks = parseMerges(files.merges, this.vocab, where(MERGES_FILE), where(VOCAB_FILE));
    const config = files.config === undefined ? undefined : asObject(files.config, where(CONFIG_FILE));
    const map = files.specialTokens === undefined ? undefined : asObject(files.specialTokens, where(SPECIAL_TOKENS_FILE));
    const special = resolveSpecialTokens(config, map, where(CONFIG_FILE), where(SPECIAL_TOKENS_FILE));
    this.maxLength = special.maxLength;

    const idOf = (token: string, role: string): number => {
      const id = special.added.get(token) ?? this.vocab.get(token);
      if (id === undefined) {
        throw new TokenizerError(`${role} ${JSON.stringify(token)} (from ${where(CONFIG_FILE)} / ${where(SPECIAL_TOKENS_FILE)}) is not in ${where(VOCAB_FILE)}`);
      }
      return id;
    };
    this.bosId = idOf(special.bos, 'bos_token');
    this.eosId = idOf(special.eos, 'eos_token');
    this.unkId = idOf(special.unk, 'unk_token');
    this.padId = idOf(special.pad, 'pad_token');

    // transformers splits every special token out of the raw text before cleanup, so with an
    // OpenCLIP-style pad token '!' each '!' in a prompt becomes id 0 (diffusers issue #4153).
    this.specials = new Map(special.added);
    for (const t of [special.bos, special.eos, special.unk, special.pad]) this.specials.set(t, idOf(t, 'special token'));
    this.specialSplit = this.splitter();
    this.seedCache();
  }

  private splitter(): RegExp | null {
    const strings = [...this.specials.keys()].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
    return strings.length ? new RegExp(`(${strings.map(escapeRegExp).join('|')})`, 'u') : null;
  }

  /** The number of ids in use: the vocabulary, the special tokens and the added ones (transformers' len(tokenizer)). */
  get size(): number {
    let top = -1;
    for (const id of this.vocab.values()) top = Math.max(top, id);
    for (const id of this.specials.values()) top = Math.max(top, id);
    return top + 1;
  }

  /** Whether `token` is already a vocabulary entry or a special or added token. */
  has(token: string): boolean {
    return this.vocab.has(token) || this.specials.has(token);
  }

  /**
   * Adds tokens matched whole in the raw prompt, as transformers' add_tokens does (for textual
   * inversion): ids from size() on, in order. Each must be new.
   */
  addTokens(tokens: readonly string[]): number[] {
    const first = this.size;
    tokens.forEach((t, i) => {
      if (t.length === 0) throw new TokenizerError('an added token cannot be empty');
      if (this.has(t) || tokens.indexOf(t) !== i) throw new TokenizerError(`token ${JSON.stringify(t)} is already in the tokenizer's vocabulary; give the embedding another token`);
    });
    const ids = tokens.map((t, i) => first + i);
    tokens.forEach((t, i) => {
      this.specials.set(t, ids[i]!);
      this.added.set(t, ids[i]!);
    });
    this.specialSplit = this.splitter();
    return ids;
  }

  /**
   * diffusers' maybe_convert_prompt: each added token the prompt holds that has multi-vector
   * companions (`tok_1`, `tok_2`, ...) is replaced, everywhere in the text, by `tok tok_1 tok_2 ...`.
   */
  convertPrompt(prompt: string): string {
    if (this.added.size === 0) return prompt;
    let out = prompt;
    const seen = new Set(this.words(prompt, false).flatMap((w) => w.pieces));
    for (const token of seen) {
      if (!this.added.has(token)) continue;
      let replacement = token;
      for (let i = 1; this.added.has(`${token}_${i}`); i++) replacement += ` ${token}_${i}`;
      out = out.split(token).join(replacement);
    }
    return out;
  }

  private seedCache(): void {
    for (const s of CLIP_SPECIALS) this.cache.set(s, { pieces: [s], ids: [this.vocab.get(s) ?? this.unkId] });
  }

  /** The BPE token strings of a prompt, before truncation (special tokens in it included). */
  pieces(prompt: string): string[] {
    return this.words(prompt).flatMap((w) => w.pieces);
  }

  /** The token ids of a prompt, before BOS/EOS and truncation. */
  tokenIds(prompt: string): number[] {
    return this.words(prompt).flatMap((w) => w.ids);
  }

  encode(prompt: string): Encoded {
    const ids = this.tokenIds(prompt);
    const room = this.maxLength - 2;
    const out = [this.bosId, ...ids.slice(0, room), this.eosId];
    while (out.length < this.maxLength) out.push(this.padId);
    return { ids: out, truncated: ids.length > room };
  }

  private words(raw: string, convert = true): Word[] {
    const prompt = convert ? this.convertPrompt(raw) : raw;
    const segments = this.specialSplit ? prompt.split(this.specialSplit) : [prompt];
    const out: Word[] = [];
    // ftfy's "skip HTML unescaping from the first line with '<'" is about the whole prompt.
    const htmlUntil = htmlCutoff(prompt);
    // split() with a capturing group alternates text and the special tokens between it.
    for (let i = 0, at = 0; i < segments.length; at += segments[i]!.length, i++) {
      const seg = segments[i]!;
      if (i % 2 === 1) {
        out.push({ pieces: [seg], ids: [this.specials.get(seg)!] });
        continue;
      }
      for (const m of cleanText(seg, htmlUntil - at).matchAll(PRETOKENIZE)) out.push(this.word(m[0]));
    }
    return out;
  }

  private word(piece: string): Word {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    const pieces = this.bpe(byteSymbols(piece));
    const w = { pieces, ids: pieces.map((p) => this.vocab.get(p) ?? this.unkId) };
    if (this.cache.size >= CACHE_LIMIT) {
      this.cache.clear();
      this.seedCache();
    }
    this.cache.set(piece, w);
    return w;
  }

  /** Merges the adjacent pair of lowest rank, all its occurrences left to right, until none is a merge. */
  private bpe(symbols: string[]): string[] {
    let word = symbols.slice();
    word[word.length - 1] += END_OF_WORD;
    while (word.length > 1) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          first = word[i]!;
          second = word[i + 1]!;
        }
      }
      if (best === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
          next.push(first + second);
          i++;
        } else {
          next.push(word[i]!);
        }
      }
      word = next;
    }
    return word;
  }
}
