// The CLIP tokenizer's prompt cleanup against openai/CLIP's SimpleTokenizer (ftfy 6.3.1 +
// html.unescape): cases made by scripts/reference/make_tokenizer_cases.py, and the cleanup steps
// on their own, with expectations taken from Python.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tokenizerMismatch } from '../../src/conformance/tokenizer_case.ts';
import { nodeFolderReader } from '../../src/io/model_folder.ts';
import { cleanText, fixText, ftfyUnescapeHtml, htmlCutoff, htmlUnescape } from '../../src/text/clean_text.ts';
import { CLIPTokenizer } from '../../src/text/clip_tokenizer.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures');
type Case = Parameters<typeof tokenizerMismatch>[1];
const cases: Case[] = JSON.parse(readFileSync(join(FIXTURES, 'variants/tokenizer-clip-extra.json'), 'utf8'));

let tok: CLIPTokenizer;
beforeAll(async () => {
  tok = await CLIPTokenizer.load(nodeFolderReader(join(FIXTURES, 'tokenizer-clip')));
});

describe('CLIP tokenizer on prompts that need ftfy and html.unescape', () => {
  it('has the cases', () => expect(cases.length).toBeGreaterThanOrEqual(60));

  it.each(cases.map((c, i) => [i, JSON.stringify(c.prompt.slice(0, 40)), c] as const))('case %i: %s', (_i, _p, c) => {
    expect(tokenizerMismatch(tok, c)).toBeNull();
  });
});

describe("Python's html.unescape", () => {
  it('reads names with and without ";", the longest legacy name first', () => {
    expect(htmlUnescape('&lt3 &copy 2023 &amp &frac1234 &notit;')).toBe('<3 © 2023 & ½34 ¬it;');
    expect(htmlUnescape('AT&T R&D &aMp; &constructor; &toString')).toBe('AT&T R&D &aMp; &constructor; &toString');
    expect(htmlUnescape('&amp;amp;')).toBe('&amp;');
  });

  it("repairs numeric references as CPython's tables say", () => {
    expect(htmlUnescape('&#0;|&#150;|&#x80;|&#13;|&#x27;&#39;')).toBe('\ufffd|\u2013|\u20ac|\r|\'\'');
    expect(htmlUnescape('&#x110000;|&#xd800;|&#99999999999999999999;')).toBe('\ufffd|\ufffd|\ufffd');
    expect(htmlUnescape('&#1;|&#xFFFE;|&#x10FFFF;|&#x1F431;')).toBe('|||\u{1f431}');
    expect(htmlUnescape('&#12abc;')).toBe('\x0cabc;');
  });
});

describe("ftfy's unescape_html", () => {
  it('takes whole references with ";" only, and its upper-case names', () => {
    expect(ftfyUnescapeHtml("&lt;&#x27;&#39; &EACUTE; &SZLIG; &AFR;")).toBe("<'' É SS \u{1d51e}");
    expect(ftfyUnescapeHtml('&nTILDE; &amp &lt3 &#12abc; &#59;')).toBe('&nTILDE; &amp &lt3 &#12abc; &#59;');
  });
});

describe('fixText (ftfy.fix_text without fix_encoding)', () => {
  it('ligatures, width, quotes, line breaks, C1, escapes, controls, surrogates, NFC', () => {
    expect(fixText('\ufb02u\ufb03e\ufb06 \u0149')).toBe("fluffiest 'n");
    expect(fixText('\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33 \uff35\uff80\uff70\uff9d')).toBe('LOUD NOISES U\u30bf\u30fc\u30f3');
    expect(fixText('a\r\nb\rc\u2028d\u2029e')).toBe('a\nb\nc\nd\ne');
    expect(fixText('x\x85y\x80\x81')).toBe('x\u2026y\u20ac\x81');
    expect(fixText('a\x00b\x1b[1;31mc\x1b[0m\ufeffd\x1c')).toBe('abcd');
    expect(fixText('\ud800x e\u0301')).toBe('\ufffdx \u00e9');
  });

  it('repeats until nothing changes, and stops unescaping from the first line with "<"', () => {
    expect(fixText('&amp;amp;amp; &amp;#39;')).toBe("& '");
    expect(fixText('&amp;\n<')).toBe('&\n<');
    expect(fixText('<\n&amp;')).toBe('<\n&amp;');
    // htmlUntil: the caller knows of a '<' further on (a special token split off the prompt).
    expect(fixText('&amp;\n&amp;', 6)).toBe('&\n&amp;');
    expect(htmlCutoff('a\nb <|endoftext|>')).toBe(2);
    expect(htmlCutoff('no tags')).toBe(Infinity);
  });

  it('cleanText is whitespace_clean(basic_clean(text)).lower()', () => {
    expect(cleanText('  Fish &amp;amp; Chips &lt3\t&copy 2023\u3000')).toBe('fish & chips <3 © 2023');
    expect(cleanText('<b>&EACUTE; &amp;amp;amp;</b>')).toBe('<b>&eacute; &amp;</b>');
  });
});
