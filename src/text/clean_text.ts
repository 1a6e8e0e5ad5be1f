// Prompt cleanup before CLIP's pre-tokenizer, as openai/CLIP's SimpleTokenizer does it (the ground
// truth of the tokenizer fixtures): ftfy.fix_text (ftfy 6.3.1), Python's html.unescape twice, strip,
// whitespace runs collapsed, lower-cased. transformers' slow CLIPTokenizer skips the two
// html.unescape calls, so the two differ only on entities ftfy leaves alone ("&copy 2023", "&lt3",
// anything after a '<'). The tables come from Python (text_tables.gen.ts).
import {
  C1_WINDOWS_1252, CHARACTER_WIDTH, CONTROL_CHARS, FTFY_UPPER_ENTITIES, HTML5_LEGACY_NAMES,
  HTML5_SEMICOLON_ENTITIES, HTML_INVALID_CHARREFS, HTML_INVALID_CODEPOINTS, LATIN_LIGATURES,
} from './text_tables.gen.ts';

// Python's str whitespace (what `re`'s \s and str.strip() use), which differs from JavaScript's
// \s: Python counts U+001C-U+001F and U+0085, JavaScript counts U+FEFF. (The `regex` module that
// SimpleTokenizer uses leaves out U+001C-U+001F, but fixText has removed those by then.)
export const PY_WHITESPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const WS_RUN = new RegExp(`[${PY_WHITESPACE}]+`, 'gu');
const EDGE_WS = new RegExp(`^[${PY_WHITESPACE}]+|[${PY_WHITESPACE}]+$`, 'gu');

const hex = (c: number): string => `\\u{${c.toString(16)}}`;
const inRanges = (c: number, ranges: readonly (readonly [number, number])[]): boolean => ranges.some(([a, b]) => c >= a && c <= b);

/** 'name=value name=value …' as a Map, each name with `suffix` added. */
function entityMap(pairs: string, suffix: string): Map<string, string> {
  return new Map(pairs.split(' ').map((e) => {
    const i = e.indexOf('=');
    return [e.slice(0, i) + suffix, e.slice(i + 1)] as const;
  }));
}

// Keyed as html.entities.html5 is: 'amp;' for every name, and 'amp' too for the legacy ones.
// A Map, so that "&constructor;" finds nothing.
const HTML5 = entityMap(HTML5_SEMICOLON_ENTITIES, ';');
const LEGACY = HTML5_LEGACY_NAMES.split(' ');
for (const name of LEGACY) HTML5.set(name, HTML5.get(name + ';')!);
const LONGEST_LEGACY = Math.max(...LEGACY.map((n) => n.length));
// ftfy also reads upper-cased names ('&EACUTE;' -> 'É'), keyed 'EACUTE;'.
const FTFY_UPPER = entityMap(FTFY_UPPER_ENTITIES, ';');

// CPython's html.unescape: a named reference runs to the next tab, LF, FF, space, '<', '&', '#' or
// ';' (32 code points at most, hence 'u'); numeric ones take any number of digits.
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function numericRef(ref: string): string {
  const isHex = ref[1] === 'x' || ref[1] === 'X';
  // parseInt stops at the ';'. Past 2^53 it rounds, but those are all over 0x10FFFF anyway.
  const n = parseInt(ref.slice(isHex ? 2 : 1), isHex ? 16 : 10);
  const fixed = HTML_INVALID_CHARREFS.get(n);
  if (fixed !== undefined) return fixed;
  if ((n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff) return '\ufffd';
  return inRanges(n, HTML_INVALID_CODEPOINTS) ? '' : String.fromCodePoint(n);
}

function namedRef(ref: string): string {
  const whole = HTML5.get(ref);
  if (whole !== undefined) return whole;
  // Else the longest name that starts it, as HTML5 reads "&lt3" or "&copy2023". Only ';'-less
  // (legacy) names can match a proper prefix, so start at the longest of those.
  for (let x = Math.min(ref.length - 1, LONGEST_LEGACY); x > 1; x--) {
    const v = HTML5.get(ref.slice(0, x));
    if (v !== undefined) return v + ref.slice(x);
  }
  return '&' + ref;
}

/** Python's html.unescape: named references with or without ';', numeric ones as HTML5 repairs them. */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_m, ref: string) => (ref[0] === '#' ? numericRef(ref) : namedRef(ref)));
}

// ftfy's own unescape_html is stricter than html.unescape: only whole references ending in ';'.
const FTFY_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

/** ftfy's unescape_html: html5 names with ';', ftfy's upper-case ones, and numeric references that html.unescape reads whole. */
export function ftfyUnescapeHtml(text: string): string {
  return text.replace(FTFY_ENTITY, (m) => {
    const name = m.slice(1);
    const v = HTML5.get(name) ?? FTFY_UPPER.get(name);
    if (v !== undefined) return v;
    if (name[0] !== '#') return m;
    // "&#12abc;" would decode only "&#12", leaving the ';' behind: ftfy keeps the text then
    // (and so, a quirk, also "&#59;", which decodes to ';').
    const u = htmlUnescape(m);
    return u.includes(';') ? m : u;
  });
}

