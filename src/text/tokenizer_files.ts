// Parsing of a transformers CLIPTokenizer folder: vocab.json, merges.txt, tokenizer_config.json and
// special_tokens_map.json. Every problem is a TokenizerError naming the file it is in.
import { TokenizerError } from '../errors.ts';

export const VOCAB_FILE = 'vocab.json';
export const MERGES_FILE = 'merges.txt';
export const CONFIG_FILE = 'tokenizer_config.json';
export const SPECIAL_TOKENS_FILE = 'special_tokens_map.json';

// CLIPTokenizer reads at most this many merges (49152 tokens less the 256 bytes and 2 specials),
// whatever the file holds.
const MAX_MERGES = 49152 - 256 - 2;

export type Json = Record<string, unknown>;

export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

export function asObject(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new TokenizerError(`${where}: expected a JSON object, got ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`);
  }
  return v as Json;
}

export function parseVocab(vocab: unknown, where: string): Map<string, number> {
  const obj = asObject(typeof vocab === 'string' ? parseJson(vocab, where) : vocab, where);
  const out = new Map<string, number>();
  for (const [token, id] of Object.entries(obj)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new TokenizerError(`${where}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`);
    }
    out.set(token, id);
  }
  if (out.size === 0) throw new TokenizerError(`${where}: the vocabulary is empty`);
  return out;
}

/** Merge "left right" -> rank (its line number after the header, from 0). */
export function parseMerges(text: string, vocab: Map<string, number>, where: string, vocabWhere: string): Map<string, number> {
  const lines = text.trim().split('\n');
  if (!lines[0]!.startsWith('#version')) {
    throw new TokenizerError(`${where}: missing the '#version' header line (found ${JSON.stringify(lines[0]!.slice(0, 40))})`);
  }
  const ranks = new Map<string, number>();
  const n = Math.min(lines.length - 1, MAX_MERGES);
  for (let i = 0; i < n; i++) {
    const parts = lines[i + 1]!.trim().split(/\s+/);
    if (parts.length !== 2 || parts[0] === '') {
      throw new TokenizerError(`${where}:${i + 2}: expected 'left right', got ${JSON.stringify(lines[i + 1])}`);
    }
    const [left, right] = parts as [string, string];
    if (!vocab.has(left + right)) {
      throw new TokenizerError(`${where}:${i + 2}: merge '${left} ${right}' makes ${JSON.stringify(left + right)}, which is not in ${vocabWhere}`);
    }
    // A repeated pair takes its later rank, as a Python dict built from the lines does.
    ranks.set(`${left} ${right}`, i);
  }
  return ranks;
}

export interface SpecialTokens {
  bos: string;
  eos: string;
  unk: string;
  pad: string;
  maxLength: number;
  /** Strings split out of the raw prompt before cleanup, with their ids (added_tokens_decoder). */
  added: Map<string, number>;
}

// CLIPTokenizer's defaults, and CLIP's context length for folders that do not state one.
const DEFAULTS = { bos: '<|startoftext|>', eos: '<|endoftext|>', unk: '<|endoftext|>', pad: '<|endoftext|>' };
const DEFAULT_MAX_LENGTH = 77;
const ROLES = ['bos', 'eos', 'unk', 'pad'] as const;

/** A special-token value: a string or an AddedToken object `{"content": ...}`. */
function tokenContent(v: unknown, key: string, where: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as Json).content === 'string') return (v as Json).content as string;
  throw new TokenizerError(`${where}: ${key} must be a string or an object with a string "content", got ${JSON.stringify(v)}`);
}

/**
 * Special tokens as transformers resolves them: tokenizer_config.json, then special_tokens_map.json
 * on top (its entries win), then CLIPTokenizer's defaults for what neither names.
 */
export function resolveSpecialTokens(config: Json | undefined, specialMap: Json | undefined, configWhere: string, mapWhere: string): SpecialTokens {
  const out: SpecialTokens = { ...DEFAULTS, maxLength: DEFAULT_MAX_LENGTH, added: new Map() };
  for (const [src, where] of [[config, configWhere], [specialMap, mapWhere]] as const) {
    if (!src) continue;
    for (const role of ROLES) {
      const key = `${role}_token`;
      if (!(key in src)) continue;
      if (src[key] === null) throw new TokenizerError(`${where}: ${key} is null; a CLIP tokenizer needs one to ${role === 'pad' ? 'pad to max length' : 'encode'}`);
      out[role] = tokenContent(src[key], key, where);
    }
  }
  if (config && 'model_max_length' in config) {
    const m = config.model_max_length;
    if (typeof m !== 'number' || !Number.isInteger(m) || m < 2) {
      throw new TokenizerError(`${configWhere}: model_max_length must be an integer >= 2 (room for BOS and EOS), got ${JSON.stringify(m)}`);
    }
    out.maxLength = m;
  }
  const decoder = config?.added_tokens_decoder;
  if (decoder !== undefined) {
    for (const [id, v] of Object.entries(asObject(decoder, `${configWhere}: added_tokens_decoder`))) {
      const n = Number(id);
      if (!Number.isInteger(n) || n < 0) throw new TokenizerError(`${configWhere}: added_tokens_decoder key ${JSON.stringify(id)} is not a token id`);
      out.added.set(tokenContent(v, `added_tokens_decoder.${id}`, configWhere), n);
    }
  }
  return out;
}
