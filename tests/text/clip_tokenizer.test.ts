import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runTokenizerCase, tokenizerMismatch } from '../../src/conformance/tokenizer_case.ts';
import type { FolderReader } from '../../src/io/model_folder.ts';
import { nodeFolderReader } from '../../src/io/model_folder.ts';
import { BYTE_SYMBOLS } from '../../src/text/byte_symbols.ts';
import { CLIPTokenizer } from '../../src/text/clip_tokenizer.ts';
import { TokenizerError } from '../../src/errors.ts';

const DIR = join(import.meta.dirname, '../fixtures/tokenizer-clip');
const read = (name: string): string => readFileSync(join(DIR, name), 'utf8');

interface Case {
  prompt: string;
  pieces: string[];
  n_tokens: number;
  truncated: boolean;
  input_ids: number[];
}
const cases: Case[] = JSON.parse(read('cases.json'));

/** A folder held in memory, so each error test can leave out or break one file. */
function memoryReader(files: Record<string, string>): FolderReader {
  const enc = new TextEncoder();
  return {
    where: (name) => `mem/${name}`,
    read: async (name) => (name in files ? enc.encode(files[name]) : null),
  };
}

let vocabText: string;
let mergesText: string;
let config: Record<string, unknown>;
let tok: CLIPTokenizer;

beforeAll(async () => {
  vocabText = read('vocab.json');
  mergesText = read('merges.txt');
  config = JSON.parse(read('tokenizer_config.json'));
  tok = await CLIPTokenizer.load(nodeFolderReader(DIR));
});

describe('CLIP tokenizer against the openai/CLIP reference', () => {
  it('reads the folder: SD 1.x special tokens and length', () => {
    expect([tok.bosId, tok.eosId, tok.padId, tok.unkId, tok.maxLength]).toEqual([49406, 49407, 49407, 49407, 77]);
  });

  it.each(cases.map((c, i) => [i, c.prompt.slice(0, 50), c] as const))('case %i: %j', (_i, _p, c) => {
    const pieces = tok.pieces(c.prompt);
    expect(pieces).toEqual(c.pieces);
    expect(pieces.length).toBe(c.n_tokens);
    const { ids, truncated } = tok.encode(c.prompt);
    expect(truncated).toBe(c.truncated);
    expect(ids).toEqual(c.input_ids);
  });

  it('the conformance check passes the fixture and catches a wrong id', async () => {
    expect(await runTokenizerCase(DIR)).toEqual({ cases: cases.length, mismatches: 0 });
    const bad = { ...cases[0]!, input_ids: cases[0]!.input_ids.map((x, i) => (i === 3 ? x + 1 : x)) };
    expect(tokenizerMismatch(tok, bad)).toMatch(/input_ids\[3\]/);
    expect(tokenizerMismatch(tok, { ...cases[0]!, pieces: ['x</w>'] })).toMatch(/piece 0/);
  });
});