/** A one-character-to-string translation, as Python's str.translate with the table. */
function translator(table: Readonly<Record<string, string>>): (s: string) => string {
  const re = new RegExp(`[${Object.keys(table).map((c) => hex(c.codePointAt(0)!)).join('')}]`, 'gu');
  return (s) => s.replace(re, (c) => table[c]!);
}

const fixC1Controls = translator(C1_WINDOWS_1252);
const fixLatinLigatures = translator(LATIN_LIGATURES);
const fixCharacterWidth = translator(CHARACTER_WIDTH);
const CURLY_SINGLE = /[\u02bc\u2018-\u201b]/gu;
const CURLY_DOUBLE = /[\u201c-\u201f]/gu;
// '\r\n', then any other '\r', U+2028, U+2029 and U+0085 become '\n'.
const LINE_BREAKS = /\r\n?|[\u2028\u2029\x85]/g;
// With 'u' a surrogate pair is one code point, so this finds only the unpaired halves (ftfy joins
// pairs first, which a JavaScript string already has joined).
const LONE_SURROGATE = /[\ud800-\udfff]/gu;
// Python's \d is any Unicode decimal digit (Nd); ICU's Unicode version may be newer than Python's.
const TERMINAL_ESCAPE = /\x1b\[[\p{Nd};]*[a-zA-Z]/gu;
const CONTROL = new RegExp(`[${CONTROL_CHARS.map(([a, b]) => (a === b ? hex(a) : `${hex(a)}-${hex(b)}`)).join('')}]`, 'gu');

/** ftfy's fix_and_explain on one segment: every fix in its order, again until nothing changes. */
function fixSegment(text: string, unescapeHtml: boolean): string {
  for (;;) {
    const before = text;
    if (unescapeHtml) text = ftfyUnescapeHtml(text);
    // ftfy's fix_encoding (mojibake repair: "cafÃ©" -> "café", by guessing which codec garbled the
    // text) is left out: it is a heuristic over large tables, and prompts seldom carry mojibake.
    text = fixC1Controls(text);
    text = fixLatinLigatures(text);
    text = fixCharacterWidth(text);
    text = text.replace(CURLY_SINGLE, "'").replace(CURLY_DOUBLE, '"');
    text = text.replace(LINE_BREAKS, '\n');
    text = text.replace(LONE_SURROGATE, '\ufffd');
    text = text.replace(TERMINAL_ESCAPE, '');
    text = text.replace(CONTROL, '');
    text = text.normalize('NFC');
    if (text === before) return text;
  }
}

// ftfy's max_decode_length: a line longer than this many code points is fixed in pieces.
const MAX_SEGMENT = 1_000_000;

/**
 * ftfy.fix_text without fix_encoding. ftfy fixes line by line and, once a line holds '<' (the
 * text looks like HTML), stops unescaping HTML for that line and all after it. `htmlUntil` moves
 * that point earlier: lines starting at or after it are not unescaped (see htmlCutoff).
 */
export function fixText(text: string, htmlUntil = Infinity): string {
  let out = '';
  let unescapeHtml = true;
  for (let pos = 0; pos < text.length;) {
    let end = text.indexOf('\n', pos) + 1 || text.length;
    if (end - pos > MAX_SEGMENT) {
      let i = pos;
      for (let n = 0; n < MAX_SEGMENT && i < end; n++) i += text.codePointAt(i)! > 0xffff ? 2 : 1;
      end = i;
    }
    const segment = text.slice(pos, end);
    if (pos >= htmlUntil || segment.includes('<')) unescapeHtml = false;
    out += fixSegment(segment, unescapeHtml);
    pos = end;
  }
  return out;
}

/**
 * Where ftfy would stop unescaping HTML in a whole prompt: the start of the first line holding
 * '<', or Infinity. The tokenizer cleans the pieces between special tokens one by one, and those
 * tokens hold '<' themselves, so each piece gets `htmlCutoff(prompt) - pieceStart`.
 */
export function htmlCutoff(prompt: string): number {
  const lt = prompt.indexOf('<');
  return lt < 0 ? Infinity : prompt.lastIndexOf('\n', lt) + 1;
}

/** SimpleTokenizer's whitespace_clean(basic_clean(text)).lower(); `htmlUntil` as in fixText. */
export function cleanText(text: string, htmlUntil = Infinity): string {
  const unescaped = htmlUnescape(htmlUnescape(fixText(text, htmlUntil)));
  return unescaped.replace(WS_RUN, ' ').replace(EDGE_WS, '').toLowerCase();
}
