"""Writes tests/fixtures/variants/tokenizer-clip-extra.json: tokenizer cases (the format of
tests/fixtures/tokenizer-clip/cases.json, for that folder's tokenizer files) made by openai/CLIP's
SimpleTokenizer, on prompts that exercise its cleanup: ftfy.fix_text (HTML entities, '<', terminal
escapes, control characters, line breaks, ligatures, fullwidth forms, curly quotes, NFC), then
html.unescape twice, whitespace collapsing and lower-casing, and non-Latin scripts.

    /tmp/refenv/bin/python -B scripts/reference/make_tokenizer_cases.py /path/to/CLIP/clip

The argument is a folder holding openai/CLIP's simple_tokenizer.py and bpe_simple_vocab_16e6.txt.gz
(the CLIP repository's clip/ folder); needs ftfy 6.3.1 and regex. It first checks that the
reference reproduces every case of tests/fixtures/tokenizer-clip/cases.json and writes nothing if not.

Fresco leaves out ftfy's fix_encoding (mojibake repair), so prompts that it changes are dropped
here, with a message: those where ftfy.fix_text(p, fix_encoding=False) != ftfy.fix_text(p).
"""
import json
import os
import sys

import ftfy

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../..')
SHARED = os.path.join(ROOT, 'tests/fixtures/tokenizer-clip/cases.json')
OUT = os.path.join(ROOT, 'tests/fixtures/variants/tokenizer-clip-extra.json')
BOS, EOS, LENGTH = 49406, 49407, 77