describe('truncation, padding and cleanup', () => {
  it('keeps EOS when truncating and pads short prompts with the pad id', () => {
    const long = Array.from({ length: 100 }, (_, i) => `w${i % 10}`).join(' ');
    const raw = tok.tokenIds(long);
    expect(raw.length).toBeGreaterThan(75);
    const { ids, truncated } = tok.encode(long);
    expect(truncated).toBe(true);
    expect(ids.length).toBe(77);
    expect(ids).toEqual([49406, ...raw.slice(0, 75), 49407]);

    const exact = tok.encode(Array(75).fill('cat').join(' '));
    expect(exact.truncated).toBe(false);
    expect(exact.ids[76]).toBe(49407);
    const over = tok.encode(Array(76).fill('cat').join(' '));
    expect(over.truncated).toBe(true);

    const short = tok.encode('a cat');
    expect(short.ids.slice(0, 4)).toEqual([49406, ...tok.tokenIds('a cat'), 49407]);
    expect(short.ids.slice(4)).toEqual(Array(73).fill(49407));
    expect(tok.encode('').ids).toEqual([49406, ...Array(76).fill(49407)]);
  });

  it('uses model_max_length from tokenizer_config.json', () => {
    const t = CLIPTokenizer.fromFiles({ vocab: vocabText, merges: mergesText, config: { ...config, model_max_length: 6 } });
    const { ids, truncated } = t.encode('one two three four five');
    expect(truncated).toBe(true);
    expect(ids).toEqual([49406, ...tok.tokenIds('one two three four'), 49407]);
  });

  it('cleans whitespace, case and curly quotes the way ftfy + lower() do', () => {
    expect(tok.pieces('  Don\u2019t\u00a0 \u201cSTOP\u201d\t')).toEqual(tok.pieces('don\'t "stop"'));
    // ftfy deletes U+001C..U+001F (control characters) before Python's \s, which counts them, sees them.
    expect(tok.pieces('a\u001cb')).toEqual(tok.pieces('ab'));
    // Non-ASCII letters go through their UTF-8 bytes: the pieces decode back to the word.
    const fromSymbol = new Map(BYTE_SYMBOLS.map((sym, b) => [sym, b]));
    const bytes = [...tok.pieces('Café').join('').replace('</w>', '')].map((ch) => fromSymbol.get(ch)!);
    expect(new TextDecoder().decode(new Uint8Array(bytes))).toBe('café');
  });

  it("byte symbols are vocab.json's ids 0-255, in the GPT-2 order", () => {
    const vocab: Record<string, number> = JSON.parse(vocabText);
    const byId = Object.entries(vocab).filter(([, id]) => id < 256).sort((x, y) => x[1] - y[1]).map(([t]) => t);
    const printable = [...Array(256).keys()].filter((b) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae);
    const rest = [...Array(256).keys()].filter((b) => !printable.includes(b));
    expect(byId).toEqual([...printable, ...rest].map((b) => BYTE_SYMBOLS[b]));
    expect(BYTE_SYMBOLS[0x20]).toBe('\u0120');
  });

  it('splits special tokens out of the prompt before cleanup', () => {
    expect(tok.tokenIds('a <|endoftext|> b')).toEqual([...tok.tokenIds('a'), 49407, ...tok.tokenIds('b')]);
    expect(tok.tokenIds('<|startoftext|>x')).toEqual([49406, ...tok.tokenIds('x')]);
  });
});