PROMPTS = [
    # ftfy's unescape_html (whole references with ';', its upper-case names), then html.unescape
    # twice (no ';', the longest legacy name, numeric references and their repairs).
    'fish &amp; chips &lt;3',
    '&amp;amp; double',
    '&amp;amp;amp;amp; four deep',
    '&copy 2023 by me',
    '&lt3 you &gt;.&lt;',
    'AT&T and R&D and Q&A',
    'rock &amp roll &ampere; &amp;',
    '&#39;quoted&#x27; &#34;twice&#X22;',
    'null &#0; and &#150; dash &#128; euro &#x9F;',
    'gone:&#1;&#11;&#127;&#xFDD0;&#xFFFF;&#x10FFFF;| kept:&#12;&#13;',
    'far &#x110000; &#xD800; &#99999999999999999999; out',
    '&#59; semicolon &#12abc; partial &#x41g;',
    'caf&eacute; P&EACUTE;REZ BUNDESSTRA&SZLIG;E &nTILDE;',
    '&Jscr;ohn &HilbertSpace;ancock &checkmark; &fjlig;',
    '&notit; &notin; this&not that &not;',
    '&constructor; &toString; &__proto__; &hasOwnProperty',
    '&frac12 &frac12; &frac1234 &middotx',
    '&NewLine;line&Tab;tab&nbsp;nbsp&shy;shy&ZeroWidthSpace;zw',
    '&thisnameisfarlongerthanthirtytwocharacters; &amp',
    '&aMp; &AMP &AMP; &Amp;',
    # '<' turns ftfy's unescaping off from its line on; html.unescape still runs.
    '<b>bold &amp;amp; &EACUTE;</b>',
    'first &amp;amp; line\nsecond <i> &amp;amp; &EACUTE;',
    '&EACUTE; &amp;amp; <|endoftext|> &EACUTE; &amp;amp;',
    '&EACUTE; &amp;amp;\n<|startoftext|>&EACUTE;',
    '&EACUTE;\n&EACUTE; <|endoftext|>\n&EACUTE;',
    'a < b &amp; &EACUTE;',
    '&lt;|endoftext|&gt; as entities',
    '&lt;b&gt;escaped tag&lt;/b&gt;',
    # Terminal escapes, C0/C1 controls, line breaks.
    '\x1b[31;1mred\x1b[0m and \x1b[mplain \x1b[?25h',
    'bell\x07nul\x00esc\x1b del\x7f bom\ufeff obj\ufffc',
    'c1: \x80 euro \x85 ellipsis \x91smart\x92 \x81\x8d\x9d',
    'unit\x1fsep\x1crecord \u206a\u206finhibit \ufff9ann\ufffb',
    'tab\t\tand  \r\n crlf\rcr\u2028ls\u2029ps\x0bvt\x0cff',
    # Ligatures, width, quotes, normalization.
    '\ufb01ne \ufb02owers \ufb03 \ufb04 \ufb05 \ufb06 \u0132ssel \u01c4 \u01c5 \u01c9 \u0149',
    '\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff11\uff12\uff13\uff01 \uff76\uff80\uff76\uff85 \uffe3\uffe5',
    'ideographic\u3000space and \uff08parens\uff09',
    '\u2018single\u2019 \u201cdouble\u201d \u201alow\u201b \u201ehigh\u201f \u02bcmodifier',
    'cafe\u0301 vs caf\u00e9, \u212b angstrom, \u2126 ohm, e&#x301; combined',
    'A\u030a\u0323 order and \u1e9b\u0323 and \uac00\u11a8 jamo',
    # Scripts, emoji, spaces and invisible characters.
    '\U0001F600 emoji smile \U0001F525\U0001F525 \U0001F468\u200d\U0001F469\u200d\U0001F467 family',
    'flag \U0001F1EF\U0001F1F5 and \U0001F3F4\U000E0067\U000E0062\U000E0077\U000E006C\U000E0073\U000E007F wales',
    '\u732b\u306e\u5199\u771f\u3001\u5bcc\u58eb\u5c71\u3068\u685c',
    '\u4e00\u53ea\u53ef\u7231\u7684\u5c0f\u732b\uff0c\u6cb9\u753b\u98ce\u683c',
    '\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \uace0\uc591\uc774',
    '\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0642\u0637\u0629 \u200f\u200eRTL',
    '\u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442 \u041a\u041e\u0422',
    '\u0395\u039b\u039b\u0397\u039d\u0399\u039a\u0391 \u039f\u0394\u039f\u03a3 \u03b3\u03ac\u03c4\u03b1',
    'Stra\u00dfe \u0130stanbul \u00c5ngstr\u00f6m \u0141\u00f3d\u017a',
    'zero\u200bwidth soft\u00adhyphen join\u200cer word\u2060joiner',
    'a\u00a0b\u2003c\u3000d\u202fe\u205ff\u1680g\u2009h',
    '\ud800 lone high, lone low \udfff and a pair \ud83d\ude00 split',
    "it\u2019s 5\u00b0C & 30\u00a0% off \u2014 ok\u2026 \u00bd \u00b2 \u2167 \u2460",
    'mixed: Caf\u00c9 \uff21\uff22 &AMP; \u201cQ\u201d\u0085next',
    # Special tokens and length.
    '<|startoftext|>inside<|endoftext|>',
    '<|ENDOFTEXT|> upper',
    'a photo &amp; ' * 20,
    '\uff21 ' * 90,
    '&#x1F431; ' * 40,
    'x' * 300,
    '',
    '   &nbsp;   ',
    # Mojibake: ftfy's fix_encoding rewrites it, so it is left out (the check in main()).
    'caf\u00c3\u00a9 mojibake',
]


def case(tok, p):
    ids = tok.encode(p)
    body = ids[:LENGTH - 2]
    inp = [BOS] + body + [EOS]
    inp += [EOS] * (LENGTH - len(inp))
    return {'prompt': p, 'pieces': [tok.decoder[i] for i in ids], 'n_tokens': len(ids),
            'truncated': len(ids) > LENGTH - 2, 'input_ids': inp}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    clip = sys.argv[1]
    sys.path.insert(0, clip)
    from simple_tokenizer import SimpleTokenizer
    tok = SimpleTokenizer(bpe_path=os.path.join(clip, 'bpe_simple_vocab_16e6.txt.gz'))

    shared = json.load(open(SHARED))
    bad = [c['prompt'] for c in shared if case(tok, c['prompt']) != c]
    if bad:
        sys.exit(f'the reference does not reproduce {len(bad)} shared cases, e.g. {bad[0]!r}')

    cases = []
    for p in PROMPTS:
        if ftfy.fix_text(p, fix_encoding=False) != ftfy.fix_text(p):
            print(f'left out (ftfy fix_encoding changes it): {p!r}')
            continue
        cases.append(case(tok, p))
    with open(OUT, 'w') as f:
        f.write('[\n' + ',\n'.join(json.dumps(c) for c in cases) + '\n]\n')
    print(f'{len(shared)} shared cases reproduced; wrote {len(cases)} cases to {os.path.normpath(OUT)}')


main()