describe('OpenCLIP-style pad token', () => {
  it("pads with '!' (id 0) and, like transformers, splits '!' out of prompts as that token", () => {
    const t = CLIPTokenizer.fromFiles({
      vocab: JSON.parse(vocabText),
      merges: mergesText,
      config: { ...config, pad_token: '!' },
      specialTokens: { pad_token: { content: '!', lstrip: false } },
    });
    expect(t.padId).toBe(0);
    expect(t.eosId).toBe(49407);
    const { ids } = t.encode('a cat');
    expect(ids.slice(0, 4)).toEqual(tok.encode('a cat').ids.slice(0, 4));
    expect(ids.slice(4)).toEqual(Array(73).fill(0));
    // diffusers issue #4153: "! !! !!!" becomes six pad ids, not 256 748 995 as OpenCLIP gives.
    expect(tok.tokenIds('! !! !!!')).toEqual([256, 748, 995]);
    expect(t.tokenIds('! !! !!!')).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('lets special_tokens_map.json override tokenizer_config.json', () => {
    const t = CLIPTokenizer.fromFiles({ vocab: vocabText, merges: mergesText, config: { ...config, pad_token: '!' }, specialTokens: { pad_token: '<|endoftext|>' } });
    expect(t.padId).toBe(49407);
  });
});

describe('BPE on a hand-made vocabulary', () => {
  const sym = (c: string): string => BYTE_SYMBOLS[c.charCodeAt(0)]!;
  const a = sym('a');
  const vocab = { [a]: 0, [`${a}</w>`]: 1, [`${a}${a}`]: 2, [`${a}${a}${a}</w>`]: 3, [`${a}${a}${a}${a}</w>`]: 4, '<|startoftext|>': 5, '<|endoftext|>': 6 };

  it('merges the lowest rank first, every occurrence left to right', () => {
    const t = CLIPTokenizer.fromFiles({ vocab, merges: `#version: 0.2\n${a} ${a}\n${a}${a} ${a}</w>\n` });
    expect(t.pieces('a')).toEqual([`${a}</w>`]);
    expect(t.pieces('aaa')).toEqual([`${a}${a}${a}</w>`]);
    // Occurrences pair up from the left (aa aa a</w>, not a aa aa</w>), then the next rank applies.
    expect(t.pieces('aaaaa')).toEqual([`${a}${a}`, `${a}${a}${a}</w>`]);
    // aa a a</w> has no pair in merges.txt, so BPE stops there.
    expect(t.pieces('aaaa')).toEqual([`${a}${a}`, a, `${a}</w>`]);
    // A symbol missing from the vocabulary maps to unk.
    expect(t.tokenIds('b')).toEqual([t.unkId]);
  });
});

describe('errors name the file', () => {
  const base = (): Record<string, string> => ({ 'vocab.json': vocabText, 'merges.txt': mergesText });
  const fails = async (files: Record<string, string>, pattern: RegExp): Promise<void> => {
    const err = await CLIPTokenizer.load(memoryReader(files)).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as Error).message).toMatch(pattern);
  };

  it('missing files', async () => {
    const { 'vocab.json': _v, ...noVocab } = base();
    await fails(noVocab, /mem\/vocab\.json: not found/);
    const { 'merges.txt': _m, ...noMerges } = base();
    await fails(noMerges, /mem\/merges\.txt: not found/);
  });

  it('bad JSON', async () => {
    await fails({ ...base(), 'vocab.json': '{"a": 1,' }, /mem\/vocab\.json: not valid JSON/);
    await fails({ ...base(), 'tokenizer_config.json': '[1]' }, /mem\/tokenizer_config\.json: expected a JSON object, got an array/);
    await fails({ ...base(), 'vocab.json': '{"a": "x"}' }, /mem\/vocab\.json: token "a" has id "x"/);
  });

  it('merges header missing, or a merge whose result is not in the vocabulary', async () => {
    await fails({ ...base(), 'merges.txt': mergesText.split('\n').slice(1).join('\n') }, /mem\/merges\.txt: missing the '#version' header/);
    await fails({ ...base(), 'merges.txt': `#version: 0.2\ni n\nq zz\n` }, /mem\/merges\.txt:3: merge 'q zz' makes "qzz", which is not in mem\/vocab\.json/);
  });

  it('a special token that is not in the vocabulary', async () => {
    await fails({ ...base(), 'special_tokens_map.json': '{"pad_token": "<pad>"}' }, /pad_token "<pad>".*not in mem\/vocab\.json/);
    await fails({ ...base(), 'tokenizer_config.json': '{"model_max_length": 1}' }, /model_max_length must be an integer >= 2/);
  });
});

describe('speed', () => {
  it('prints the time to tokenize every case 100 times', () => {
    const fresh = CLIPTokenizer.fromFiles({ vocab: vocabText, merges: mergesText, config });
    const t0 = performance.now();
    for (const c of cases) fresh.encode(c.prompt);
    const cold = performance.now() - t0;
    const t1 = performance.now();
    for (let r = 0; r < 100; r++) for (const c of cases) fresh.encode(c.prompt);
    const warm = performance.now() - t1;
    console.log(`CLIP tokenizer: ${cases.length} cases once (cold cache) ${cold.toFixed(1)} ms; 100 rounds (cached words) ${warm.toFixed(1)} ms, ${((warm / (100 * cases.length)) * 1000).toFixed(1)} us per prompt`);
  });
});
